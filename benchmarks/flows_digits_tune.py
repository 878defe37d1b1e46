"""Digits tuning runs for the flows (validation split: val bound with 5 dequantisation draws).

    python benchmarks/flows_digits_tune.py MODEL STEPS [MODEL_KW_JSON] [TRAIN_KW_JSON] [SEED] [--test] >> benchmarks/results/flows_digits_tune.jsonl

e.g. `maf 2000 '{"conditioner": "conv"}' '{"schedule": "cosine", "keep_best": true}'`. Prints one JSON line:
settings, val NLL (nats/image), best step (keep_best), the validation curve (step, val, train loss in
nats/image), wall and CPU seconds of training and the load average. The seed sets the initialisation
(torch.manual_seed before gl.create) and the batches. ``--test`` (only for settings already chosen on
the validation split) adds the test bound with 10 draws (``test``), and both splits' importance-weighted
bounds with 10 draws (``val_iw``, ``test_iw``; a tighter bound on −ln P(x), see FlowModel.log_prob).
`python benchmarks/flows.py --report` lists these runs. Many jobs in parallel: flows_digits_sweep.py.
"""
import sys, json, time, os, torch
torch.set_num_threads(1)
import genlab as gl
args = [a for a in sys.argv[1:] if not a.startswith("--")]
want_test = "--test" in sys.argv
model, steps = args[0], int(args[1])
mkw = json.loads(args[2]) if len(args) > 2 else {}
tkw = json.loads(args[3]) if len(args) > 3 else {}
seed = int(args[4]) if len(args) > 4 else 0
tr = gl.load_dataset("digits", split="train"); va = gl.load_dataset("digits", split="val")
torch.manual_seed(seed)
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
rec = dict(hist=hist[::2], model=model, steps=steps, mkw=mkw, tkw=tkw, seed=seed, val=round(v, 2),
           best_step=getattr(run, "best_step", None), params=m.num_parameters(), wall=round(w), cpu=round(c),
           load=round(os.getloadavg()[0], 1))
if want_test:
    te = gl.load_dataset("digits", split="test")
    t1 = time.perf_counter()
    with torch.no_grad():
        g = torch.Generator().manual_seed(4321)
        rec["test"] = round(-m.log_prob(te.x, num_samples=10, generator=g).mean().item(), 2)
        rec["test_iw"] = round(-m.log_prob(te.x, num_samples=10, generator=g, importance=True).mean().item(), 2)
        rec["val_iw"] = round(-m.log_prob(va.x, num_samples=10, generator=g, importance=True).mean().item(), 2)
    rec["eval_wall"] = round(time.perf_counter() - t1)
    rec["machine"] = os.environ.get("GENLAB_MACHINE", "2-core CPU")
print(json.dumps(rec), flush=True)
