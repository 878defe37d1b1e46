"""Pictures for docs/flows.md from the models benchmarks/flows.py and benchmarks/realnvp.py saved
under runs/flowbench/: learned densities on the 2-D toys (one row per flow) and digit samples.

    python benchmarks/flows_figure.py         # writes docs/img/flows_toys.png and docs/img/flows_digits.png
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import genlab as gl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "flowbench"
IMG = ROOT / "docs" / "img"
FLOWS = ["realnvp", "glow", "maf", "iaf", "nsf"]
TOYS = ["8gaussians", "checkerboard", "pinwheel", "2spirals", "moons", "circles", "swissroll", "rings"]


def density_grid(model, lim=4.5, n=200):
    g = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        p = model.log_prob(pts).exp().reshape(n, n)
    return p.T.numpy()


def toys_figure(out=IMG / "flows_toys.png"):
    flows = [f for f in FLOWS if any((RUNS / f"{f}-{t}-s0").exists() for t in TOYS)]
    fig, axes = plt.subplots(len(flows) + 1, len(TOYS), figsize=(1.5 * len(TOYS), 1.5 * (len(flows) + 1)))
    for j, t in enumerate(TOYS):
        x = gl.load_dataset(t, split="test").x[:3000]
        ax = axes[0, j]
        ax.scatter(x[:, 0], x[:, 1], s=0.3, c="k")
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-4.5, 4.5)
        ax.set_title(t, fontsize=8)
        for i, f in enumerate(flows, start=1):
            ax = axes[i, j]
            d = RUNS / f"{f}-{t}-s0"
            if d.exists():
                ax.imshow(density_grid(gl.load(d)), origin="lower", extent=(-4.5, 4.5, -4.5, 4.5), cmap="magma")
    for i, f in enumerate(["data", *flows]):
        axes[i, 0].set_ylabel(f, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.2)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


def digits_figure(out=IMG / "flows_digits.png"):
    flows = [f for f in FLOWS if (RUNS / f"{f}-digits-s0").exists()]
    if not flows:
        return
    fig, axes = plt.subplots(1, len(flows) + 1, figsize=(2.2 * (len(flows) + 1), 2.4))
    axes = [axes] if len(flows) == 0 else list(axes)

    def grid(x):
        x = x[:36].reshape(6, 6, 8, 8).permute(0, 2, 1, 3).reshape(48, 48)
        return x.numpy()

    axes[0].imshow(grid(gl.load_dataset("digits", split="test").x), cmap="gray_r", vmin=0, vmax=16)
    axes[0].set_title("data", fontsize=9)
    for ax, f in zip(axes[1:], flows):
        m = gl.load(RUNS / f"{f}-digits-s0")
        ax.imshow(grid(m.sample(36, generator=torch.Generator().manual_seed(0))), cmap="gray_r", vmin=0, vmax=16)
        ax.set_title(f, fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    what = sys.argv[1:] or ["toys", "digits"]
    if "toys" in what:
        toys_figure()
    if "digits" in what:
        digits_figure()
