"""IAF vs MAF training-step cost on digits (CPU seconds per step, batch 128): the fully autoregressive
IAF needs D = 64 MADE passes per layer for its density; block-autoregressive IAF (passes=P) needs P.

    python benchmarks/flows_iaf_cost.py
"""
import time, torch, json, sys, os
torch.set_num_threads(1)
import genlab as gl
tr = gl.load_dataset("digits", split="train")
out = []
for name, kw in [("maf", {}), ("iaf", {}), ("iaf", {"passes": 8}), ("iaf", {"passes": 4}), ("iaf", {"passes": 2})]:
    m = gl.create(name, data=tr, **kw)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = tr.x[:128]
    n = 3 if name == "iaf" and not kw else 10
    for i in range(n + 1):
        if i == 1: t0, c0 = time.perf_counter(), time.process_time()
        loss = m.loss({"x": x})["loss"]; opt.zero_grad(); loss.backward(); opt.step()
    w, c = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
    out.append(dict(model=name, kw=kw, s_per_step_wall=round(w, 4), s_per_step_cpu=round(c, 4), load=os.getloadavg()[0]))
    print(out[-1], flush=True)
