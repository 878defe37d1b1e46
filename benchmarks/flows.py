"""Flow benchmark: RealNVP, Glow, MAF, IAF and NSF on the 8 FFJORD 2-D toys (KL gap to the true
entropy) and on 8×8 digits (uniform-dequantisation bound, nats/image and bits/dim).

    python benchmarks/flows.py                 # run what is missing, then write benchmarks/results/flows.md
    python benchmarks/flows.py --report        # only rewrite the report from benchmarks/results/flows.jsonl
    python benchmarks/flows.py --models nsf --toys moons --toy-steps 3000

Every job trains through ``gl.train`` (1 thread per job, ``--workers`` jobs at a time, niced).
"""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import _flowbench as fb

FLOWS = ["realnvp", "glow", "maf", "iaf", "nsf"]
RESULTS = fb.ROOT / "benchmarks" / "results" / "flows.jsonl"
REPORT = fb.ROOT / "benchmarks" / "results" / "flows.md"
TOY = dict(steps=500, batch_size=256, lr=2e-3)
DIGITS = dict(steps=1000, batch_size=128, lr=1e-3, eval_samples=10)
# NSF toy settings for the target (KL gap <= 0.05 on every toy), chosen on the validation split
# (seed 0) and then run for 3 seeds; see the report. EASY: the default config at 2000 steps.
NSF_EASY = dict(model_kw={}, train_kw={}, steps=2000)
NSF_HARD = dict(model_kw=dict(num_layers=8, bins=32, tail_bound=3.0), train_kw=dict(schedule="cosine"), steps=2000)
NSF_TUNED = {t: NSF_HARD if t in ("checkerboard", "2spirals", "rings") else NSF_EASY for t in fb.TOYS}
# checkerboard missed 0.05 narrowly with NSF_HARD (median 0.055, val 0.058): the same net trained longer
NSF_LONGER = dict(NSF_HARD, steps=3000)
SEEDS = (0, 1, 2)


def nsf_tuned_jobs(toys, seeds=SEEDS, settings=None):
    return [dict(model="nsf", data=t, seed=s, batch_size=TOY["batch_size"], lr=TOY["lr"], tuned=True,
                 **(settings or NSF_TUNED[t])) for s in seeds for t in toys]   # seed-major: every toy gets seed 0 first


def toy_jobs(models, toys, seeds=(0,), steps=TOY["steps"], save=False):
    return [dict(model=m, data=t, seed=s, save=save and s == 0, **dict(TOY, steps=steps))
            for m in models for t in toys for s in seeds]


def digits_jobs(models, seeds=(0,), steps=DIGITS["steps"]):
    return [dict(model=m, data="digits", seed=s, save=s == 0, **dict(DIGITS, steps=steps)) for m in models for s in seeds]


def tuned_line(lines, t, rs):
    """One table line: a toy, one settings, its seeds."""
    kw = {**rs[0].get("model_kw", {}), **rs[0].get("train_kw", {})}
    med = fb.median([r["kl_gap"] for r in rs])
    lines.append(f"| {t} | {', '.join(f'{k}={v}' for k, v in kw.items()) or 'default'} | {rs[0]['steps']} | "
                 + ", ".join(fb.fmt(r["kl_gap"]) for r in rs) + f" | **{fb.fmt(med)}** ({len(rs)} seed{'s' * (len(rs) > 1)}) | "
                 f"{fb.fmt(fb.median([r['val_gap'] for r in rs]))} | {'met' if med <= 0.05 else 'not met'} | "
                 f"{fb.median([r['train_seconds'] for r in rs]):.0f} | "
                 f"{fb.median([r['cpu_seconds'] for r in rs]):.0f} | "
                 f"{min(r['load1'] for r in rs):.1f}–{max(r['load1'] for r in rs):.1f} |")


def _settings(r):
    kw = {**r["mkw"], **{k: v for k, v in r["tkw"].items() if k not in ("keep_best", "eval_every", "batch_size")}}
    return ", ".join(f"{k}={v}" for k, v in kw.items())


def _load_range(loads):
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "—"


def seeded_digits_table(lines, tune, dig):
    """Digits against the target, median over seeds: the tune runs with test figures (settings chosen on the
    validation split), and the flows.py runs of Glow/NSF/RealNVP (default config) grouped over seeds."""
    lines += ["", "### Digits against the target (every flow below 99.7 nats/image test): median over seeds", "",
              "Rows from `benchmarks/flows_digits_tune.py ... SEED --test` (batch 128, cosine schedule, keep_best on the "
              "validation split checked every 100 steps; the settings were chosen on the validation split of seed 0; "
              "test bound with 10 draws of u per image; IW = importance-weighted bound with 10 draws, a tighter bound "
              "on −ln P(x)) and from `benchmarks/flows.py --digits-seeds 0,1,2` / `benchmarks/realnvp.py` (default config, "
              "no schedule, last weights). The seed sets the initialisation and the batches. CPU s = process CPU seconds "
              "of training on this 2-core machine (1 thread; the wall time is inflated by the other sessions). The IAF rows "
              "computed their test figure in the same run; between them, only the validation split chose (the "
              "variationally dequantised row-block IAF at 1500 steps: validation median 104.4 against 104.9 at 1000 "
              "steps; the test figures of both are shown, nothing was selected on them).", "",
              "| model | settings | steps | seeds | val per seed | test per seed | **median test** | median test (IW, k=10) "
              "| < 99.7 | params | train wall s (median) | train CPU s (median, max) | load |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups = {}
    for r in tune:
        if "test" in r:
            groups.setdefault(("tune", r["model"], _settings(r), r["steps"]), {})[r["seed"]] = r
    for (_, m, st, steps), rs in sorted(groups.items(), key=lambda kv: FLOWS.index(kv[0][1])):
        rs = [rs[k] for k in sorted(rs)]
        med = fb.median([r["test"] for r in rs])
        vals = ", ".join(f"{r['val']:.1f}" for r in rs)
        tests = ", ".join(f"{r['test']:.1f}" for r in rs)
        lines.append(f"| {m} | {st} | {steps} | {', '.join(str(r['seed']) for r in rs)} | {vals} | {tests} | **{med:.1f}** | "
                     f"{fb.median([r['test_iw'] for r in rs]):.1f} | {'yes' if med < 99.7 else 'no'}"
                     f"{'' if len(rs) >= 3 else f' ({len(rs)} seed' + 's' * (len(rs) > 1) + ')'} | {rs[0]['params']:,} | "
                     f"{fb.median([r['wall'] for r in rs]):.0f} | {fb.median([r['cpu'] for r in rs]):.0f}, "
                     f"{max(r['cpu'] for r in rs)} | {min(r['load'] for r in rs):.1f}–{max(r['load'] for r in rs):.1f} |")
    for m, steps in sorted({(r["model"], r["steps"]) for r in dig}, key=lambda t: (FLOWS.index(t[0]), t[1])):
        rs = {r["seed"]: r for r in dig if r["model"] == m and r["steps"] == steps and not r.get("model_kw")}
        if len(rs) < 2:
            continue
        rs = [rs[k] for k in sorted(rs)]
        med = fb.median([r["nll"] for r in rs])
        cpus = [r.get("cpu_seconds") for r in rs if r.get("cpu_seconds") is not None]
        tests = ", ".join(f"{r['nll']:.1f}" for r in rs)
        lines.append(f"| {m} | default | {steps} | {', '.join(str(r['seed']) for r in rs)} | "
                     f"{', '.join(fb.fmt(r.get('val_nll'), 1) for r in rs)} | {tests} | "
                     f"**{med:.1f}** | — | {'yes' if med < 99.7 else 'no'}{'' if len(rs) >= 3 else f' ({len(rs)} seeds)'} | "
                     f"{rs[0]['params']:,} | {fb.median([r['train_seconds'] for r in rs]):.0f} | "
                     f"{(f'{fb.median(cpus):.0f}, {max(cpus):.0f}' + ('' if len(cpus) == len(rs) else f' ({len(cpus)} of {len(rs)} runs)')) if cpus else '—'} | "
                     f"{_load_range([r['load1'] for r in rs if 'load1' in r])} |")


def report(rows, path=REPORT, cmd=""):
    rows = [r for r in rows if "error" not in r]
    lines = ["# Normalising flows: 2-D toys and 8×8 digits", "",
             "Commands: `python benchmarks/flows.py --workers 4` (toys at 500 steps, digits at 1000 steps), "
             "`python benchmarks/flows.py --models nsf --toy-steps 2000 --no-digits --workers 4` (longer NSF runs); "
             "`python benchmarks/flows.py --nsf-tuned --toys rings,2spirals,checkerboard --workers 1` (NSF against the "
             "target, 3 seeds; `--nsf-longer` for 3000 steps, `--nsf-steps 5000` for the checkerboard row that meets it); "
             "RealNVP 1500/2000-step runs from `python benchmarks/realnvp.py`; digits against the target (session 3): "
             "`python benchmarks/flows_digits_tune.py maf 2000 '{\"conditioner\": \"conv\"}' "
             "'{\"schedule\": \"cosine\", \"keep_best\": true}' SEED --test >> benchmarks/results/flows_digits_tune.jsonl` "
             "for SEED = 0, 1, 2 (IAF likewise with the settings in its row), "
             "`python benchmarks/flows.py --models glow,nsf --no-toys --digits-seeds 1,2 --workers 1`; this file rewritten by "
             "`python benchmarks/flows.py --report`.  ", f"Date: {datetime.date(2026, 11, 22)}; "
             f"genlab commit {fb.git_rev()}; machine: {fb.machine()}.  ",
             "Other sessions were loading the 2-core machine heavily during these runs (load average 7–19), so "
             "wall times and steps/s are pessimistic and only comparable within this table.", "",
             f"## KL gap on the FFJORD toys (test NLL − true entropy, nats/point; lower is better, 0 is perfect)", "",
             f"Settings: {TOY['steps']} steps unless stated, batch {TOY['batch_size']}, lr {TOY['lr']}, "
             "each family's default config (`gl.create(name, data=train)`), seed 0, 5 000 test points. "
             "Entropies from ANCHORS.md (k-NN estimates carry ≈0.01 bias; 8gaussians and checkerboard exact).", ""]
    toys = [t for t in fb.TOYS if any(r["data"] == t for r in rows)]
    models = [m for m in FLOWS if any(r["model"] == m and r["data"] in toys for r in rows)]
    lines.append("| flow | " + " | ".join(toys) + " | mean | steps/s |")
    lines.append("|---" * (len(toys) + 3) + "|")
    for m in models:
        cells, gaps, sps = [], [], []
        for t in toys:
            rs = [r for r in rows if r["model"] == m and r["data"] == t and r["seed"] == 0 and r["steps"] == TOY["steps"]]
            star = ""
            if not rs:   # fall back to a run with another step count (marked *)
                rs = [r for r in rows if r["model"] == m and r["data"] == t and r["seed"] == 0]
                star = f"*{rs[-1]['steps']}" if rs else ""
            if rs:
                gaps.append(rs[-1]["kl_gap"])
                sps.append(rs[-1]["steps_per_s"])
            cells.append(fb.fmt(rs[-1]["kl_gap"]) + (f" ({star} steps)" if star else "") if rs else "—")
        mean = sum(gaps) / len(gaps) if len(gaps) == len(toys) else float("nan")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {fb.fmt(mean)} | {fb.fmt(fb.median(sps), 1)} |")
    tuned = [r for r in rows if r.get("tuned")]
    if tuned:
        lines += ["", "### NSF against the target (KL gap ≤ 0.05 nats on every toy): median of 3 seeds", "",
                  "Settings per toy chosen on the validation split (seed 0); batch 256, lr 0.002; the seed sets the "
                  "initialisation and the batches. KL gap = test NLL − entropy (ANCHORS); val gap likewise on the "
                  "validation split. CPU s = process CPU seconds of training (the wall time is inflated by the "
                  "other sessions; load = 1-minute load average at the end of the job).", "",
                  "| toy | settings | steps | KL gap per seed | median KL gap | median val gap | target ≤ 0.05 | "
                  "train wall s (median) | train CPU s (median) | load |", "|---|---|---|---|---|---|---|---|---|---|"]
        for t in fb.TOYS:
            configs = {}
            for r in tuned:   # one line per toy and settings; a seed run twice counts once (the last run)
                if r["data"] == t:
                    configs.setdefault(fb.job_key(dict(r, seed=0)), {})[r["seed"]] = r
            # the earlier single 2000-step run (default config, torch's default initialisation seed), marked
            old = [r for r in rows if r["model"] == "nsf" and r["data"] == t and r["steps"] == 2000
                   and not r.get("tuned")]
            if old:
                r = old[-1]
                lines.append(f"| {t} | default (earlier run) | {r['steps']} | {fb.fmt(r['kl_gap'])} | "
                             f"**{fb.fmt(r['kl_gap'])}** (1 seed) | — | "
                             f"{'met' if r['kl_gap'] <= 0.05 else 'not met'} (1 seed) | {r['train_seconds']:.0f} "
                             f"| — | — |")
            for rs in configs.values():
                rs = [rs[k] for k in sorted(rs)]
                tuned_line(lines, t, rs)
    extra = [r for r in rows if r["data"] in fb.TOYS and r["steps"] != TOY["steps"] and not r.get("tuned")]
    if extra:
        lines += ["", "Longer runs:", "", "| flow | data | steps | KL gap | train s |", "|---|---|---|---|---|"]
        for r in extra:
            lines.append(f"| {r['model']} | {r['data']} | {r['steps']} | {fb.fmt(r['kl_gap'])} | {r['train_seconds']:.0f} |")
    dig = [r for r in rows if r["data"] == "digits"]
    lines += ["", "## 8×8 digits (17 levels, D = 64): test NLL bound", "",
              f"Settings: {DIGITS['steps']} steps, batch {DIGITS['batch_size']}, lr {DIGITS['lr']}, default config, "
              "uniform dequantisation y = (x+u)/17 then logit pre-processing (α = 0.05); the bound "
              "−E_u ln p averaged over 10 draws of u per test image (447 test images, Tomczak's split). "
              "1 bit/dim = 44.36 nats/image.", "",
              "| model | settings (beyond the default config) | kind | params | val NLL | test NLL (nats/image) | "
              "bits/dim | < 99.7 | train wall s | train CPU s | steps/s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in FLOWS:
        for r in [r for r in dig if r["model"] == m]:
            kw = {**r.get("model_kw", {}), **r.get("train_kw", {})}
            if r.get("best_step") is not None:
                kw["best step"] = r["best_step"]
            lines.append(f"| {m} (seed {r['seed']}, {r['steps']} steps) | {', '.join(f'{k}={v}' for k, v in kw.items()) or '—'} "
                         f"| {r['kind']} (uniform deq.) | {r['params']:,} | {fb.fmt(r.get('val_nll'), 1)} | "
                         f"{r['nll']:.1f} | {r['bits_per_dim']:.3f} | {'yes' if r['nll'] < 99.7 else 'no'} | "
                         f"{r['train_seconds']:.0f} | {fb.fmt(r.get('cpu_seconds'), 0)} | {r['steps_per_s']:.1f} |")
    for k, v in fb.DIGITS_BASELINES.items():
        lines.append(f"| baseline: {k} (ANCHORS) | | exact | | | {v} | {v / 44.3614:.3f} | | | | |")
    tune = fb.load(RESULTS.parent / "flows_digits_tune.jsonl")
    seeded_digits_table(lines, tune, dig)
    if tune:
        lines += ["", "Tuning attempts on the validation split (`benchmarks/flows_digits_tune.py`, seed 0, batch 128, "
                  "keep_best: the weights of the best validation step, checked every 100 steps; val bound with 5 "
                  "draws; no test figures were taken from these; the runs with test figures are in the table above):", "",
                  "| model | settings | steps | best step | val NLL | params | wall s | CPU s | load |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in [r for r in tune if "test" not in r]:
            kw = {**r["mkw"], **{k: v for k, v in r["tkw"].items() if k not in ("keep_best", "eval_every")}}
            lines.append(f"| {r['model']} | {', '.join(f'{k}={v}' for k, v in kw.items())} | {r['steps']} | "
                         f"{r['best_step']} | {r['val']:.1f} | {r['params']:,} | {r['wall']} | {r['cpu']} | {r['load']:.1f} |")
        lines += ["", "Why MAF was 10 nats behind RealNVP (session 3): not the affine map, the conditioner. Every MADE "
                  "variant (wider, deeper, more dropout, cosine schedule with the best-validation weights; IAF with "
                  "`passes=4`) peaks on the validation split after 200–500 steps at 106–111 nats and then memorises: the "
                  "1000-step default run reaches a training loss of 90 against 106 on validation. A MADE on 64 inputs has "
                  "no weight sharing (248k parameters for 1000 images), while RealNVP and Glow on digits use convolutional "
                  "conditioners (21k and 51k parameters). Both flows share everything else (dequantisation, logit "
                  "pre-processing, ActNorm, the order reversals, the optimiser). With a masked-convolution conditioner "
                  "(`conditioner=\"conv\"`, 95k parameters: PixelCNN-style masks, the image rotated/transposed between "
                  "layers) the same affine autoregressive flow trains to validation 97.5 at 1000 steps and 96.0 at 2000 "
                  "(still improving, train 89.6; test median 92.6 over 3 seeds, below RealNVP's 95.9); IAF uses the same conditioner with row-block orderings of "
                  "the squeezed image (`conv_order=\"row\", conv_squeeze=True`) or the four pixels of each 2×2 block "
                  "(`conv_order=\"group\"`), 4 sweeps per layer for the density: these block orderings reach only "
                  "validation 106.8 and 107.9 (train 95–97, best step 600–700): in every layer a quarter of the pixels "
                  "(or a 2-row block) is transformed without seeing its neighbours, where MAF's pixel order conditions "
                  "every pixel on all earlier ones; the full pixel order would cost IAF 64 sweeps per layer. Variational "
                  "dequantisation (`dequant=\"variational\"`, a learned q(u | x), Flow++) moves the row-block IAF from "
                  "test 102.8 to 100.5 (validation 106.8 → 106.0; one seed each); over 3 seeds it gives test 99.8 at 1000 "
                  "steps and, with 1500 steps (better on validation, 104.4 vs 104.9), **99.5**: below 99.7 in 287 CPU-s, "
                  "by less than the spread between seeds (99.0–100.3). The importance-weighted bound of the same models "
                  "is 96.1."]
    lines += ["", "IAF's density (needed for maximum-likelihood training) costs one MADE pass per dimension and layer: "
              "measured on digits by `benchmarks/flows_iaf_cost.py` (batch 128, default config, load ≈ 7): MAF 0.020 CPU-s per step, "
              "IAF 1.20 (60×: 10 CPU-minutes buy 500 steps), IAF with `passes=8` 0.111, `passes=4` 0.061, `passes=2` 0.040 "
              "(block-autoregressive MADE: exact density in P passes; P = 2 is a coupling layer). IAF samples in one pass. "
              "With the masked-convolution conditioner (training CPU seconds / steps of the runs above, load ≈ 6–7, "
              "validation checks included): MAF 0.13 CPU-s per step; IAF with `conv_order=\"row\", conv_squeeze=True` "
              "or `conv_order=\"group\"` (4 sweeps per layer) 0.17–0.18; a pixel-order IAF would need 64 sweeps, a "
              "row-order one on the unsqueezed image 8 (about 1.1 CPU-s per step, measured once)."]
    errs = [r for r in fb.load(RESULTS) if "error" in r]
    if errs:
        lines += ["", "Failed jobs: " + "; ".join(f"{r['model']}/{r['data']}: {r['error']}" for r in errs)]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(FLOWS))
    ap.add_argument("--toys", default=",".join(fb.TOYS))
    ap.add_argument("--toy-steps", type=int, default=TOY["steps"])
    ap.add_argument("--digits-steps", type=int, default=DIGITS["steps"])
    ap.add_argument("--digits-seeds", default="0", help="seeds of the digits jobs, e.g. 0,1,2")
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--no-toys", action="store_true")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--report", action="store_true", help="only write the report")
    ap.add_argument("--nsf-tuned", action="store_true", help="NSF with the per-toy tuned settings, 3 seeds")
    ap.add_argument("--nsf-longer", action="store_true", help="with --nsf-tuned: the hard settings at 3000 steps")
    ap.add_argument("--nsf-steps", type=int, help="with --nsf-tuned: the hard settings at this many steps")
    a = ap.parse_args(argv)
    models = [m for m in a.models.split(",") if m]
    if not a.report:
        # priority order (the machine is shared): digits first, then the toys one at a time across flows
        toys = [t for t in a.toys.split(",") if t]
        if a.nsf_tuned:
            settings = dict(NSF_HARD, steps=a.nsf_steps) if a.nsf_steps else NSF_LONGER if a.nsf_longer else None
            fb.run_all(nsf_tuned_jobs(toys, settings=settings), RESULTS, workers=a.workers)
            return report(fb.load(RESULTS))
        seeds = tuple(int(x) for x in a.digits_seeds.split(",") if x)
        jobs = [] if a.no_digits else digits_jobs([m for m in models if m != "iaf"], seeds=seeds, steps=a.digits_steps)
        if not a.no_toys:
            jobs += [j for t in toys for j in toy_jobs(models, [t], steps=a.toy_steps, save=True)]
        fb.run_all(jobs, RESULTS, workers=a.workers)
    report(fb.load(RESULTS), cmd=fb.command_line())


if __name__ == "__main__":
    main()
