"""Figure for docs/gan.md: GAN samples on ring8 / grid25 per loss (from benchmarks/gan_modes.py runs).

    python benchmarks/gan_figures.py --seed 3      # reads runs/gan_modes/{data}-{loss}-s{seed}.pt
    python benchmarks/gan_figures.py --seed 0 --losses ns,ns-pac4 --out docs/img/gan_modes_s3.png  # session 3
    (a "loss" name is the file-name stem after the data set: ns-pac4 reads {data}-ns-pac4-s{seed}.pt)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genlab.data.toy2d import MODES  # noqa: E402
from genlab.metrics.modes import mode_coverage  # noqa: E402

LOSSES = ["minimax", "ns", "lsgan", "wgan", "wgan-gp", "hinge"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--losses", default=",".join(LOSSES))
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "docs" / "img" / "gan_modes.png"))
    a = ap.parse_args()
    losses = a.losses.split(",")
    fig, axes = plt.subplots(2, len(losses), figsize=(2.2 * len(losses), 4.6), squeeze=False)
    for i, data in enumerate(("ring8", "grid25")):
        means, std = MODES[data]
        lim = 1.5 if data == "ring8" else 5.5
        for j, loss in enumerate(losses):
            ax = axes[i, j]
            p = Path(f"runs/gan_modes/{data}-{loss}-s{a.seed}.pt")
            ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_xticks([]), ax.set_yticks([])
            ax.set_aspect("equal")
            if not p.is_file():
                ax.set_title(f"{loss}: missing", fontsize=8)
                continue
            x = torch.load(p)
            c = mode_coverage(x, (means, std))
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3, color="tab:blue", rasterized=True)
            ax.scatter(means[:, 0], means[:, 1], s=6, color="tab:red", marker="x", linewidths=0.7)
            ax.set_title(f"{data} {loss}\n{c['modes_captured']}/{c['num_modes']} modes, {c['high_quality_pct']:.0f}% HQ",
                         fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=80)
    print(a.out)


if __name__ == "__main__":
    main()
