"""Side by side with torchcfm (issue 6): OT-CFM and plain CFM on the same 2-D toy, the same network
(genlab's TimeMLP, identical initial weights), batch, optimiser (Adam, constant lr, no clipping, no
EMA) and steps, interleaved in one process (genlab, torchcfm, genlab, ...).

    /work/peers-venv/bin/python benchmarks/fm_peers.py --steps 500 --repeats 3 --quality-steps 2000
    /work/peers-venv/bin/python benchmarks/fm_peers.py --report     # rewrite fm_peers.md from the JSON

Measured: training steps/s (whole ``gl.train`` call, set-up included, vs torchcfm's objective in a
plain loop), the ratio genlab/torchcfm per repeat and its median; sampling time per NFE (Euler,
100 steps: genlab's ``model.sample`` vs ``torchdiffeq.odeint`` on the peer's network, as torchcfm's
examples do); quality at equal steps: energy distance of 2000 samples (Euler 100) to 2000 test points
and the test NLL of 500 points through the same ODE-likelihood code (dopri5 1e-5, exact trace) for both.
Path: torchcfm's σ = 0 equals genlab's σ_min = 0 (x_t = t x₁ + (1 − t) x₀, u = x₁ − x₀).
Exact OT: torchcfm samples pairs from POT's ``emd`` plan (with replacement); genlab takes the
permutation from scipy's ``linear_sum_assignment`` (the same optimum for uniform marginals).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import torch

import genlab as gl
from genlab.metrics.distances import energy_distance
from genlab.nn.unet import TimeMLP
from genlab.sampling.ode import ode_log_prob, standard_normal_log_prob

RESULTS = Path(__file__).parent / "results"
RAW = RESULTS / "fm_peers.json"
MD = RESULTS / "fm_peers.md"


def stamp():
    return dict(wall=time.perf_counter(), cpu=time.process_time())


def since(s):
    return time.perf_counter() - s["wall"], time.process_time() - s["cpu"]


def make_genlab(tr, path, a):
    torch.manual_seed(a.seed)
    return gl.create("flow-matching", data=tr, path=path, sigma_min=0.0, width=a.width, depth=a.depth, emb_dim=64)


def make_peer_net(a):
    torch.manual_seed(a.seed)          # same seed → identical initial weights to genlab's net
    return TimeMLP(2, a.width, a.depth, 64)


def genlab_train(model, tr, steps, a, seed):
    gl.train(model, tr, steps=steps, batch_size=a.batch, lr=a.lr, grad_clip=None, seed=seed, progress=False,
             eval_every=-1, checkpoint_every=0, log_every=max(steps, 1), schedule="constant")


def peer_train(net, opt, fm, tr, steps, a, gen):
    """torchcfm's documented loop: x0 ~ N(0, I), (t, x_t, u_t) from the matcher, ‖v_θ(x_t, t) − u_t‖²."""
    n = len(tr.x)
    for _ in range(steps):
        idx = torch.randint(0, n, (a.batch,), generator=gen)
        x1 = tr.x[idx]
        x0 = torch.randn_like(x1)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        loss = ((net(xt, t) - ut) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def peer_sample(net, n, steps, seed):
    from torchdiffeq import odeint
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return odeint(lambda t, x: net(x, t.expand(x.shape[0])), x0, torch.linspace(0, 1, steps + 1),
                      method="euler")[-1]


def nll(f, x, a):
    res = ode_log_prob(f, x, 1.0, 0.0, standard_normal_log_prob, method="dopri5", rtol=1e-5, atol=1e-5)
    return -res.log_prob.mean().item(), res.nfe


def run(a):
    torch.set_num_threads(1)
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher
    import torchcfm
    tr, te = gl.load_dataset(a.toy), gl.load_dataset(a.toy, split="test")
    out = dict(toy=a.toy, width=a.width, depth=a.depth, batch=a.batch, lr=a.lr, steps=a.steps, repeats=a.repeats,
               quality_steps=a.quality_steps, torchcfm=torchcfm.__version__ if hasattr(torchcfm, "__version__") else "1.0.7",
               torch=torch.__version__, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               commit=subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
               methods={})
    t_all = stamp()
    for method, path, Matcher in (("OT-CFM", "ot", ExactOptimalTransportConditionalFlowMatcher),
                                  ("CFM", "cfm", ConditionalFlowMatcher)):
        rec = dict(genlab_steps_s=[], peer_steps_s=[], ratio=[], genlab_cpu_per_step_ms=[], peer_cpu_per_step_ms=[],
                   loads=[], genlab_setup_s=[], ratio_without_setup=[])
        g_model, p_net = make_genlab(tr, path, a), make_peer_net(a)
        assert all(torch.equal(p, q) for p, q in zip(g_model.net.state_dict().values(), p_net.state_dict().values()))
        p_opt = torch.optim.Adam(p_net.parameters(), lr=a.lr)
        fm = Matcher(sigma=0.0)
        gen = torch.Generator().manual_seed(a.seed)
        for r in range(a.repeats):        # interleaved: genlab, then torchcfm, same step count
            s = stamp()
            genlab_train(g_model, tr, 0, a, seed=100 + r)      # gl.train's fixed set-up cost (0 steps)
            setup = since(s)[0]
            s = stamp()
            genlab_train(g_model, tr, a.steps, a, seed=100 + r)
            gw, gc = since(s)
            s = stamp()
            peer_train(p_net, p_opt, fm, tr, a.steps, a, gen)
            pw, pc = since(s)
            rec["genlab_steps_s"].append(round(a.steps / gw, 2))
            rec["peer_steps_s"].append(round(a.steps / pw, 2))
            rec["ratio"].append(round(pw / gw, 3))
            rec["genlab_setup_s"].append(round(setup, 3))
            rec["ratio_without_setup"].append(round(pw / max(gw - setup, 1e-9), 3))
            rec["genlab_cpu_per_step_ms"].append(round(1000 * gc / a.steps, 2))
            rec["peer_cpu_per_step_ms"].append(round(1000 * pc / a.steps, 2))
            rec["loads"].append(round(os.getloadavg()[0], 2))
            print(method, r, rec, flush=True)
        rec["ratio_median"] = statistics.median(rec["ratio"])
        rec["ratio_without_setup_median"] = statistics.median(rec["ratio_without_setup"])
        # ---- sampling time per NFE (Euler, 100 steps, 2000 points), interleaved, 3 repeats ----
        g_model.eval()
        g_t, p_t = [], []
        for r in range(3):
            s = stamp()
            g_model.sample(2000, steps=100, sampler="euler", generator=torch.Generator().manual_seed(r))
            g_t.append(since(s)[0] / g_model.last_nfe * 1000)
            s = stamp()
            peer_sample(p_net, 2000, 100, r)
            p_t.append(since(s)[0] / 100 * 1000)
        rec["sample_ms_per_nfe"] = dict(genlab=round(statistics.median(g_t), 3), torchcfm=round(statistics.median(p_t), 3),
                                        n=2000)
        # ---- quality at equal steps (continue both to quality_steps in total) ----
        done = a.steps * a.repeats
        if a.quality_steps > done:
            genlab_train(g_model, tr, a.quality_steps - done, a, seed=999)
            peer_train(p_net, p_opt, fm, tr, a.quality_steps - done, a, gen)
        g_model.eval()
        ref = te.x[-2000:]
        xg = g_model.sample(2000, steps=100, sampler="euler", generator=torch.Generator().manual_seed(7))
        xp = peer_sample(p_net, 2000, 100, 7)
        x = te.x[:a.n_nll]
        g_nll, g_nfe = nll(g_model.velocity(), x, a)
        p_nll, p_nfe = nll(lambda t, z: p_net(z, t.expand(z.shape[0])), x, a)
        rec["quality"] = dict(steps=max(done, a.quality_steps),
                              genlab=dict(energy_distance=round(energy_distance(xg, ref), 5), test_nll=round(g_nll, 4),
                                          kl_gap=round(g_nll - te.entropy, 4), nll_nfe=g_nfe),
                              torchcfm=dict(energy_distance=round(energy_distance(xp, ref), 5), test_nll=round(p_nll, 4),
                                            kl_gap=round(p_nll - te.entropy, 4), nll_nfe=p_nfe),
                              data_vs_data=round(energy_distance(tr.x[:2000], ref), 5), n_nll=len(x))
        out["methods"][method] = rec
        print(method, json.dumps(rec), flush=True)
    out["wall_s"], out["cpu_s"] = [round(v, 1) for v in since(t_all)]
    out["load_end"] = round(os.getloadavg()[0], 2)
    RAW.write_text(json.dumps(out, indent=1))
    report(a)


def report(a):
    o = json.loads(RAW.read_text())
    L = ["# Flow matching side by side with torchcfm", "",
         f"Command: `nice -n 5 /work/peers-venv/bin/python benchmarks/fm_peers.py --steps {o['steps']} --repeats "
         f"{o['repeats']} --quality-steps {o['quality_steps']}` (report: `--report`).", "",
         f"Machine: 2-core CPU shared with other sessions, torch {o['torch']}, 1 thread; torchcfm {o['torchcfm']} "
         f"(installed `--no-deps` in /work/peers-venv); date {o['date']}; genlab commit {o['commit']}; whole run "
         f"{o['wall_s']} s wall, {o['cpu_s']} s CPU; 1-minute load average at the end {o['load_end']}.", "",
         f"Same data (`{o['toy']}` train split, 20 000 points), same network (genlab `TimeMLP`, width {o['width']}, "
         f"{o['depth']} residual blocks, 64-d sinusoidal time embedding, identical initial weights), batch {o['batch']}, "
         f"Adam lr {o['lr']} constant, no gradient clipping, no EMA; path σ = 0 in both (x_t = t x₁ + (1 − t) x₀). "
         "genlab trains through `gl.train` (the timing includes its set-up: config, Accelerate, logging); torchcfm "
         "through its documented plain loop (`sample_location_and_conditional_flow`). Runs alternate genlab / torchcfm.", "",
         "| method | genlab steps/s (per repeat) | torchcfm steps/s | ratio genlab/torchcfm (per repeat) | median ratio "
         "| median ratio without gl.train set-up (s) | CPU ms/step genlab / torchcfm | load |",
         "|---|---|---|---|---|---|---|---|"]
    for m, r in o["methods"].items():
        L.append(f"| {m} | {', '.join(map(str, r['genlab_steps_s']))} | {', '.join(map(str, r['peer_steps_s']))} | "
                 f"{', '.join(map(str, r['ratio']))} | **{r['ratio_median']:.2f}** | "
                 f"{r['ratio_without_setup_median']:.2f} ({statistics.median(r['genlab_setup_s']):.2f} s) | "
                 f"{statistics.median(r['genlab_cpu_per_step_ms']):.1f} / {statistics.median(r['peer_cpu_per_step_ms']):.1f} | "
                 f"{', '.join(map(str, r['loads']))} |")
    L += ["", "Sampling (Euler, 100 steps, 2000 points; median of 3 interleaved repeats), wall ms per network evaluation:", "",
          "| method | genlab | torchcfm (torchdiffeq euler) |", "|---|---|---|"]
    for m, r in o["methods"].items():
        s = r["sample_ms_per_nfe"]
        L.append(f"| {m} | {s['genlab']} | {s['torchcfm']} |")
    L += ["", "Quality at equal steps (energy distance of 2000 Euler-100 samples to 2000 test points; test NLL of the first "
          "test points by the same dopri5 (1e-5) exact-trace ODE likelihood for both; KL gap = NLL − true entropy):", "",
          "| method | steps | genlab ED | torchcfm ED | data vs data | genlab NLL (gap) | torchcfm NLL (gap) | n NLL |",
          "|---|---|---|---|---|---|---|---|"]
    for m, r in o["methods"].items():
        q = r["quality"]
        L.append(f"| {m} | {q['steps']} | {q['genlab']['energy_distance']:.4f} | {q['torchcfm']['energy_distance']:.4f} | "
                 f"{q['data_vs_data']:.4f} | {q['genlab']['test_nll']:.3f} ({q['genlab']['kl_gap']:.3f}) | "
                 f"{q['torchcfm']['test_nll']:.3f} ({q['torchcfm']['kl_gap']:.3f}) | {q['n_nll']} |")
    notes = RESULTS / "fm_peers_notes.md"
    if notes.exists():
        L += ["", notes.read_text().strip()]
    MD.write_text("\n".join(L) + "\n")
    print(MD.read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", action="store_true")
    p.add_argument("--toy", default="8gaussians")
    p.add_argument("--steps", type=int, default=500, help="training steps per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quality-steps", type=int, default=2000, help="total steps before the quality comparison")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-nll", type=int, default=500)
    a = p.parse_args()
    report(a) if a.report else run(a)


if __name__ == "__main__":
    main()
