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
    plt.close(fig)
    from PIL import Image   # palette PNG: a few hundred KB -> well under 200 KB
    Image.open(out).convert("RGB").quantize(64).save(out, optimize=True)
    print(f"wrote {out}")


def digits_figure(out=IMG / "flows_digits.png"):
    """Panels of 6×6 samples, left to right: test data, then each flow that has a saved digits model."""
    import numpy as np
    from PIL import Image
    flows = [f for f in FLOWS if (RUNS / f"{f}-digits-s0").exists()]
    if not flows:
        return

    def panel(x):  # (36, 1, 8, 8) levels 0..16 -> (6*9+1)^2 grey image, white background, dark strokes
        img = np.ones((6 * 9 + 1, 6 * 9 + 1))
        for k in range(36):
            i, j = divmod(k, 6)
            img[1 + 9 * i:9 + 9 * i, 1 + 9 * j:9 + 9 * j] = 1 - x[k, 0].numpy() / 16
        return img

    panels = [panel(gl.load_dataset("digits", split="test").x[:36])]
    for f in flows:
        m = gl.load(RUNS / f"{f}-digits-s0")
        panels.append(panel(m.sample(36, generator=torch.Generator().manual_seed(0))))
    gap = np.ones((panels[0].shape[0], 4))
    row = np.concatenate([c for p in panels for c in (p, gap)][:-1], 1)
    im = Image.fromarray((row * 255).astype(np.uint8)).resize((row.shape[1] * 3, row.shape[0] * 3), Image.NEAREST)
    im.save(out)
    print(f"wrote {out} (panels: data, {', '.join(flows)})")


if __name__ == "__main__":
    torch.set_num_threads(1)
    what = sys.argv[1:] or ["toys", "digits"]
    if "toys" in what:
        toys_figure()
    if "digits" in what:
        digits_figure()
