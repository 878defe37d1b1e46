"""MADE as a generative model (Germain et al. 2015, "MADE: Masked Autoencoder for Distribution Estimation").

One masked network (:class:`genlab.nn.masked.MADE`) outputs, for every dimension i, the parameters
of p(x_i | x_{o<o(i)}) where o is an ordering of the D dimensions:

    log p(x) = Σ_i log p(x_i | x_{j: o(j) < o(i)})                                   (exact)

- discrete levels (digits: 17): categorical,  p(x_i | ·) = softmax(z_i)[x_i]  (D·L outputs);
- binarised images (2 levels): Bernoulli,    p(x_i = 1 | ·) = σ(z_i)          (D outputs);
- continuous vectors: a K-component Gaussian mixture per dimension (:class:`MixtureDensityHead` maths).

Order-agnostic training (§4.2): with ``num_masks > 1`` each training step uses one of
``num_masks`` random orderings and hidden connectivities (seeds 0 … num_masks−1, cycled). At test
time ``ensemble = k`` averages the first k of them *in probability*:

    p_ens(x) = (1/k) Σ_m p_m(x),   log p_ens = logsumexp_m log p_m − log k

— a mixture of k normalised autoregressive models, so still an exact likelihood. Sampling from
the ensemble picks an ordering uniformly per sample, then samples in that ordering (D passes).
Inputs are levels scaled to [0, 1] (discrete) or the raw values (continuous); labels (one-hot) or
continuous conditions enter as MADE's unmasked context.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.base import DataInfo
from ..nn.masked import MADE as MADENet
from ..sampling.decoding import check_decoding_options, sample_next
from .base import GenerativeModel, ModelError
from .mdn import MixtureDensityHead
from .registry import register


@register("made")
class MADE(GenerativeModel):
    """Masked autoencoder for distribution estimation; order-agnostic training and ordering ensembles."""

    likelihood = "exact"
    conditional_ok = True

    @dataclass
    class Config:
        hidden: tuple[int, ...] = (512, 512)
        act: str = "relu"
        num_masks: int = 1        # >1: order-agnostic training over this many orderings/connectivities
        ensemble: int = 1         # orderings averaged by log_prob (≤ num_masks)
        components: int = 5       # Gaussian mixture per dimension (continuous data)
        class_cond: bool = False     # true: class-conditional (labels as cond=)

    @classmethod
    def default_config(cls, info: DataInfo):
        return cls.Config(hidden=(512, 512) if info.dim > 16 else (128, 128))

    @classmethod
    def check_data(cls, info: DataInfo) -> None:
        if info.discrete and info.num_levels > 64 and info.dim > 100:
            raise ModelError(f"made: {info.num_levels} levels × {info.dim} dims needs a huge output layer; "
                             "binarise the images (binarize=True) or use pixelcnn")

    def __init__(self, info: DataInfo, config: "MADE.Config | None" = None):
        super().__init__(info, config)
        c = self.config
        if c.ensemble > max(c.num_masks, 1):
            raise ModelError(f"made: ensemble={c.ensemble} exceeds num_masks={c.num_masks}")
        self.D = info.dim
        self.L = info.num_levels if info.discrete else None
        if info.discrete:
            self.n_params = 1 if self.L == 2 else self.L
        else:
            self.n_params = 3 * c.components
        if info.cond == "label" and c.class_cond:
            self.cond_dim = info.num_classes
        elif info.cond == "continuous":
            self.cond_dim = math.prod(info.cond_shape or (1,))
        else:
            self.cond_dim = 0
        self.conditional_ok = self.cond_dim > 0   # an unconditional MADE refuses cond= (check_input)
        agnostic = c.num_masks > 1
        self.net = MADENet(self.D, c.hidden, self.n_params, self.cond_dim, order="random" if agnostic else "natural",
                           seed=0, degrees="random" if agnostic else "cyclic", act=c.act)
        self.register_buffer("mask_index", torch.zeros((), dtype=torch.long))   # current mask, for the cycle
        if agnostic:
            self.net.resample(seed=0)

    # ---- masks ------------------------------------------------------------------------------------
    def use_mask(self, k: int) -> None:
        """Switch to ordering/connectivity number ``k`` (0 … num_masks−1)."""
        if self.config.num_masks > 1 and int(self.mask_index) != k:
            self.net.resample(seed=k)
            self.mask_index.fill_(k)

    # ---- likelihood -------------------------------------------------------------------------------
    def _context(self, cond, N):
        if not self.cond_dim:
            if cond is not None and self.info.cond is None:
                raise ModelError("this made is unconditional; do not pass cond=")
            return None
        if cond is None:
            raise ModelError("made was trained on conditional data: pass cond= (labels or condition rows)")
        if self.info.cond == "label":
            cond = torch.as_tensor(cond, dtype=torch.long, device=self.device).reshape(-1)
            if len(cond) == 1:
                cond = cond.expand(N)
            return F.one_hot(cond, self.cond_dim).float()
        cond = torch.as_tensor(cond, dtype=torch.float32, device=self.device).reshape(-1, self.cond_dim)
        return cond.expand(N, -1) if len(cond) == 1 else cond

    def _inputs(self, x):
        x = x.reshape(len(x), -1)
        return x.float() / (self.L - 1) if self.L else x

    def _dim_log_probs(self, x, ctx):
        """log p(x_i | x_<i) for each dimension in the current ordering: (N, D)."""
        out = self.net(self._inputs(x), ctx)                     # (N, D, n_params)
        xf = x.reshape(len(x), -1)
        if self.L == 2:
            return -F.binary_cross_entropy_with_logits(out[..., 0], xf.float(), reduction="none")
        if self.L:
            return torch.gather(F.log_softmax(out, -1), -1, xf[..., None]).squeeze(-1)
        return MixtureDensityHead.log_prob(self._mixture(out), xf[..., None])

    def _mixture(self, out):
        K = self.config.components
        logits, mean, s = out.split(K, dim=-1)
        return {"logits": logits, "mean": mean[..., None], "std": F.softplus(s[..., None]) + 1e-3}

    def log_prob(self, x, cond=None, ensemble: int | None = None, **options):
        """Exact log p(x) (nats per example); with ``ensemble=k`` (default ``config.ensemble``) the
        log of the average probability over the first k orderings."""
        self.check_input(x, cond)
        k = ensemble or self.config.ensemble
        if k > max(self.config.num_masks, 1):
            raise ModelError(f"made: ensemble={k} exceeds num_masks={self.config.num_masks}")
        ctx = self._context(cond, len(x))
        if k == 1 and self.config.num_masks <= 1:
            return self._dim_log_probs(x, ctx).sum(1)
        lps = []
        for m in range(k):
            self.use_mask(m)
            lps.append(self._dim_log_probs(x, ctx).sum(1))
        return torch.logsumexp(torch.stack(lps), 0) - math.log(k)

    def loss(self, batch, phase="main"):
        if self.config.num_masks > 1 and self.training:         # order-agnostic: next mask in the cycle
            self.use_mask((int(self.mask_index) + 1) % self.config.num_masks)
        x = batch["x"]
        ctx = self._context(batch.get("y"), len(x)) if self.cond_dim else None
        nll = -self._dim_log_probs(x, ctx).sum(1).mean()
        return {"loss": nll / self.D, "nll": nll.detach()}

    # ---- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, greedy: bool = False, ensemble: int | None = None, **options):
        """Ancestral sampling in each sample's ordering (D network passes per ordering). Discrete data
        accept ``temperature``, ``top_k``, ``top_p``, ``greedy``; continuous data ``temperature``."""
        if options:
            raise ModelError(f"made.sample: unknown option(s) {', '.join(options)}")
        check_decoding_options(temperature, top_k, top_p)
        was = self.training
        self.eval()
        k = ensemble or self.config.ensemble
        ctx = self._context(cond, n)
        which = torch.randint(0, k, (n,), generator=generator) if k > 1 else torch.zeros(n, dtype=torch.long)
        x = torch.zeros(n, self.D, dtype=torch.long if self.L else torch.float32, device=self.device)
        for m in range(k):
            rows = (which == m).nonzero()[:, 0]
            if len(rows) == 0:
                continue
            self.use_mask(m)
            xm, cm = x[rows], None if ctx is None else ctx[rows]
            for pos in range(self.D):
                i = int((self.net.order == pos).nonzero()[0, 0])
                out = self.net(self._inputs(xm), cm)[:, i]
                if self.L == 2:
                    out = torch.stack([torch.zeros_like(out[:, 0]), out[:, 0]], -1)   # Bernoulli as 2 logits
                if self.L:
                    xm[:, i] = sample_next(out, temperature, top_k, top_p, greedy, generator)
                else:
                    xm[:, i] = MixtureDensityHead.sample(self._mixture(out[:, None]), generator, temperature)[:, 0, 0]
            x[rows] = xm
        self.train(was)
        return x.reshape(n, *self.info.shape)
