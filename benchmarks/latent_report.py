"""Turn benchmarks/results/latent_*.jsonl into the tables of benchmarks/results/latent.md.

    python benchmarks/latent_report.py        # prints the markdown tables
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

RES = Path(__file__).parent / "results"


def vae_table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = ["| data | model | options | best step (val) | val −ELBO | test −ELBO | test −IWAE-K | gap | train s | eval s | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = next(k for k in r if k.startswith("test_neg_iwae"))
        opts = ", ".join(f"{a}={b}" for a, b in r["options"].items() if a not in ("hidden", "act"))
        out.append(f"| {r['data']} | {r['family']} ({r['model']}) | {opts} | {r['steps_best']} / {r['steps']} | "
                   f"{r['val_neg_elbo']:.2f} | {r['test_neg_elbo']:.2f} | {r[k]:.2f} (K={k[13:]}) | {r['gap']:.2f} | "
                   f"{r['train_s']:.0f} | {r['eval_s']:.0f} | {r['load']:.0f} |")
    return "\n".join(out)


def gan_table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["data"], r["loss"], r["pac"], r["steps"])].append(r)

    def ms(v):
        v = [x for x in v if x is not None and math.isfinite(x)]
        if not v:
            return "–"
        m = sum(v) / len(v)
        if len(v) == 1:
            return f"{m:.2f}"
        se = (sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v)) ** 0.5
        return f"{m:.2f} ± {se:.2f}"

    out = ["| data | loss | pac | steps | seeds | modes | % HQ | reverse KL | wall s (mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for (d, loss, pac, steps), rs in sorted(groups.items()):
        out.append(f"| {d} | {loss} | {pac} | {steps} | {len(rs)} | {ms([r['modes'] for r in rs])} / {rs[0]['num_modes']} | "
                   f"{ms([r['hq_percent'] for r in rs])} | {ms([r['reverse_kl'] for r in rs])} | "
                   f"{sum(r['wall_s'] for r in rs) / len(rs):.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    for p in sorted(RES.glob("latent_vae_*.jsonl")):
        print(vae_table(p), "\n")
    if (RES / "latent_gan.jsonl").exists():
        print(gan_table(RES / "latent_gan.jsonl"))
