"""2-D toys (the eight FFJORD sets): the probability-flow ODE of ``score-sde`` — ODE-likelihood KL gap
(test NLL − true entropy; issue 6 target ≤ 0.05 nats on every set) and energy distance of samples to
held-out data. The flow-matching half is ``benchmarks/fm_toys.py`` (same protocol; its toy list and
helpers are imported from there).

    python benchmarks/sde_toys.py run --seeds 0,1,2                                   # final (test split)
    python benchmarks/sde_toys.py run --split val --toys checkerboard --tag tune-a --set prediction=velocity
    python benchmarks/sde_toys.py --report                                            # rewrite sde_toys.md

KL gap = NLL on the split − true entropy (ANCHORS.md; k-NN estimates carry ≈0.01 bias); where the toy's
density is known exactly, also the paired KL E[log p − log q] on the same points. NLL by the
instantaneous change of variables of the probability-flow ODE from t_ε to 1 (exact 2-D divergence,
dopri5 ``--rtol``/``--atol``) on the first ``--n-nll`` points of the split; energy distance of
``--n-ed`` samples (dopri5 on the same ODE) to as many other points of the split, beside the
data-vs-data reference (train points vs the same held-out points). Training data: ``--n-train``
points of the toy's train stream. Raw results: JSON lines in ``benchmarks/results/sde_toys.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).parent))
from fm_toys import TOYS, run_one as fm_run_one  # noqa: E402  (read-only reuse of the flow-matching benchmark's helpers)

RESULTS = Path(__file__).parent / "results"
RAW = RESULTS / "sde_toys.jsonl"
MD = RESULTS / "sde_toys.md"
HARD_FIRST = ["checkerboard", "rings", "2spirals", "pinwheel", "8gaussians", "circles", "swissroll", "moons"]

# chosen on the val split (see the tuning table of sde_toys.md); --set key=value overrides
SDE_CFG = dict(sde="vp", prediction="velocity", weighting="default", t_eps=1e-5)

# --per-toy: training steps and config per toy (flow matching's per-toy settings that meet the target,
# fm_toys.md / fm_toys_notes.md; the schedule chosen on the val split here); applied before --set
PER_TOY = {
    "8gaussians": dict(steps=4000), "moons": dict(steps=4000), "circles": dict(steps=8000),     # circles: val
    "swissroll": dict(steps=4000),
    "pinwheel": dict(steps=8000, cfg=dict(x_fourier=64, x_fourier_sigma=0.5)),      # fm_toys_notes.md, chosen on val
    "2spirals": dict(steps=16000, cfg=dict(x_fourier=64, x_fourier_sigma=2.0)),    # score-sde val at 8000: 0.062
    "rings": dict(steps=16000, cfg=dict(x_fourier=64, x_fourier_sigma=2.0)),
    "checkerboard": dict(steps=16000, cfg=dict(x_fourier=64, x_fourier_sigma=1.0)),   # + --batch 512 (fm_toys_notes.md, provisional)
}

# flow matching's per-toy settings that met the target in fm_toys.md (t_power aside, which score-sde has not):
# the budget at which score-sde with prediction="flow" is compared (session 5, tag s5-flow)
FM_PER_TOY = {
    "8gaussians": dict(steps=4000), "moons": dict(steps=4000), "circles": dict(steps=4000),
    "swissroll": dict(steps=4000),
    "pinwheel": dict(steps=8000, cfg=dict(x_fourier=64, x_fourier_sigma=0.5)),
    "2spirals": dict(steps=8000, cfg=dict(x_fourier=64, x_fourier_sigma=2.0)),
    "rings": dict(steps=16000, cfg=dict(x_fourier=64, x_fourier_sigma=2.0)),
    "checkerboard": dict(steps=32000, batch=512, cfg=dict(x_fourier=64, x_fourier_sigma=1.0)),
}

# titles of test-split tables other than the headline (others: "earlier configuration")
TAG_TITLES = {
    "s5f": "session 5: `prediction=\"flow\"` (the straight-path network, commit 269cab0) at flow matching's per-toy "
           "budget, FM_PER_TOY, `--fm-budget`",
    "s5-flow-out": "session 5, superseded: an earlier `prediction=\"flow\"` that predicted E[x₀ − z | x_t] from the "
                   "unscaled (x_t, t) with uniform t (commit 4edd0cc), at flow matching's budget",
}

TRAIN_EVAL_DEFAULTS = {"steps": 4000, "batch": 256, "lr": 2e-3, "warmup": 100, "ema": 0.995, "grad-clip": 1.0,
                       "width": 128, "depth": 3, "emb-dim": 64, "embedding": "sinusoidal", "x-scale": 0.5,
                       "n-train": 100_000, "n-nll": 2000, "n-ed": 2000, "rtol": 1e-5, "atol": 1e-5}


# the test-split commands behind sde_toys.md (printed by --report)
COMMANDS = [
    "# session 3 (tags final, final-D; VP linear β):",
    "nice -n 5 python benchmarks/sde_toys.py run --toys checkerboard,rings,2spirals,pinwheel,8gaussians,circles,"
    "swissroll,moons --seeds 0 --tag final                    # 8gaussians also --seeds 1,2",
    "nice -n 5 python benchmarks/sde_toys.py run --toys circles,swissroll,moons,pinwheel --seeds 0 --tag final-D "
    "--set weighting=likelihood",
    "# session 4 (tag s4, the headline): VP cosine schedule, per-toy steps and Fourier features (PER_TOY), dopri5 1e-4:",
    "# seed 0 of every toy but checkerboard (pinwheel then without Fourier features, the row of its own):",
    "nice -n 5 python benchmarks/sde_toys.py run --per-toy --set schedule=cosine --toys circles,swissroll,moons,"
    "8gaussians,pinwheel,2spirals,rings --seeds 0 --rtol 1e-4 --atol 1e-4 --tag s4",
    "# then (pinwheel with flow matching's chosen Fourier features F=64, σ=0.5, now in PER_TOY), in this order:",
    "S4='--per-toy --set schedule=cosine --rtol 1e-4 --atol 1e-4 --tag s4'",
    "nice -n 5 python benchmarks/sde_toys.py run $S4 --seeds 0 --toys pinwheel",
    "nice -n 5 python benchmarks/sde_toys.py run $S4 --seeds 1 --toys circles,swissroll,moons,8gaussians,pinwheel,2spirals",
    "nice -n 5 python benchmarks/sde_toys.py run $S4 --seeds 2 --toys circles,swissroll,moons,8gaussians,pinwheel,2spirals",
    "nice -n 5 python benchmarks/sde_toys.py run $S4 --seeds 1 --toys rings      # last: rings s0 was 0.082",
    "nice -n 5 python benchmarks/sde_toys.py run $S4 --seeds 2 --toys rings      # only if it could start before 11:00",
    "nice -n 5 python benchmarks/sde_toys.py run $S4 --seeds 0 --toys checkerboard --batch 512   # one seed, started 10:58",
    "# lead, end of session 4: checkerboard at 32000 steps (flow matching's val-chosen setting at the steps that met it there):",
    "nice -n 5 python benchmarks/sde_toys.py run --set schedule=cosine --set x_fourier=64 --set x_fourier_sigma=1.0 --batch 512 "
    "--steps 32000 --rtol 1e-4 --atol 1e-4 --tag s4 --seeds 0,1,2 --toys checkerboard",
    "# session 5 (tag s5, in the headline with s4): rings at 64000 steps (val 0.032 there against 0.057 at 32000):",
    "nice -n 5 python benchmarks/sde_toys.py run --set schedule=cosine --set x_fourier=64 --set x_fourier_sigma=2.0 "
    "--steps 64000 --rtol 1e-4 --atol 1e-4 --tag s5 --seeds 0,1,2 --toys rings      # one process per seed",
    "# session 5 (tag s5f): prediction='flow' at flow matching's per-toy steps, batch and features (FM_PER_TOY);",
    "# (tag s5-flow-out: the same command with commit 4edd0cc's earlier prediction='flow', superseded):",
    "for s in 0 1 2; do nice -n 5 python benchmarks/sde_toys.py run --fm-budget --set schedule=cosine --set prediction=flow "
    "--rtol 1e-4 --atol 1e-4 --tag s5f --seeds $s --toys checkerboard,rings,2spirals,pinwheel,circles,8gaussians,moons,"
    "swissroll & done",
    "# then checkerboard with flow matching's t_power=2 (FM_PER_TOY lacks it; flow matching's checkerboard setting has it):",
    "for s in 0 1 2; do nice -n 5 python benchmarks/sde_toys.py run --fm-budget --set schedule=cosine --set prediction=flow "
    "--set t_power=2 --rtol 1e-4 --atol 1e-4 --tag s5f --seeds $s --toys checkerboard & done",
    "# session 5 val (seed 0; circles 4000 steps, rings 16000 with F=64 σ=2; written to /tmp, then appended and retagged:",
    "# flow-out = commit 4edd0cc, flow-in-out = input scaling too with uniform t, flow = commit 269cab0):",
    "python benchmarks/sde_toys.py run --split val --n-nll 1000 --rtol 1e-4 --atol 1e-4 --set schedule=cosine "
    "--set prediction=flow --toys circles --steps 4000 --seeds 0 --tag flow",
    "# session 4 tuning (val split, seed 0 unless stated, 1000 points), e.g.:",
    "nice -n 5 python benchmarks/sde_toys.py run --split val --seeds 0 --n-nll 1000 --rtol 1e-4 --atol 1e-4 "
    "--set schedule=cosine --toys circles --tag tune-cos --steps 8000",
]


def run_one(toy, seed, a, model_kw):
    """One score-sde run under fm_toys.py's protocol (the same function trains, scores and records both)."""
    for k, v in dict(tol_check="", n_tol=300, save=None, no_ema_warmup=False).items():   # fm_toys-only options
        setattr(a, k, getattr(a, k, v))
    return fm_run_one(toy, "score-sde", seed, a, model_kw)


def run(a):
    torch.set_num_threads(1)
    sets = {}
    for item in a.set or []:
        k, v = item.split("=", 1)
        try:
            sets[k] = json.loads(v)
        except json.JSONDecodeError:
            sets[k] = v
    steps, batch = a.steps, a.batch
    for seed in [int(s) for s in a.seeds.split(",")]:      # seed outermost: a stopped run still covers every toy
        for toy in a.toys.split(","):
            kw = dict(SDE_CFG)
            a.steps, a.batch = steps, batch
            if a.per_toy or a.fm_budget:
                table = FM_PER_TOY if a.fm_budget else PER_TOY
                kw.update(table[toy].get("cfg", {}))
                a.steps = table[toy]["steps"]
                a.batch = table[toy].get("batch", batch)
            kw.update(sets)
            r = run_one(toy, seed, a, kw)
            print(json.dumps(r), flush=True)
            with open(a.out, "a") as fh:
                fh.write(json.dumps(r) + "\n")


def _med(rows, key):
    return statistics.median(r[key] for r in rows)


def describe(r) -> str:
    """Short label of a run's settings: VP schedule, parameterisation, weighting, features, training budget."""
    c, n, t = r["config"], r["net"], r["train"]
    parts = [f"{c.get('sde', 'vp').upper()} {c.get('schedule', 'linear')}", f"pred={c.get('prediction', 'eps')}",
             f"weighting={c.get('weighting', 'default')}"]
    if c.get("x_fourier"):
        parts.append(f"Fourier F={c['x_fourier']} σ={c.get('x_fourier_sigma', 1.0)}")
    if c.get("t_power", 1.0) != 1.0:
        parts.append(f"t_power={c['t_power']:g}")
    parts.append(f"MLP {n['width']}×{n['depth']}")
    parts.append(f"{t['steps']} steps" + ("" if t.get("grad_clip") == 1.0 else f", grad clip {t.get('grad_clip'):g}")
                 + ("" if t.get("batch", 256) == 256 else f", batch {t['batch']}"))
    return ", ".join(parts)


def _fm_gaps():
    """flow matching's test KL gaps (median over its seeds, its most-seeded best setting) from fm_toys.jsonl."""
    raw = RESULTS / "fm_toys.jsonl"
    rows = [json.loads(l) for l in open(raw)] if raw.exists() else []
    rows = [r for r in rows if r["split"] == "test" and r.get("tag") == "final" and r["family"] == "flow-matching"]
    out = {}
    for toy in {r["toy"] for r in rows}:
        groups = {}
        for r in rows:
            if r["toy"] == toy:
                groups.setdefault((json.dumps(r["config"], sort_keys=True), r["train"]["steps"]), []).append(r)
        g = min(groups.values(), key=lambda g: (-min(len(g), 3), _med(g, "kl_gap")))
        out[toy] = (_med(g, "kl_gap"), len(g), g[0]["train"]["steps"], bool(g[0]["config"].get("x_fourier")))
    return out


def _table(rows, only_run=False):
    fm = _fm_gaps()
    L = ["| toy | settings | seeds | KL gap (median) | per seed ± s.e. | target ≤ 0.05 | paired KL (exact p) | "
         "energy dist. (median) | data vs data | NLL tol / NFE | sample NFE | train wall / CPU s | NLL wall / CPU s | "
         "load | flow matching gap (fm_toys: seeds, steps) |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for toy in TOYS:
        t = [r for r in rows if r["toy"] == toy]
        if not t:
            if not only_run:
                L.append(f"| {toy} | – | 0 | not run | | | | | | | | | | | |")
            continue
        groups = {}
        for r in t:
            groups.setdefault(describe(r), []).append(r)
        # most seeds first; among equals the longest training (the latest, chosen on val) first
        for desc, g in sorted(groups.items(), key=lambda kv: (-len(kv[1]), -kv[1][0]["train"]["steps"])):
            g = sorted(g, key=lambda r: r["seed"])
            gap = _med(g, "kl_gap")
            per = ", ".join(f"s{r['seed']}: {r['kl_gap']:.3f}±{r['nll_se']:.3f}" for r in g)
            pk = [r for r in g if "kl_paired" in r]
            pks = f"{_med(pk, 'kl_paired'):.3f} (±{_med(pk, 'kl_paired_se'):.3f})" if pk else "–"
            verdict = "met" if gap <= 0.05 else "not met"
            if pk and gap <= 0.05 < _med(pk, "kl_paired"):
                verdict = "met by the gap; not by the paired KL"
            if len(g) < 3:
                verdict += f" ({len(g)} seed{'s' * (len(g) > 1)})"
            tols = ", ".join(sorted({format(r["rtol"], "g") for r in g}))
            f = fm.get(toy)
            fms = f"{f[0]:.3f} ({f[1]}, {f[2]}{', Fourier' if f[3] else ''})" if f else "–"
            L.append(f"| {toy} | {desc} | {len(g)} | {gap:.3f} | {per} | {verdict} | {pks} | "
                     f"{_med(g, 'energy_distance'):.4f} | {_med(g, 'data_vs_data'):.4f} | {tols} / {_med(g, 'nll_nfe'):.0f} | "
                     f"{_med(g, 'sample_nfe'):.0f} | {_med(g, 'train_wall_s'):.0f} / {_med(g, 'train_cpu_s'):.0f} | "
                     f"{_med(g, 'nll_wall_s'):.0f} / {_med(g, 'nll_cpu_s'):.0f} | "
                     f"{min(r['load'] for r in g):.1f}–{max(r['load'] for r in g):.1f} | {fms} |")
    return L + [""]


def report(a):
    rows = [json.loads(l) for l in open(RAW)] if RAW.exists() else []
    tags = a.final_tag.split(",")
    final = [r for r in rows if r["split"] == "test" and r.get("tag") in tags]
    tune = [r for r in rows if r["split"] == "val"]
    L = ["# The probability-flow ODE of score-sde on the 2-D toys", "",
         "Issue 6 target: \"2-D toys (all eight FFJORD sets): ODE-likelihood KL gap (test NLL minus true entropy) "
         "for flow matching and the probability-flow ODE; target ≤ 0.05 nats on every set; energy distance of "
         "samples to held-out data.\" This file: the probability-flow ODE half (flow matching: fm_toys.md).", "",
         "Commands (test split; the tuning runs are on the val split):", "", "```", *COMMANDS,
         "python benchmarks/sde_toys.py --report", "```", ""]
    if final:
        r0 = final[0]
        loads = [r["load"] for r in final]
        L += [f"## Headline: test split, tag{'s' * (len(tags) > 1)} {', '.join(f'`{t}`' for t in tags)}", "",
              f"Machine: 2-core CPU shared with four other sessions, torch {torch.__version__}, 1 thread, `nice -n 5`; "
              f"date {r0['date'][:10]}; genlab commit(s) {', '.join(sorted({r['commit'] for r in final}))}; 1-minute "
              f"load average {min(loads):.1f}–{max(loads):.1f} at the end of each run (wall times are inflated by the "
              "load; CPU seconds are the process's own). EMA with the engine's warm-up (commit e33f41d).", "",
              f"Common settings: {json.dumps({k: v for k, v in r0['config'].items() if not k.startswith('x_fourier')})}"
              f" (per-toy differences in the settings column), network {json.dumps(r0['net'])}, training "
              f"{json.dumps({k: v for k, v in r0['train'].items() if k != 'steps'})}; NLL on the first {r0['n_nll']} "
              f"test points, exact divergence, dopri5 at the listed rtol = atol; energy distance of {r0['n_ed']} "
              f"samples (dopri5 on the same ODE) to {r0['n_ed']} other test points. Median over seeds (each seed's "
              "gap ± s.e. listed).", ""] + _table(final)
    other = sorted({r["tag"] for r in rows if r["split"] == "test" and r.get("tag") not in tags},
                   key=lambda tg: (tg not in TAG_TITLES, tg))
    for tag in other:
        rr = [r for r in rows if r["split"] == "test" and r.get("tag") == tag]
        title = TAG_TITLES.get(tag, "earlier configuration, same protocol; not the headline")
        L += [f"### Test split, tag `{tag}` ({title})", ""] + _table(rr, only_run=True)
    if tune:
        L += ["## Tuning (validation split only)", "",
              "| tag | toy | settings | val KL gap ± s.e. | paired KL | energy dist. (data vs data) | NLL tol / NFE | "
              "train wall / CPU s | load |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in tune:
            pk = f"{r['kl_paired']:.3f} ± {r['kl_paired_se']:.3f}" if "kl_paired" in r else "–"
            L.append(f"| {r['tag']} | {r['toy']} | {describe(r)} | {r['kl_gap']:.3f} ± {r['nll_se']:.3f} | {pk} | "
                     f"{r['energy_distance']:.4f} ({r['data_vs_data']:.4f}) | {r['rtol']:g} / {r['nll_nfe']} | "
                     f"{r['train_wall_s']} / {r['train_cpu_s']} | {r['load']} |")
        L.append("")
    if a.notes and Path(a.notes).exists():
        L += [Path(a.notes).read_text().strip(), ""]
    MD.write_text("\n".join(L))
    print(MD.read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="run", choices=["run"])
    p.add_argument("--report", action="store_true", help="rewrite sde_toys.md from the raw JSON lines")
    p.add_argument("--final-tag", default="s4,s5", help="tags (comma-separated) of the test-split rows the headline table shows")
    p.add_argument("--notes", default=str(RESULTS / "sde_toys_notes.md"), help="text appended to the report")
    p.add_argument("--toys", default=",".join(HARD_FIRST))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--tag", default="final")
    p.add_argument("--set", action="append", help="score-sde config key=value (repeatable)")
    p.add_argument("--per-toy", action="store_true", help="steps and network features per toy (PER_TOY), then --set")
    p.add_argument("--fm-budget", dest="fm_budget", action="store_true",
                   help="flow matching's per-toy steps, batch and features (FM_PER_TOY), then --set")
    for flag, default in TRAIN_EVAL_DEFAULTS.items():       # same defaults as fm_toys.py (flow matching)
        p.add_argument("--" + flag, type=type(default), default=default)
    p.add_argument("--save", default=None, help="save each trained model under this folder (e.g. runs/sde_toys)")
    p.add_argument("--out", default=str(RAW))
    a = p.parse_args()
    if a.report:
        report(a)
    else:
        run(a)


if __name__ == "__main__":
    main()
