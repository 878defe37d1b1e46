"""Assemble benchmarks/results/autoregressive.md from the raw JSON results the AR scripts wrote
(benchmarks/results/autoregressive_raw/*.md) and the notes in autoregressive_raw/notes.md.
Usage: python benchmarks/ar_results.py [NOTES.md]"""
from __future__ import annotations

import json
import re
from pathlib import Path

RES = Path(__file__).parent / "results"
RAW = RES / "autoregressive_raw"


def read(name):
    p = RAW / f"{name}.md"
    if not p.exists():
        return None
    return json.loads(re.search(r"```json\n(.*)\n```", p.read_text(), re.S).group(1))


def main(notes: str = ""):
    out = ["# Autoregressive family — benchmark results", "",
           "Machine: 2-core CPU, torch 2.13.0, 1 thread, date 2026-11-22. **The machine was heavily loaded by other "
           "sessions during every run** (1-minute load average 10–19 on 2 cores, recorded per run below), so wall "
           "times are several times what a quiet machine gives; `cpu s` is the process CPU time, closer to the "
           "quiet-machine wall time with 1 thread. Raw JSON per run: `benchmarks/results/autoregressive_raw/`.", ""]
    out += ["## MDN on Bishop's inverse problem (test NLL, nats/point): session-2 runs", "",
            "**Superseded by `benchmarks/results/mdn_bishop.md`** (the current default, an ensemble of 3 MDNs with "
            "noise on the condition, reaches a test median of −1.152 on the 1000 training points; target met). "
            "The rows below are kept for the 20,000-point comparison.", "",
            "Target of issue #4: test NLL ≤ −1.15 nats/point. Anchors (ANCHORS.md): oracle H(x | t) = −1.282; "
            "best unimodal Gaussian ≈ −0.68; the textbook's 3-component MDN (5 tanh units, 1000 training points) "
            "−1.10. Every run keeps the weights with the best loss on the 1000 validation points "
            "(`keep_best=True`, checked every 200 steps); test = 5000 points; `ensemble` = the density averaged "
            "over the seeds' models, (1/M) Σ_m p_m(x | t) (an MDN with M·K components, no extra training).", "",
            "| training points | model | steps | test NLL per seed | median | ensemble of the seeds | CPU s per run | "
            "wall s per run | load (start → end) |", "|---|---|---|---|---|---|---|---|---|"]
    for tag in ("mdn_bishop", "mdn_bishop_n20000"):
        m = read(tag)
        if not m:
            continue
        s_ = m["settings"]
        seeds = ", ".join(f"{r['test_nll']:.3f}" for r in m["runs"])
        ens = f"{m['ensemble_test_nll']:.3f}" if "ensemble_test_nll" in m else "–"
        out.append(f"| {s_['n_train']:,} | {s_['components']} components, {s_.get('act', 'tanh')} {list(s_['hidden'])} | "
                   f"{s_['steps']} | {seeds} | **{m.get('median_test_nll', m['mean_test_nll']):.3f}** | {ens} | "
                   f"{m.get('median_cpu_s', float('nan')):.0f} | {m['median_wall_s']:.0f} | "
                   f"{m['load_start'].split(' ')[0]} → {m['load_end'].split(' ')[0]} |")
    out += ["", "Command (the script as of commit d482f86; its flags and defaults have changed since): "
            "`python benchmarks/mdn_bishop.py` (20 components, SiLU [128, 128], 4000 steps, batch 1000, "
            "lr 0.003 cosine, 3 seeds; 1000 training points) and `python benchmarks/mdn_bishop.py --n-train 20000 "
            "--steps 8000 --tag mdn_bishop_n20000` (fresh points from the same generator). With tanh units the same "
            "MDN stalls near −1.10 even on 50,000 points (measured once, 4000 steps: −1.102 with 10 components and "
            "[64, 64], −1.100 with 30 and [128, 128]); SiLU units draw the sharp edges of the uniform posterior "
            "better (−1.174 with 20 components on 50,000 points, once). Target ≤ −1.15: **met with 20,000 training "
            "points (median −1.166), not met with the textbook's 1000 in these runs (median −1.116, ensemble −1.131)**, "
            "where the models overfit after ≈ 3000 steps (met since: see `mdn_bishop.md`).", ""]
    out += ["## Digits (8×8, 17 levels): exact test NLL, nats/image", "",
            "Tomczak's split (1000/350/447), unconditional, batch 64, AdamW, cosine schedule with 100 warm-up steps, "
            "1 thread; `ema` = decay of the exported weight average (0 = the raw final weights). Anchors: uniform 181.33; independent per-pixel categorical 106.4; "
            "Tomczak's causal-conv ARM 86.6 test (val 89.0) in 5.3 min wall on a quieter machine.", "",
            "| model | settings | params | steps | train | val | **test** | wall s | cpu s | load (start → end) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    tags = sorted(p.stem[len("digits_"):] for p in RAW.glob("digits_*.md"))
    for tag in tags:
        r = read(f"digits_{tag}")
        sets = " ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "defaults"
        sets += f"; lr {r['lr']:g}, ema {r['ema']:g}" + (f", wd {r['wd']:g}" if r.get("wd") else "")
        test = f"{r['nll']['test']:.1f}"
        extra = ""
        for k in sorted(x for x in r if x.startswith("test_ensemble_")):
            extra += f"; ensemble {k.split('_')[-1]}: {r[k]:.1f}"
        out.append(f"| {r['model']} ({tag}) | {sets} | {r['params']:,} | {r['steps']} | {r['nll']['train']:.1f} | "
                   f"{r['nll']['val']:.1f} | **{test}**{extra} | {r['train_wall_s']:.0f} | {r['train_cpu_s']:.0f} | "
                   f"{r['load_start'].split(' ')[0]} → {r['load_end'].split(' ')[0]} |")
    out += ["", "Command per row: `python benchmarks/digits_ar.py MODEL --steps N key=value ...` (the raw JSON "
            "holds the exact command). Sample grids: `docs/img/ar_digits_<tag>.png`.", ""]
    pk = read("peak_matmul")
    out += ["## Shakespeare, GPT with nanoGPT's CPU configuration", ""]
    runs = [(t, read(t)) for t in ("shakespeare_gpt", "shakespeare_gpt_lr2e-3")]
    runs = [(t, g) for t, g in runs if g]
    if runs:
        out += ["Command: `python benchmarks/shakespeare_gpt.py [--lr 2e-3]` (4 layers, 4 heads, 128 embedding, context 64 "
                "+ START, batch 12, 2000 iterations, lr 1e-3 (nanoGPT) or 2e-3 with 100 warm-up steps and cosine decay "
                "to 0, AdamW β2 0.99, weight decay 0.1, grad clip 1, no dropout, no bias). Validation: 4000 random "
                "windows of the val split (= test; the last 10 % of the text).", "",
                "| | nanoGPT (anchor, measured here earlier) | " + " | ".join(f"genlab gpt, lr {g.get('lr', 1e-3):g}"
                                                                      for _, g in runs) + " |",
                "|---|---|" + "---|" * len(runs)]
        peak_cpu = pk["peak_gflops_cpu_time"] if pk else None

        def row(label, anchor, fn):
            out.append(f"| {label} | {anchor} | " + " | ".join(fn(g) for _, g in runs) + " |")
        row("val nats/char (positions 1–64, nanoGPT-comparable)", "1.92", lambda g: f"**{g['val_nats_char_cmp']:.3f}**")
        row("val nats/char (all 65 positions, incl. the first from START)", "–", lambda g: f"{g['val_nats_char_all']:.3f}")
        row("training wall time (1/5/15-min load average at start → end)", "6 min 44 s",
            lambda g: f"{g['train_wall_s'] / 60:.1f} min (load {g['load_start'].split(' ')[0]} → {g['load_end'].split(' ')[0]})")
        row("training CPU time (1 thread)", "–", lambda g: f"{g['train_cpu_s'] / 60:.1f} min")
        row("tokens/s per wall second; per CPU second", "–", lambda g: f"{g['tokens_per_s']:.0f}; {g['tokens_per_cpu_s']:.0f}")
        if peak_cpu:
            row(f"MFU per CPU second vs peak {peak_cpu:.0f} GFLOP/s (1-thread fp32 matmul per CPU second)", "–",
                lambda g: f"{100 * g['mfu_cpu_time'] * g['peak_gflops'] / peak_cpu:.0f} %")
        row("sampling with the key/value cache", "–", lambda g: f"{g['sample_chars_per_s']:.0f} chars/s")
        g = runs[0][1]
        out += ["", "MFU uses nanoGPT's estimate 6N + 12·L·H·Q·T FLOPs per token (N without position embeddings = "
                f"{g['params']:,}, T = 65). The peak was measured with `python benchmarks/autoregressive_common.py` "
                f"({pk['peak_gflops_wall']:.0f} GFLOP/s per wall second under load {pk['load'].split(' ')[0]}, "
                f"{pk['peak_gflops_cpu_time']:.0f} per CPU second; DESIGN.md: ≈196 GFLOP/s on 2 quiet threads). "
                "Wall-clock MFU is not reported: most runs shared the machine (see the load in the table)." if pk else "", "",
                "Sample (prompt `ROMEO:`, temperature 0.8, top-p 0.9, lr 1e-3 run):", "", "```", g["sample"], "```", ""]
    f = read("finetune_lm")
    out += ["## Fine-tuning the Shakespeare GPT on names: full vs LoRA", ""]
    if f:
        out += [f"Command: `python benchmarks/finetune_lm.py` (base: {f['base']}; {f['steps']} steps, batch 12). "
                "Validation nats/char on the names val split and on Shakespeare val.", "",
                "| | trainable params | names val | Shakespeare val | wall s |", "|---|---|---|---|---|",
                f"| before | – | {f['before']['names_val']:.3f} | {f['before']['shakespeare_val']:.3f} | – |"]
        for k in ("full", "lora"):
            out.append(f"| {k} | {f[k]['trainable_params']:,} of {f['total_params']:,} | {f[k]['names_val']:.3f} | "
                       f"{f[k]['shakespeare_val']:.3f} | {f[k]['wall_s']:.0f} |")
        for k in ("before", "full", "lora"):
            out += ["", f"Samples {k} (prompt newline, temperature 0.8, top-p 0.95):", "", "```",
                    "\n---\n".join(f[k]["samples"]), "```"]
        out.append("")
    mn = read("mnist5k_pixelcnn_cond") or read("mnist5k_pixelcnn")
    if mn:
        out += ["## PixelCNN on binarised mnist5k (28×28)", "",
                f"Command: `{mn['command']}` (settings {mn['settings']}, batch {mn['batch']}, lr {mn['lr']}, cosine). "
                f"Test NLL over {mn['n_test']} test images: **{mn['test_nll']:.1f} nats/image**"
                + (" (class-conditional: −log p(x | label))" if mn["settings"].get("class_cond") else "")
                + f"; {mn['train_wall_s'] / 60:.1f} min wall, {mn['train_cpu_s'] / 60:.1f} CPU-min. mnist5k is "
                "binarised by a fixed threshold (128), which is far more predictable than the stochastically "
                "binarised MNIST of the literature (PixelCNN ≈ 81.3 there), so the numbers are not comparable; "
                "no published figure exists for this subset.", ""]
    s = read("sequences")
    if s:
        out += ["## Real-valued sequences (mixture density head)", "",
                f"Command: `python benchmarks/ar_sequences.py --steps {s['steps']}` (noisy sine waves, 2 frequencies, "
                "T = 40; picture `docs/img/ar_sequences.png`).", "", "| model | test NLL nats/sequence | wall s |",
                "|---|---|---|"]
        for k, v in s["results"].items():
            out.append(f"| {k} {v['settings']} | {v['test_nll_nats_per_seq']:.1f} | {v['wall_s']:.0f} |")
        out.append("")
    if notes:
        out += ["## Notes", "", notes, ""]
    (RES / "autoregressive.md").write_text("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    import sys
    main(Path(sys.argv[1] if len(sys.argv) > 1 else RAW / "notes.md").read_text())
