"""Pictures for docs/vae.md, docs/gan.md, docs/ebm.md (small, seeded, a few minutes on a CPU).

    nice python benchmarks/latent_figures.py [vae] [gan] [ebm]

vae: digits VAE — inputs next to reconstructions, prior samples (decoder means), an interpolation
     and a latent traversal (functions from ``genlab.models.vae``), plus the active-unit count.
gan: non-saturating GAN on 8gaussians — data vs samples.
ebm: EBM on 8gaussians — data, replay-buffer samples, fresh Langevin chains, the energy surface.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import genlab as gl  # noqa: E402
from genlab.models.vae import active_units, interpolate, reconstruct, traverse  # noqa: E402

torch.set_num_threads(1)
IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def grid(imgs, rows, title, ax):
    imgs = imgs.reshape(-1, 8, 8).float()
    n = imgs.shape[0]
    cols = (n + rows - 1) // rows
    canvas = torch.zeros(rows * 9 - 1, cols * 9 - 1)          # white separators (gray_r)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = imgs[i]
    ax.imshow(canvas, cmap="gray_r")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def fig_vae(steps=600):
    tr, te = gl.load_dataset("digits"), gl.load_dataset("digits", split="test")
    torch.manual_seed(0)
    m = gl.create("vae", data=tr, latent_dim=16, act="leaky_relu")
    gl.train(m, tr, steps=steps, batch_size=64, lr=1e-3, seed=0, progress=False)
    x = te.x[:16]
    n_active, _ = active_units(m, te.x)
    fig, axes = plt.subplots(1, 5, figsize=(13, 3))
    grid(x, 4, "test inputs", axes[0])
    grid(reconstruct(m, x), 4, "reconstructions E[x|μ(x)]", axes[1])
    grid(m.sample(16, generator=torch.Generator().manual_seed(0), mean=True), 4, "samples (means)", axes[2])
    grid(interpolate(m, te.x[0], te.x[1], steps=8), 2, "interpolation", axes[3])
    grid(traverse(m, te.x[2], dims=[0, 1, 2, 3], values=torch.linspace(-2, 2, 4)), 4, "traversal (dims 0–3)", axes[4])
    fig.suptitle(f"VAE on digits, {steps} steps; test −ELBO {float(-m.log_prob(te.x).mean()):.1f} nats; "
                 f"{n_active}/16 active units", fontsize=10)
    fig.tight_layout()
    fig.savefig(IMG / "vae_digits.png", dpi=80)


def scatter(ax, pts, title, color):
    pts = pts.detach()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color=color)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)


def fig_gan(steps=600):
    from genlab.metrics.distances import energy_distance
    tr, te = gl.load_dataset("8gaussians", n=4000), gl.load_dataset("8gaussians", split="test", n=1500)
    torch.manual_seed(0)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    scatter(axes[0], te.x, "data (test)", "k")
    for ax, loss in zip(axes[1:], ("ns", "wgan-gp")):
        m = gl.create("gan", data=tr, loss=loss, hidden=(64, 64), latent_dim=4)
        gl.train(m, tr, steps=steps, batch_size=128, lr=1e-3, seed=0, progress=False, grad_clip=None)
        s = m.sample(1500, generator=torch.Generator().manual_seed(1))
        scatter(ax, s, f"gan loss={loss}, {steps} steps\nenergy distance {energy_distance(s, te.x):.3f}", "C0")
    fig.tight_layout()
    fig.savefig(IMG / "gan_8gaussians.png", dpi=80)


def fig_ebm(steps=300):
    tr, te = gl.load_dataset("8gaussians", n=4000), gl.load_dataset("8gaussians", split="test", n=1500)
    torch.manual_seed(0)
    m = gl.create("ebm", data=tr, hidden=(64, 64), sgld_steps=20)
    gl.train(m, tr, steps=steps, batch_size=64, lr=3e-3, seed=0, progress=False)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    scatter(axes[0], te.x, "data (test)", "k")
    scatter(axes[1], m.sample(1500, generator=torch.Generator().manual_seed(1), from_buffer=True, steps=0),
            "replay buffer", "C1")
    scatter(axes[2], m.sample(1500, generator=torch.Generator().manual_seed(1)), "fresh Langevin chains (200 steps)", "C2")
    t = torch.linspace(-4, 4, 120)
    g = torch.stack(torch.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        e = m.energy(g).reshape(120, 120)
    axes[3].imshow((-e).exp() / (-e).exp().max(), extent=(-4, 4, -4, 4), origin="lower", cmap="viridis")
    axes[3].set_title("exp(−E(x)) (unnormalised)", fontsize=9)
    fig.suptitle(f"EBM on 8gaussians, {steps} steps of contrastive divergence", fontsize=10)
    fig.tight_layout()
    fig.savefig(IMG / "ebm_8gaussians.png", dpi=80)


if __name__ == "__main__":
    IMG.mkdir(parents=True, exist_ok=True)
    which = sys.argv[1:] or ["vae", "gan", "ebm"]
    for w in which:
        {"vae": fig_vae, "gan": fig_gan, "ebm": fig_ebm}[w]()
        print("wrote", w, flush=True)
