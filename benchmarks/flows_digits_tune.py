"""Digits tuning runs for the flows (validation split only: val bound with 5 dequantisation draws).

    python benchmarks/flows_digits_tune.py MODEL STEPS [MODEL_KW_JSON] [TRAIN_KW_JSON] [SEED] >> benchmarks/results/flows_digits_tune.jsonl

e.g. `maf 2000 '{}' '{"schedule": "cosine", "keep_best": true}'`. Prints one JSON line: settings, val NLL
(nats/image), best step (keep_best), the validation curve (step, val, train loss in nats/image),
wall and CPU seconds and the load average. `python benchmarks/flows.py --report` lists these runs.
"""
import sys, json, time, os, torch
torch.set_num_threads(1)
import genlab as gl
model, steps = sys.argv[1], int(sys.argv[2])
mkw = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
tkw = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
tr = gl.load_dataset("digits", split="train"); va = gl.load_dataset("digits", split="val")
m = gl.create(model, data=tr, **mkw)
tkw = dict(dict(batch_size=128, lr=1e-3), **tkw)
if tkw.get("keep_best"): tkw.setdefault("eval_every", 100)
t0 = time.perf_counter(); c0 = time.process_time()
run = gl.train(m, tr, steps=steps, seed=seed, progress=False, val=va if tkw.get("keep_best") else None, **tkw)
w = time.perf_counter() - t0; c = time.process_time() - c0
m.eval()
g = torch.Generator().manual_seed(1234)
with torch.no_grad(): v = -m.log_prob(va.x, num_samples=5, generator=g).mean().item()
hist = [(h.get("step"), round(h["val_loss"]*64, 1), round(h.get("loss", float("nan"))*64, 1)) for h in run.history if "val_loss" in h]
print(json.dumps(dict(hist=hist[::2], model=model, steps=steps, mkw=mkw, tkw=tkw, seed=seed, val=round(v, 2), best_step=getattr(run, "best_step", None), params=m.num_parameters(), wall=round(w), cpu=round(c), load=round(os.getloadavg()[0],1))), flush=True)
