"""2-D toy densities, exactly as defined in FFJORD's ``toy_data.py`` (see shared ANCHORS.md),
plus the GAN mode benchmarks ``ring8`` and ``grid25`` (VEEGAN / PacGAN).

Splits are independent draws with fixed seeds (train 0, val 1, test 2; sizes 20 000 / 5 000 /
5 000 by default, ``n=`` overrides). Where the density is known in closed form (``8gaussians``,
``checkerboard``, ``ring8``, ``grid25``) the dataset carries its exact ``log_prob``; ``entropy``
is the true entropy H(p) in nats/point (exact, or a 400 000-point k-NN estimate; ANCHORS.md),
the best test NLL any model can reach, so ``test NLL − entropy`` is the KL gap.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .base import DataInfo, Dataset
from ._util import reject_options
from .registry import register_dataset

SPLIT_SEED = {"train": 0, "val": 1, "test": 2}
SPLIT_SIZE = {"train": 20_000, "val": 5_000, "test": 5_000}

#: True entropies in nats/point (ANCHORS.md).
ENTROPY = {"8gaussians": 2.833, "checkerboard": math.log(32), "pinwheel": 2.316, "2spirals": 2.641,
           "moons": 2.394, "circles": 3.266, "swissroll": 2.669, "rings": 2.617, "ring8": -4.293,
           "grid25": 0.065}


def _gmm_log_prob(means: torch.Tensor, std: float):
    """log p(x) for an equal-weight isotropic Gaussian mixture: logsumexp_k N(x; μ_k, σ²I) − ln K."""
    def log_prob(x: torch.Tensor) -> torch.Tensor:
        m = means.to(x)
        d2 = ((x[:, None, :] - m[None]) ** 2).sum(-1)
        comp = -0.5 * d2 / std**2 - math.log(2 * math.pi * std**2)
        return torch.logsumexp(comp, dim=1) - math.log(len(m))
    return log_prob


EIGHT_CENTRES = torch.tensor([[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)] for k in range(8)])
RING8_MEANS, RING8_STD = EIGHT_CENTRES.clone(), 0.01
GRID25_MEANS = torch.tensor([[a, b] for a in (-4.0, -2.0, 0.0, 2.0, 4.0) for b in (-4.0, -2.0, 0.0, 2.0, 4.0)])
GRID25_STD = 0.05


def _eight_gaussians(n, rng):
    # centres 4·(cos, sin)(2πk/8), noise N(0, 0.5²I), then the whole set divided by 1.414
    idx = rng.integers(8, size=n)
    pts = rng.standard_normal((n, 2)) * 0.5 + 4.0 * EIGHT_CENTRES.numpy()[idx]
    return pts / 1.414


def _checkerboard(n, rng):
    x1 = rng.random(n) * 4 - 2
    x2_ = rng.random(n) - rng.integers(0, 2, n) * 2
    x2 = x2_ + (np.floor(x1) % 2)
    return np.stack([x1, x2], 1) * 2


def _checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    # uniform on the 8 squares of side 2 in [−4, 4]² where floor(x1/2) + floor(x2/2) is even, i.e.
    # exactly the support generated above: density 1/32 there, 0 elsewhere.
    u = x / 2
    inside = (u.abs() <= 2).all(1)
    parity = (torch.floor(u[:, 0]) + torch.floor(u[:, 1])) % 2
    on = inside & (parity == 0)
    return torch.where(on, torch.full_like(x[:, 0], -math.log(32)), torch.full_like(x[:, 0], -math.inf))


def _pinwheel(n, rng):
    radial_std, tangential_std, num_classes, rate = 0.3, 0.1, 5, 0.25
    per = n // num_classes
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    feats = rng.standard_normal((num_classes * per, 2)) * np.array([radial_std, tangential_std])
    feats[:, 0] += 1.0
    labels = np.repeat(np.arange(num_classes), per)
    angles = rads[labels] + rate * np.exp(feats[:, 0])
    rot = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)]).T.reshape(-1, 2, 2)
    return 2 * rng.permutation(np.einsum("ti,tij->tj", feats, rot))


def _two_spirals(n, rng):
    h = n // 2
    t = np.sqrt(rng.random((h, 1))) * 540 * (2 * np.pi) / 360
    d1x = -np.cos(t) * t + rng.random((h, 1)) * 0.5
    d1y = np.sin(t) * t + rng.random((h, 1)) * 0.5
    x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
    x = x + rng.standard_normal(x.shape) * 0.1
    # FFJORD returns the two arms one after the other; shuffle so that any prefix (subset, plots,
    # evaluation subsets) holds both arms. Same points, drawn before the permutation.
    return x[rng.permutation(len(x))]


def _moons(n, rng):
    from sklearn.datasets import make_moons
    x = make_moons(n_samples=n, noise=0.1, random_state=int(rng.integers(2**31)))[0]
    return x * 2 + np.array([-1.0, -0.2])


def _circles(n, rng):
    from sklearn.datasets import make_circles
    return make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=int(rng.integers(2**31)))[0] * 3


def _swissroll(n, rng):
    from sklearn.datasets import make_swiss_roll
    x = make_swiss_roll(n_samples=n, noise=1.0, random_state=int(rng.integers(2**31)))[0]
    return x[:, [0, 2]] / 5


def _rings(n, rng):
    n4 = n3 = n2 = n // 4
    n1 = n - n4 - n3 - n2
    parts = []
    for m, r in ((n4, 1.0), (n3, 0.75), (n2, 0.5), (n1, 0.25)):
        a = np.linspace(0, 2 * np.pi, m, endpoint=False)
        parts.append(np.stack([np.cos(a) * r, np.sin(a) * r], 1))
    x = np.vstack(parts) * 3.0
    x = x[rng.permutation(len(x))]
    return x + rng.normal(scale=0.08, size=x.shape)


def _mixture(means: torch.Tensor, std: float):
    def gen(n, rng):
        idx = rng.integers(len(means), size=n)
        return means.numpy()[idx] + rng.standard_normal((n, 2)) * std
    return gen


TOYS = {
    "8gaussians": (_eight_gaussians, _gmm_log_prob(4.0 * EIGHT_CENTRES / 1.414, 0.5 / 1.414),
                   "8 Gaussians on a circle of radius 4/1.414 (FFJORD); exact density"),
    "checkerboard": (_checkerboard, _checkerboard_log_prob, "uniform on 8 squares in [-4,4]^2 (FFJORD); exact density"),
    "pinwheel": (_pinwheel, None, "5-arm pinwheel (FFJORD)"),
    "2spirals": (_two_spirals, None, "two 540-degree spirals (FFJORD)"),
    "moons": (_moons, None, "scikit-learn make_moons(noise=0.1) x2 + (-1,-0.2) (FFJORD)"),
    "circles": (_circles, None, "make_circles(factor=0.5, noise=0.08) x3 (FFJORD)"),
    "swissroll": (_swissroll, None, "make_swiss_roll(noise=1.0) columns (0,2) / 5 (FFJORD)"),
    "rings": (_rings, None, "4 concentric rings, radii 3, 2.25, 1.5, 0.75, noise 0.08 (FFJORD)"),
    "ring8": (_mixture(RING8_MEANS, RING8_STD), _gmm_log_prob(RING8_MEANS, RING8_STD),
              "GAN mode benchmark: 8 Gaussians on the unit circle, sigma 0.01; exact density"),
    "grid25": (_mixture(GRID25_MEANS, GRID25_STD), _gmm_log_prob(GRID25_MEANS, GRID25_STD),
               "GAN mode benchmark: 25 Gaussians on {-4,-2,0,2,4}^2, sigma 0.05; exact density"),
}

#: Mode centres and scale for the mode-coverage metric.
MODES = {"ring8": (RING8_MEANS, RING8_STD), "grid25": (GRID25_MEANS, GRID25_STD)}


def toy_sample(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points from toy ``name`` drawn with ``numpy.random.default_rng(seed)`` (float32)."""
    gen = TOYS[name][0]
    return torch.as_tensor(gen(n, np.random.default_rng(seed)), dtype=torch.float32)


def _make_loader(name: str):
    gen, log_prob, desc = TOYS[name]

    def load(split: str = "train", n: int | None = None, **unknown) -> Dataset:
        reject_options(unknown, name, ("n",))
        n = SPLIT_SIZE[split] if n is None else int(n)
        x = toy_sample(name, n, seed=SPLIT_SEED[split] + 1000 * sorted(TOYS).index(name))
        ds = Dataset(x=x, info=DataInfo(shape=(2,), name=name), split=split, entropy=ENTROPY[name],
                     log_prob_fn=log_prob)
        if name in MODES:
            ds.extras["modes"] = MODES[name]
        return ds

    register_dataset(name, desc)(load)


for _name in TOYS:
    _make_loader(_name)
