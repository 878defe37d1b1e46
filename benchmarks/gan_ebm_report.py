"""Rewrite ``benchmarks/results/gan_ebm.md`` from the raw JSON lines of the GAN/EBM benchmarks.

    python benchmarks/gan_ebm_report.py

Inputs (appended by the benchmark scripts): ``results/gan_modes.jsonl`` (benchmarks/gan_modes.py),
``results/gan_images.jsonl`` (benchmarks/gan_images.py), ``results/ebm_toys.jsonl``
(benchmarks/ebm_toys.py). The hand-written preamble lives in ``results/gan_ebm_notes.md`` (kept
as is at the top); the tables below it are generated.
"""
from __future__ import annotations

import json
import math
import statistics as st
import subprocess
from collections import defaultdict
from pathlib import Path

RES = Path(__file__).parent / "results"
LOSS_ORDER = ["minimax", "ns", "lsgan", "wgan", "wgan-gp", "hinge"]
# tags of benchmarks/gan_modes.py runs, newest first (older tags were measured under other settings)
MODE_TAGS = [("s4b", "GAN mode coverage, session 4, two stages: R1 γ = 0.1 for 8000 steps, then r1 = 0 at lr 2e-4 for "
                     "8000 more (ring8, grid25; 2500 samples; mean ± s.e. over seeds 0–4)"),
             ("s4", "GAN mode coverage, session 4: R1 penalty on real data (ring8, grid25; 2500 samples; "
                    "mean ± s.e. over seeds 0–4)"),
             ("s3", "GAN mode coverage, session 3: longer runs, EMA with warm-up (ring8, grid25; 2500 samples; "
                    "mean ± s.e. over the seeds run, from 0–4)"),
             ("final", "GAN mode coverage, session 2 (earlier, shorter budget; EMA 0.99 WITHOUT warm-up; superseded "
                       "by the table above where a loss was rerun)")]


def rows(name: str) -> list[dict]:
    p = RES / name
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def ms(v: list[float]) -> str:
    v = [float(x) for x in v]
    if any(not math.isfinite(x) for x in v):
        fin = [x for x in v if math.isfinite(x)]
        return f"inf ({len(v) - len(fin)} of {len(v)} seeds without HQ samples)"
    m = st.mean(v)
    if len(v) == 1:
        return f"{m:.2f} (one seed)"
    return f"{m:.2f} ± {st.stdev(v) / math.sqrt(len(v)):.2f}"


def mode_table(rs: list[dict]) -> list[str]:
    """One row per (data, loss, pac, steps): mean ± s.e. over the seeds."""
    g = defaultdict(list)
    for r in rs:
        steps = r["steps"] if not r.get("steps2") else f"{r['steps']} + {r['steps2']} (r1 0, lr {r['lr2']:g})"
        g[(r["data"], r["loss"], r["pac"], r.get("r1", 0.0), steps, bool(r.get("drs")))].append(r)
    out = ["| data | loss | pac | R1 γ | steps | seeds | modes captured | % high quality | reverse KL | all modes in every seed | ≥ 95 % HQ | CPU s/run (median) | wall s/run (median) | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for data in ("ring8", "grid25"):
        K = 8 if data == "ring8" else 25
        for key in sorted((k for k in g if k[0] == data), key=lambda k: (LOSS_ORDER.index(k[1]), k[2], k[3], str(k[4]), k[5])):
            rr = sorted(g[key], key=lambda r: r["seed"])
            _, loss, pac, r1, steps, drs = key
            name = f"{loss} + DRS (acceptance {st.mean(r['drs_acceptance'] for r in rr):.2f})" if drs else loss
            allm = all(r["modes"] == K for r in rr)
            hq = st.mean(r["hq_pct"] for r in rr)
            loads = [r["load1"] for r in rr]
            out.append(f"| {data} | {name} | {pac} | {r1:g} | {steps} | {len(rr)} | {ms([r['modes'] for r in rr])} / {K} | {ms([r['hq_pct'] for r in rr])} | "
                       f"{ms([r['reverse_kl'] for r in rr])} | {'met' if allm else 'not met'} | "
                       f"{'met' if hq >= 95 else 'not met'} | {st.median(r['cpu_s'] for r in rr):.0f} | "
                       f"{st.median(r['wall_s'] for r in rr):.0f} | {min(loads):.1f}–{max(loads):.1f} |")
    return out


def mode_settings(rs: list[dict]) -> list[str]:
    seen, out = set(), ["| loss | data | steps | batch | hidden | latent | lr (lr_d / lr_g) | n_critic | Adam β | EMA (warm-up) | schedule | pac | R1 γ |",
                        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for loss in LOSS_ORDER:
        for r in rs:
            if r["loss"] != loss or r.get("drs"):
                continue
            key = (loss, r["data"], r["steps"], r["batch"], tuple(r["hidden"]), r["latent"], r["lr"], r["lr_d"], r["lr_g"],
                   r["n_critic"], str(r["betas"]), r["ema"], r["schedule"], r["pac"], r.get("r1", 0.0))
            if key in seen:
                continue
            seen.add(key)
            nc = r["n_critic"] or (5 if loss.startswith("wgan") else 1)
            betas = r["betas"] or ([0.5, 0.9] if loss.startswith("wgan") else [0.5, 0.999])
            out.append(f"| {loss} | {r['data']} | {r['steps']} | {r['batch']} | {'×'.join(map(str, r['hidden']))} | {r['latent']} | "
                       f"{r['lr']:g} ({r['lr_d'] or '–'} / {r['lr_g'] or '–'}) | {nc} | {tuple(betas)} | "
                       f"{r['ema']} ({'yes' if r.get('ema_warmup') else 'no'}) | "
                       f"{r['schedule']} | {r['pac']} | {r.get('r1', 0.0):g} |")
    return out


def image_table(rs: list[dict]) -> list[str]:
    out = ["| run | data | n | FD ↓ | KID ↓ | classifier score | class acc. | steps | train CPU s | train wall s | eval CPU s | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        if r.get("kind") == "reference":
            for ref in ("val", "train"):
                x = r[ref]
                out.append(f"| real held-out ({ref} split) | {r['data']} | {x['n']} | {x['fd']:.2f} | {x['kid']:.3f} | "
                           f"{x['classifier_score']:.2f} | – | – | – | – | – | – |")
            continue
        ca = f"{r['class_accuracy']:.3f}" if r.get("class_accuracy") is not None else "–"
        tag = " [spectral_norm]" if (r.get("model") or {}).get("spectral_norm") else ""
        tag += f" [{r['tag']}]" if r.get("tag") and r["tag"] != "sn" else ""
        out.append(f"| {r['run']}{tag} (seed {r['seed']}) | {r['data']} | {r['n_samples']} | {r['fd']:.2f} | {r['kid']:.3f} | "
                   f"{r['classifier_score']:.2f} | {ca} | {r['train']['steps']} | {r['train_cpu_s']:.0f} | {r['train_wall_s']:.0f} | "
                   f"{r['eval_cpu_s']:.0f} | {r['load1']:.1f} |")
    return out


def ebm_table(rs: list[dict]) -> list[str]:
    out = ["| data | seed | steps | energy distance (samples vs test) | reference (train vs test) | mean true log-density of samples | of test data | train CPU s | wall s | load |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rs:
        lp = f"{r['sample_logp']:.2f}" if r.get("sample_logp") is not None else "–"
        lt = f"{r['data_logp']:.2f}" if r.get("data_logp") is not None else "–"
        out.append(f"| {r['data']} | {r['seed']} | {r['steps']} | {r['energy']:.3f} | {r['energy_ref']:.3f} | {lp} | {lt} | "
                   f"{r['cpu_s']:.0f} | {r['wall_s']:.0f} | {r['load1']:.1f} |")
    return out


def main():
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    notes = RES / "gan_ebm_notes.md"
    parts = [notes.read_text().rstrip() if notes.is_file() else "# GAN and EBM benchmarks", "",
             f"_Tables generated by `python benchmarks/gan_ebm_report.py` (genlab commit at generation: {commit})._", ""]
    allm = rows("gan_modes.jsonl")
    for tag, title in MODE_TAGS:
        m = [r for r in allm if r.get("tag") == tag]
        if m:
            parts += [f"## {title}", ""] + mode_table(m)
            parts += ["", "Settings:", ""] + mode_settings(m) + [""]
    im = rows("gan_images.jsonl")
    if im:
        parts += ["## Image GAN / EBM quality (test split, shipped feature networks)", ""] + image_table(im) + [""]
    eb = rows("ebm_toys.jsonl")
    if eb:
        parts += ["## EBM on 2-D toys", ""] + ebm_table(eb) + [""]
    (RES / "gan_ebm.md").write_text("\n".join(parts) + "\n")
    print(RES / "gan_ebm.md")


if __name__ == "__main__":
    main()
