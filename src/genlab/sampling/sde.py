"""SDE solvers for score-based sampling (Song et al. 2021, "Score-Based Generative Modeling
through SDEs"), shared by every family.

Reverse-time SDE (Anderson 1982; Song et al. eq. 6): ``dx = [f(x,t) − g(t)² ∇log p_t(x)] dt + g(t) dw̄``,
integrated backwards from t = T to t ≈ 0. The family passes ``drift(t, x)`` (the whole bracket)
and ``diffusion(t)`` (g).

- :func:`euler_maruyama`: ``x_{k+1} = x_k + drift(t_k, x_k) h + g(t_k) √|h| z`` (h < 0 backwards);
  the last step is taken without noise (Song et al.'s "denoise" step) when ``denoise_last``.
- :func:`predictor_corrector` (Song et al. Alg. 1–3): after each Euler–Maruyama predictor step,
  ``n_corrector`` Langevin corrector steps ``x ← x + ε s(x,t) + √(2ε) z`` with the step set by the
  signal-to-noise ratio: ``ε = 2 (r ‖z‖ / ‖s(x,t)‖)²`` (norms averaged over the batch).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .ode import Counted


def _randn(like: torch.Tensor, generator):
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def euler_maruyama(drift: Callable, diffusion: Callable, x: torch.Tensor, ts: torch.Tensor,
                   generator: torch.Generator | None = None, denoise_last: bool = True,
                   progress: bool = False) -> tuple[torch.Tensor, int]:
    """Integrate ``dx = drift(t,x) dt + diffusion(t) dw`` on the grid ``ts``; returns (x, NFE)."""
    ts = torch.as_tensor(ts, dtype=torch.float64)
    cd = Counted(drift)
    it = range(len(ts) - 1)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="sde euler-maruyama", leave=False)
    for k in it:
        t, h = ts[k].to(x.dtype), float(ts[k + 1] - ts[k])
        x = x + cd(t, x) * h
        if not (denoise_last and k == len(ts) - 2):
            x = x + diffusion(t) * math.sqrt(abs(h)) * _randn(x, generator)
    return x, cd.nfe


def langevin_corrector(score: Callable, x: torch.Tensor, t, snr: float, n_steps: int, generator, counter: list):
    """Song et al. Alg. 4/5 corrector: ``x ← x + ε s + √(2ε) z``, ``ε = 2 (snr ‖z‖/‖s‖)²`` per example."""
    for _ in range(n_steps):
        s = score(t, x)
        counter[0] += 1
        z = _randn(x, generator)
        # norms averaged over the batch, as in Song et al.'s reference code
        sn = s.flatten(1).norm(dim=1).mean().clamp_min(1e-12)
        zn = z.flatten(1).norm(dim=1).mean()
        eps = 2 * (snr * zn / sn) ** 2
        x = x + eps * s + torch.sqrt(2 * eps) * z
    return x


def predictor_corrector(drift: Callable, diffusion: Callable, score: Callable, x: torch.Tensor, ts: torch.Tensor,
                        snr: float = 0.16, n_corrector: int = 1, generator: torch.Generator | None = None,
                        denoise_last: bool = True, progress: bool = False) -> tuple[torch.Tensor, int]:
    """Reverse-diffusion (Euler–Maruyama) predictor + Langevin corrector; returns (x, NFE)."""
    ts = torch.as_tensor(ts, dtype=torch.float64)
    cd = Counted(drift)
    counter = [0]
    it = range(len(ts) - 1)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="sde predictor-corrector", leave=False)
    for k in it:
        t, h = ts[k].to(x.dtype), float(ts[k + 1] - ts[k])
        x = langevin_corrector(score, x, t, snr, n_corrector, generator, counter)
        x = x + cd(t, x) * h
        if not (denoise_last and k == len(ts) - 2):
            x = x + diffusion(t) * math.sqrt(abs(h)) * _randn(x, generator)
    return x, cd.nfe + counter[0]


__all__ = ["euler_maruyama", "predictor_corrector", "langevin_corrector"]
