"""genlab flows side by side with zuko and normflows (MAF, NSF, RealNVP) on 2-D toys.

    /work/peers-venv/bin/python benchmarks/flows_peers.py                  # run, then write the report
    /work/peers-venv/bin/python benchmarks/flows_peers.py --steps 500 --repeats 3 --data moons,checkerboard
    python benchmarks/flows_peers.py --report                              # rewrite the report only

Protocol (BRIEF "side-by-side"): the same training points (genlab's toy train split), the same
architecture as far as each library allows (see ARCH below and the report), batch 256, Adam with
the same learning rate and gradient-norm clipping 1.0, the same number of steps, and the three
libraries interleaved in ONE process (repeat r runs genlab, zuko, normflows in a rotated order, so
machine load hits all alike). genlab trains through ``gl.train`` (its product path, no run
directory); the peers through the shortest correct loop of their own API. Reported: steps/s of
each (training loop only: wall seconds and process CPU seconds), the ratio genlab / peer (median
over repeats), and test NLL (nats/point, 5 000 test points) at equal steps.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _flowbench as fb  # noqa: E402
import genlab as gl  # noqa: E402

RESULTS = fb.ROOT / "benchmarks" / "results" / "flows_peers.jsonl"
REPORT = fb.ROOT / "benchmarks" / "results" / "flows_peers.md"
MICRO = fb.ROOT / "benchmarks" / "results" / "flows_peers_micro.jsonl"
H = 128          # hidden width of every conditioner (two hidden layers)
LAYERS = {"maf": 5, "nsf_ar": 4, "nsf_c": 4, "realnvp": 8}
BINS, BOUND = 8, 4.0

ARCH = {
    "maf": "5 affine MADE layers, hidden (128, 128), ReLU, orderings alternating; no ActNorm (genlab "
           "`actnorm=False`); genlab/zuko bound the log-scale softly (tanh, resp. a/(1+|a|/ln 1e-3)), normflows "
           "(nflows MADE, `use_residual_blocks=False`, `num_blocks=1` → linear, ReLU, linear, linear) does not.",
    "nsf_ar": "autoregressive RQ spline: 4 MADE layers, hidden (128, 128), 8 bins, bound 4 (zuko: its fixed "
              "[−5, 5]), no ActNorm; normflows' `AutoregressiveRationalQuadraticSpline` uses a residual MADE "
              "(1 block of two 128-unit layers).",
    "nsf_c": "coupling RQ spline: 4 couplings, MLP (128, 128), 8 bins, bound 4, no ActNorm; normflows' "
             "`CoupledRationalQuadraticSpline` uses a residual net (1 block of two 128-unit layers). zuko has no "
             "coupling spline flow with linear tails (NCSF is circular).",
    "realnvp": "8 affine couplings, MLP (128, 128), ReLU, swap between couplings, no ActNorm; genlab bounds s = "
               "2 tanh(ŝ/2), zuko a/(1+|a|/ln 1e-3), normflows exp(ŝ) unbounded.",
}
LIBS = {"maf": ["genlab", "zuko", "normflows"], "nsf_ar": ["genlab", "zuko", "normflows"],
        "nsf_c": ["genlab", "normflows"], "realnvp": ["genlab", "zuko", "normflows"]}


# ---------------------------------------------------------------------------------------------
# builders: each returns (module, log_prob(x) -> (N,))
# ---------------------------------------------------------------------------------------------
def build_genlab(kind, train):
    kw = dict(actnorm=False, hidden=(H, H))
    if kind == "maf":
        m = gl.create("maf", data=train, num_layers=LAYERS[kind], **kw)
    elif kind == "nsf_ar":
        m = gl.create("nsf", data=train, variant="autoregressive", num_layers=LAYERS[kind], bins=BINS,
                      tail_bound=BOUND, **kw)
    elif kind == "nsf_c":
        m = gl.create("nsf", data=train, variant="coupling", num_layers=LAYERS[kind], bins=BINS, tail_bound=BOUND,
                      **kw)
    else:
        m = gl.create("realnvp", data=train, num_layers=LAYERS[kind], permutation="reverse", **kw)
    return m, m.log_prob


def build_zuko(kind, train):
    import zuko
    if kind == "maf":
        flow = zuko.flows.MAF(2, transforms=LAYERS[kind], hidden_features=(H, H))
    elif kind == "nsf_ar":
        flow = zuko.flows.NSF(2, bins=BINS, transforms=LAYERS[kind], hidden_features=(H, H))
    elif kind == "realnvp":
        flow = zuko.flows.RealNVP(2, transforms=LAYERS[kind], hidden_features=(H, H))
    else:
        raise KeyError(kind)
    return flow, lambda x: flow().log_prob(x)


def build_normflows(kind, train):
    import normflows as nf
    flows = []
    for i in range(LAYERS[kind]):
        if kind == "maf":
            flows.append(nf.flows.MaskedAffineAutoregressive(2, H, num_blocks=1, use_residual_blocks=False))
        elif kind == "nsf_ar":
            flows.append(nf.flows.AutoregressiveRationalQuadraticSpline(2, 1, H, num_bins=BINS, tail_bound=BOUND))
        elif kind == "nsf_c":
            flows.append(nf.flows.CoupledRationalQuadraticSpline(2, 1, H, num_bins=BINS, tail_bound=BOUND,
                                                                 reverse_mask=bool(i % 2)))
            continue
        else:
            net = nf.nets.MLP([1, H, H, 2], init_zeros=True)
            flows.append(nf.flows.AffineCouplingBlock(net))
        flows.append(nf.flows.Permute(2, mode="swap"))
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), flows)
    return model, model.log_prob


BUILD = {"genlab": build_genlab, "zuko": build_zuko, "normflows": build_normflows}


# ---------------------------------------------------------------------------------------------
def train_peer(module, log_prob, x, steps, batch, lr, seed):
    """The peer's own minimal loop: Adam, clip 1.0, uniform minibatches of the training points."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    for _ in range(steps):
        xb = x[torch.randint(len(x), (batch,), generator=g)]
        loss = -log_prob(xb).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()


def one(kind, lib, data, steps, batch, lr, seed):
    train = gl.load_dataset(data, split="train")
    test = gl.load_dataset(data, split="test")
    torch.manual_seed(seed)
    module, log_prob = BUILD[lib](kind, train)
    params = sum(p.numel() for p in module.parameters())
    t0, c0 = time.perf_counter(), time.process_time()
    if lib == "genlab":
        gl.train(module, train, steps=steps, batch_size=batch, lr=lr, grad_clip=1.0, seed=seed, progress=False,
                 checkpoint_every=0, eval_every=-1, sample_every=-1)
    else:
        train_peer(module, log_prob, train.x.float(), steps, batch, lr, seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    module.eval()
    with torch.no_grad():
        nll = -torch.cat([log_prob(test.x[i:i + 1000].float()) for i in range(0, len(test), 1000)]).mean().item()
    return dict(kind=kind, lib=lib, data=data, steps=steps, batch=batch, lr=lr, seed=seed, params=params,
                wall=wall, cpu=cpu, steps_per_s=steps / wall, cpu_steps_per_s=steps / cpu, nll=nll,
                kl_gap=nll - test.entropy, load1=os.getloadavg()[0], commit=fb.git_rev())


def micro(kinds, data="moons", steps=100, repeats=5, batch=256):
    """Model step only (loss, backward, Adam step on one fixed batch), libraries interleaved: CPU ms per
    step, median over repeats. Separates the flows' own cost from the training loops and from load."""
    train = gl.load_dataset(data, split="train")
    x = train.x[:batch].float()
    out = []
    for kind in kinds:
        mods = {lib: BUILD[lib](kind, train) for lib in LIBS[kind]}
        times = {lib: [] for lib in mods}
        for rep in range(repeats + 1):                 # repeat 0 warms up
            for lib, (m, lp) in mods.items():
                opt = torch.optim.Adam(m.parameters(), 1e-3)
                c0 = time.process_time()
                for _ in range(steps):
                    loss = -lp(x).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                if rep:
                    times[lib].append(1e3 * (time.process_time() - c0) / steps)
        for lib, ts in times.items():
            out.append(dict(kind=kind, lib=lib, data=data, batch=batch, steps=steps, repeats=repeats,
                            cpu_ms_per_step=fb.median(ts), load1=os.getloadavg()[0], commit=fb.git_rev()))
            print(f"micro {kind:8s} {lib:10s} {out[-1]['cpu_ms_per_step']:.2f} CPU ms/step", flush=True)
    return out


def report(rows, path=REPORT):
    lines = ["# Flows side by side: genlab vs zuko 1.6.0 and normflows 1.7.3", "",
             "Command: `/work/peers-venv/bin/python benchmarks/flows_peers.py` "
             f"(this file: `python benchmarks/flows_peers.py --report`).  ",
             f"Date: {datetime.date(2026, 11, 22)}; genlab commit {rows[0]['commit'] if rows else '?'}; machine: "
             "2-core CPU shared with other sessions, torch 2.13.0, 1 thread, one process, libraries interleaved "
             "(rotated order per repeat).  ",
             "Settings: genlab toy train split (20 000 points), batch 256, Adam lr 1e-3, grad-norm clip 1.0, "
             "equal steps; test NLL on the 5 000-point test split; KL gap = NLL − true entropy (ANCHORS). "
             "steps/s counts the training loop only (genlab: `gl.train` with no run directory; peers: their "
             "minimal loop). Ratio = genlab steps/s ÷ peer steps/s per repeat, median over repeats (> 1: genlab "
             "faster); CPU ratio = peer CPU s ÷ genlab CPU s per repeat, median (> 1: genlab cheaper). CPU s = process "
             "CPU seconds of the loop.", ""]
    lines += ["Architectures:", ""] + [f"- **{k}**: {v}" for k, v in ARCH.items()] + [""]
    lines += ["| flow | data | library | params | steps | repeats | steps/s (median) | CPU s (median) | "
              "steps/s ratio genlab/peer | CPU ratio peer/genlab | KL gap (median) | load |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in LIBS:
        for data in sorted({r["data"] for r in rows if r["kind"] == kind}):
            gen = [r for r in rows if r["kind"] == kind and r["data"] == data and r["lib"] == "genlab"]
            for lib in LIBS[kind]:
                rs = [r for r in rows if r["kind"] == kind and r["data"] == data and r["lib"] == lib]
                if not rs:
                    continue
                ratio = cratio = "—"
                if lib != "genlab":
                    by_seed = {r["seed"]: r for r in gen}
                    rr = [by_seed[r["seed"]]["steps_per_s"] / r["steps_per_s"] for r in rs if r["seed"] in by_seed]
                    cc = [r["cpu"] / by_seed[r["seed"]]["cpu"] for r in rs if r["seed"] in by_seed]
                    ratio = f"{fb.median(rr):.2f}" if rr else "—"
                    cratio = f"{fb.median(cc):.2f}" if cc else "—"
                lines.append(f"| {kind} | {data} | {lib} | {rs[0]['params']:,} | {rs[0]['steps']} | {len(rs)} | "
                             f"{fb.median([r['steps_per_s'] for r in rs]):.1f} | "
                             f"{fb.median([r['cpu'] for r in rs]):.1f} | {ratio} | {cratio} | "
                             f"{fb.median([r['kl_gap'] for r in rs]):.3f} | "
                             f"{min(r['load1'] for r in rs):.1f}–{max(r['load1'] for r in rs):.1f} |")
    mic = fb.load(MICRO)
    if mic:
        lines += ["", "Model step only (`--micro`: loss + backward + Adam step on one fixed batch of 256, 100 steps, "
                  "libraries interleaved, median of 5 repeats; process CPU ms per step, lower is better; "
                  "ratio = peer ÷ genlab, > 1: genlab faster):", "",
                  "| flow | library | CPU ms/step | ratio peer/genlab | load |", "|---|---|---|---|---|"]
        for r in mic:
            g = [q for q in mic if q["kind"] == r["kind"] and q["lib"] == "genlab"][-1]
            lines.append(f"| {r['kind']} | {r['lib']} | {r['cpu_ms_per_step']:.2f} | "
                         f"{r['cpu_ms_per_step'] / g['cpu_ms_per_step']:.2f} | {r['load1']:.1f} |")
    lines += [""]
    extra = path.with_suffix(".notes.md")
    if extra.exists():
        lines += [extra.read_text()]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", default=",".join(LIBS))
    ap.add_argument("--data", default="moons,checkerboard")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--micro", action="store_true", help="model-step CPU cost only (see micro())")
    ap.add_argument("--results", type=Path, default=RESULTS, help="raw results (JSON lines)")
    a = ap.parse_args(argv)
    if a.micro:
        with open(MICRO, "w") as f:
            for r in micro(a.kinds.split(",")):
                f.write(json.dumps(r) + "\n")
    elif not a.report:
        try:
            os.nice(5)
        except OSError:
            pass
        for data in a.data.split(","):
            for kind in a.kinds.split(","):
                for lib in LIBS[kind]:      # warm-up (imports, first-call allocations), not recorded
                    one(kind, lib, data, 5, a.batch, a.lr, seed=0)
                for rep in range(a.repeats):
                    libs = LIBS[kind][rep % len(LIBS[kind]):] + LIBS[kind][:rep % len(LIBS[kind])]
                    for lib in libs:
                        r = one(kind, lib, data, a.steps, a.batch, a.lr, seed=rep)
                        with open(a.results, "a") as f:
                            f.write(json.dumps(r) + "\n")
                        print(f"{kind:8s} {data:12s} {lib:10s} rep {rep}: {r['steps_per_s']:.1f} it/s "
                              f"(cpu {r['cpu']:.1f}s) kl {r['kl_gap']:.3f}", flush=True)
    report(fb.load(a.results), path=REPORT if a.results == RESULTS else a.results.with_suffix(".md"))


if __name__ == "__main__":
    main()
