"""Assemble BENCHMARKS.md from the per-topic results in benchmarks/results/*.md.

Each topic's benchmark script (benchmarks/<topic>.py) writes its own results file with the
command, settings, machine and date; this script only concatenates them in a fixed order.

    python benchmarks/assemble.py
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ORDER = ["bench_quick", "bench_digits", "engine", "realnvp", "flows", "flows_peers", "autoregressive", "mdn_bishop",
         "latent", "vae_peers", "gan_ebm", "gan_images_mnist5k", "diffusion", "diffusion_peers", "fm_toys", "sde_toys",
         "fm_peers", "metrics", "feature_nets", "rate"]

INCLUDED = {"diffusion_bound", "diffusion_peers"}    # parts of diffusion.md (benchmarks/diffusion.py report)

HEADER = """# genlab benchmarks

Every figure here was measured by the command shown next to it, on the machine and date stated
(a 2-core CPU machine without GPU unless said otherwise; torch 2.13.0 CPU). Timings are medians of
several runs; speeds are compared as ratios measured side by side in one run, because these
machines are shared and noisy. Anchors (reference figures from papers and peers' code rerun on
this machine kind) come from `shared/ANCHORS.md`.

Regenerate this file with `python benchmarks/assemble.py` after rerunning a benchmark script.

"""


def main():
    # notes and partial tables that a topic's own report already includes are not sections of their own
    files = {p.stem: p for p in (ROOT / "results").glob("*.md")
             if not p.stem.endswith(("_notes", ".notes")) and p.stem not in INCLUDED}
    names = [n for n in ORDER if n in files] + sorted(set(files) - set(ORDER))
    toc = "\n".join(f"- [{n}](#{n})" for n in names)
    parts = [HEADER, "## Contents\n\n" + toc + "\n"]
    for n in names:
        text = files[n].read_text().strip()
        parts.append(f'<a id="{n}"></a>\n\n{text}\n')
    (ROOT.parent / "BENCHMARKS.md").write_text("\n".join(parts))
    print(f"wrote BENCHMARKS.md from {len(names)} result files: {', '.join(names)}")


if __name__ == "__main__":
    main()
