"""Building blocks shared by the flow families (RealNVP, Glow, MAF/IAF, NSF).

A normalising flow is a bijection f: x → z with a simple base density p_Z (standard normal here):

    ln p_X(x) = ln p_Z(f(x)) + ln |det ∂f/∂x|          (change of variables; Rezende & Mohamed 2015)

Every :class:`Transform` maps data → latent in ``forward(x, context) -> (z, logdet)`` and back
in ``inverse(z, context) -> (x, logdet_inverse)``, with per-example log-determinants. Flows are
compositions (:class:`Compose`), so the log-determinant of the whole is the sum of its parts.

:class:`FlowModel` turns a composed transform into a genlab model: it handles discrete data
(uniform dequantisation + logit or affine pre-processing, from ``models/likelihood.py``), the
standard-normal base, conditioning (labels through an embedding, vectors as they are) and
sampling. Families subclass it and implement ``build_flow(context_dim)``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from ..nn.mlp import MLP, activation
from . import likelihood as L
from .base import GenerativeModel, ModelError

LOG_2PI = math.log(2 * math.pi)


def _sum_per_example(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(1)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """ln N(z; 0, I) per example: −½ Σ z_i² − (D/2) ln 2π."""
    return -0.5 * _sum_per_example(z * z) - 0.5 * L._dim_of(z) * LOG_2PI


def soft_clamp(raw: torch.Tensor, bound: float) -> torch.Tensor:
    """s = B · tanh(raw / B): bounded log-scales |s| < B (stability of affine couplings)."""
    return bound * torch.tanh(raw / bound) if bound > 0 else raw


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------
class Transform(nn.Module):
    """A bijection data → latent. ``forward(x, context) -> (z, logdet)``; ``inverse(z, context) ->
    (x, logdet)`` where the inverse's logdet is ln|det ∂x/∂z| = −(forward logdet)."""

    def forward(self, x, context=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, z, context=None):  # pragma: no cover - abstract
        raise NotImplementedError


class Compose(Transform):
    """f = f_K ∘ … ∘ f_1; ln|det| = Σ_k ln|det ∂f_k| (chain rule)."""

    def __init__(self, transforms: Sequence[Transform]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x, context=None):
        total = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, ld = t(x, context)
            total = total + ld
        return x, total

    def inverse(self, z, context=None):
        total = z.new_zeros(z.shape[0])
        for t in reversed(self.transforms):
            z, ld = t.inverse(z, context)
            total = total + ld
        return z, total


class ActNorm(Transform):
    """Per-channel affine z = (x − b)·exp(ℓ) (Kingma & Dhariwal 2018, Glow §3.1), with data-dependent
    initialisation: on the first forward pass b = mean, ℓ = −ln std of that batch, so the output
    has zero mean and unit variance per channel. ln|det| = (spatial size) · Σ_c ℓ_c.

    The ``initialized`` flag is a buffer, so a model loaded from disk does not re-initialise.
    Channels are dim 1 (features for vectors, channels for images).
    """

    def __init__(self, num_channels: int, image: bool = False):
        super().__init__()
        shape = (1, num_channels, 1, 1) if image else (1, num_channels)
        self.bias = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _init(self, x):
        dims = [0] + list(range(2, x.ndim))
        mean = x.mean(dims, keepdim=True)
        std = x.std(dims, keepdim=True) if x.shape[0] > 1 else torch.ones_like(mean)
        self.bias.copy_(mean)
        self.log_scale.copy_(-torch.log(std.clamp(min=1e-3)).clamp(-5, 5))
        self.initialized.fill_(1)

    def _spatial(self, x):
        return math.prod(x.shape[2:]) if x.ndim > 2 else 1

    def forward(self, x, context=None):
        if not bool(self.initialized):
            self._init(x)
        z = (x - self.bias) * torch.exp(self.log_scale)
        ld = self.log_scale.sum() * self._spatial(x)
        return z, ld.expand(x.shape[0])

    def inverse(self, z, context=None):
        x = z * torch.exp(-self.log_scale) + self.bias
        return x, (-self.log_scale.sum() * self._spatial(z)).expand(z.shape[0])


class Permute(Transform):
    """A fixed permutation of features (vectors) or channels (images); ln|det| = 0."""

    def __init__(self, num_channels: int, kind: str = "reverse", seed: int = 0):
        super().__init__()
        if kind == "reverse":
            perm = torch.arange(num_channels - 1, -1, -1)
        elif kind == "random":
            perm = torch.randperm(num_channels, generator=torch.Generator().manual_seed(seed))
        else:
            raise ValueError(f"permutation must be 'reverse' or 'random', got {kind!r}")
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x, context=None):
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z, context=None):
        return z[:, self.inv_perm], z.new_zeros(z.shape[0])


class InvertibleLinearLU(Transform):
    """z = W x with W = P L (U + diag(sign · e^{log|s|})) (Glow §3.2, LU-decomposed parameterisation):
    ln|det W| = Σ log|s|, O(D) instead of O(D³). P and sign are fixed buffers; L (unit lower
    triangular), U (strictly upper) and log|s| are learned. Initialised from a random rotation.
    For images (``image=True``) W acts on channels at every pixel: an invertible 1×1 convolution,
    ln|det| = H·W·Σ log|s|.
    """

    def __init__(self, num_channels: int, image: bool = False, seed: int = 0):
        super().__init__()
        C = num_channels
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(C, C, generator=g, dtype=torch.float64))
        P, Lo, U = torch.linalg.lu(q)
        s = torch.diagonal(U)
        self.image = image
        self.register_buffer("P", P.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(C, C), -1))
        self.register_buffer("eye", torch.eye(C))
        self.lower = nn.Parameter(Lo.float())
        self.upper = nn.Parameter(torch.triu(U, 1).float())
        self.log_s = nn.Parameter(torch.log(s.abs()).float())

    def weight(self) -> torch.Tensor:
        Lo = self.lower * self.lower_mask + self.eye
        U = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.P @ Lo @ U

    def _mix(self, x, W):
        if self.image:
            return torch.einsum("ij,njhw->nihw", W, x)
        return x @ W.T

    def _spatial(self, x):
        return math.prod(x.shape[2:]) if self.image else 1

    def forward(self, x, context=None):
        W = self.weight().to(x.dtype)
        return self._mix(x, W), (self.log_s.sum() * self._spatial(x)).to(x.dtype).expand(x.shape[0])

    def inverse(self, z, context=None):
        W = self.weight().to(z.dtype)
        return self._mix(z, torch.linalg.inv(W)), (-self.log_s.sum() * self._spatial(z)).to(z.dtype).expand(z.shape[0])


class Squeeze(Transform):
    """(C, H, W) → (4C, H/2, W/2): each 2×2 spatial block becomes 4 channels (RealNVP §3.6); ln|det| = 0."""

    def forward(self, x, context=None):
        n, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ModelError(f"squeeze needs even height and width, got {h}×{w}")
        x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(n, c * 4, h // 2, w // 2), x.new_zeros(n)

    def inverse(self, z, context=None):
        n, c, h, w = z.shape
        z = z.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return z.reshape(n, c // 4, h * 2, w * 2), z.new_zeros(n)


class FactorOut(Transform):
    """Multi-scale architecture (RealNVP §3.6): the last C − k channels leave the flow here and are
    modelled by the standard-normal base directly; ``inner`` transforms only the first k channels.
    With a standard-normal base this is exactly "factor out half, keep transforming the rest"."""

    def __init__(self, keep: int, inner: Transform):
        super().__init__()
        self.keep = keep
        self.inner = inner

    def forward(self, x, context=None):
        a, b = x[:, :self.keep], x[:, self.keep:]
        a, ld = self.inner(a, context)
        return torch.cat([a, b], 1), ld

    def inverse(self, z, context=None):
        a, b = z[:, :self.keep], z[:, self.keep:]
        a, ld = self.inner.inverse(a, context)
        return torch.cat([a, b], 1), ld


class Reshape(Transform):
    """Reshape each example (e.g. an image (C, H, W) to a vector (D,)); ln|det| = 0."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]):
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def forward(self, x, context=None):
        return x.reshape(x.shape[0], *self.out_shape), x.new_zeros(x.shape[0])

    def inverse(self, z, context=None):
        return z.reshape(z.shape[0], *self.in_shape), z.new_zeros(z.shape[0])


class Inverse(Transform):
    """The inverse of a transform as a transform (e.g. an un-squeeze)."""

    def __init__(self, base: Transform):
        super().__init__()
        self.base = base

    def forward(self, x, context=None):
        return self.base.inverse(x, context)

    def inverse(self, z, context=None):
        return self.base(z, context)


class ConvNet(nn.Module):
    """Conditioner for image couplings: conv3×3 → act → conv1×1 → act → conv3×3 (last layer zero-init,
    so couplings start as the identity). A context vector is broadcast over pixels as extra channels."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int = 64, context_dim: int = 0, act: str = "relu",
                 zero_last: bool = True):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch + context_dim, hidden, 3, padding=1), activation(act),
            nn.Conv2d(hidden, hidden, 1), activation(act),
            nn.Conv2d(hidden, out_ch, 3, padding=1))
        if zero_last:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, x, context=None):
        if context is not None:
            x = torch.cat([x, context[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return self.net(x)


class ContextMLP(nn.Module):
    """Conditioner for vector couplings: an MLP on [x_masked, context] (last layer zero-init)."""

    def __init__(self, in_dim: int, out_dim: int, hidden=(128, 128), context_dim: int = 0, act: str = "relu",
                 zero_last: bool = True, dropout: float = 0.0):
        super().__init__()
        self.net = MLP(in_dim + context_dim, out_dim, hidden, act=act, zero_last=zero_last, dropout=dropout)

    def forward(self, x, context=None):
        if context is not None:
            x = torch.cat([x, context], -1)
        return self.net(x)


def checkerboard_mask(h: int, w: int, parity: int = 0) -> torch.Tensor:
    """(1, 1, H, W) binary mask, 1 where (i + j) % 2 == parity (RealNVP spatial checkerboard)."""
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (((i + j) % 2) == parity).float()[None, None]


def channel_mask(c: int, first_half: bool = True) -> torch.Tensor:
    """(1, C, 1, 1) mask: 1 on the first ⌈C/2⌉ channels (or on the rest when ``first_half=False``)."""
    m = torch.zeros(c)
    k = (c + 1) // 2
    if first_half:
        m[:k] = 1
    else:
        m[k:] = 1
    return m[None, :, None, None]


class AffineCoupling(Transform):
    """Affine coupling layer (Dinh, Sohl-Dickstein & Bengio 2017, RealNVP eqs. 7–9) with a binary mask b:

        z = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s(b ⊙ x)) + t(b ⊙ x)),     ln|det| = Σ_i (1 − b_i) s_i,

    inverse x = b ⊙ z + (1 − b) ⊙ (z − t) ⊙ exp(−s). The log-scale is bounded, s = B·tanh(ŝ/B)
    (:func:`soft_clamp`), which keeps training stable. ``mask`` broadcasts against x: (1, D) for
    vectors, (1, 1, H, W) checkerboard or (1, C, 1, 1) channel masks for images. ``net`` maps
    (b ⊙ x, context) to 2 × x's channels (ŝ, t).
    """

    def __init__(self, mask: torch.Tensor, net: nn.Module, scale_bound: float = 2.0):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net
        self.scale_bound = scale_bound

    def _st(self, xm, context):
        h = self.net(xm, context)
        raw, t = h.chunk(2, dim=1)
        s = soft_clamp(raw, self.scale_bound)
        keep = 1 - self.mask
        return s * keep, t * keep

    def forward(self, x, context=None):
        b = self.mask.to(x.dtype)
        s, t = self._st(x * b, context)
        z = x * torch.exp(s) + t              # s = t = 0 where b = 1, so those stay x
        return z, _sum_per_example(s)

    def inverse(self, z, context=None):
        b = self.mask.to(z.dtype)
        s, t = self._st(z * b, context)
        x = (z - t) * torch.exp(-s)
        return x, -_sum_per_example(s)


class ImageContextConvNet(nn.Module):
    """ConvNet on the channel concatenation [x, c] of an input image x and a context *image* c of the
    same height and width (the data, for a dequantiser q(u | x))."""

    def __init__(self, in_ch: int, ctx_ch: int, out_ch: int, hidden: int = 32, act: str = "relu"):
        super().__init__()
        self.net = ConvNet(in_ch + ctx_ch, out_ch, hidden, 0, act)

    def forward(self, x, context=None):
        return self.net(torch.cat([x, context], 1))


class VariationalDequantizer(nn.Module):
    """A learned dequantisation density q(u | x) on (0, 1)^D (Ho et al. 2019, Flow++ §3.1):

        ε ~ N(0, I),   v = g⁻¹(ε; x),   u = σ(v),
        ln q(u | x) = ln N(ε; 0, I) − ln|det ∂v/∂ε| − Σ_i ln σ'(v_i),   ln σ'(v) = ln σ(v) + ln σ(−v),

    where g is a conditional flow: a first affine layer whose (s, t) depend on x only (a coupling
    with an empty mask: a per-dimension Gaussian in logit space), then ``num_layers − 1`` affine
    couplings (checkerboard masks for images, halves for vectors) whose conditioners see the
    other half of v and x. Images use conv conditioners on [v, x], vectors MLPs on [v, x]. The
    model's bound becomes ln P(x) ≥ E_q[ln p(x + u) − ln q(u | x)] (``likelihood.dequantize_with``).
    """

    def __init__(self, info, num_layers: int = 4, hidden: int = 32, act: str = "relu"):
        super().__init__()
        if not info.discrete:
            raise ModelError("variational dequantisation is for discrete data")
        self.K = info.num_levels
        shape = tuple(info.shape)
        D = math.prod(shape)
        self.image = info.modality == "image" and len(shape) == 3
        ts = []
        for i in range(max(1, num_layers)):
            if self.image:
                C, H, W = shape
                mask = torch.zeros(1, 1, H, W) if i == 0 else checkerboard_mask(H, W, i % 2)
                net = ImageContextConvNet(C, C, 2 * C, hidden, act)
            else:
                mask = torch.zeros(1, D)
                if i > 0:
                    mask[:, : (D + 1) // 2] = 1
                    if i % 2 == 0:
                        mask = 1 - mask
                net = ContextMLP(D, 2 * D, (2 * hidden, 2 * hidden), context_dim=D, act=act)
            if not self.image and D == 1 and i > 0:
                break                                   # 1-D: only the x-conditioned layer
            ts.append(AffineCoupling(mask, net, scale_bound=3.0))
        self.flow = Compose(ts)
        self.shape = shape

    def _context(self, x):
        c = 2 * x.float() / max(self.K - 1, 1) - 1            # levels → [−1, 1]
        return c if self.image else c.reshape(c.shape[0], -1)

    def forward(self, x, generator=None):
        """Draw u ~ q(· | x) (one per example) with ln q(u | x). Returns ``(u, log_q)``, u shaped like x."""
        dtype = next(self.parameters()).dtype
        ctx = self._context(x).to(dtype)
        eps = torch.randn(ctx.shape, generator=generator).to(ctx.device, dtype)   # float32 draws, as in the tests
        v, ld = self.flow.inverse(eps, ctx)                     # ld = ln|det ∂v/∂ε|
        log_q = std_normal_log_prob(eps) - ld - _sum_per_example(F.logsigmoid(v) + F.logsigmoid(-v))
        return torch.sigmoid(v).reshape(x.shape), log_q


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class FlowModel(GenerativeModel):
    """A flow on genlab data. Subclasses implement ``build_flow(context_dim) -> Transform`` and a
    ``Config`` with at least ``preprocess`` ("logit" | "affine" | "none"), ``logit_alpha`` and
    ``cond_embed`` (size of the label embedding) and ``conditional`` (False: labels in the data are
    ignored; True: a conditional flow p(x | y), labels through an embedding, continuous conditions
    as they are, fed to every conditioner network).

    Continuous data: ``log_prob`` is exact, ln p(x) = ln N(f(x)) + ln|det ∂f/∂x|.

    Discrete data (levels 0..K−1): uniform dequantisation y = (x + u)/K, then pre-processing
    (``logit``: z₀ = logit(α + (1−2α) y); ``affine``: z₀ = 2y − 1), then the flow. ``log_prob``
    returns the dequantisation bound −ln P(x) ≤ −E_u[ln N(f(z₀)) + ln|det| + ln|det pre| − D ln K]
    with one u draw per call (``num_samples=k`` averages k draws), so the instance's
    ``likelihood`` is "bound" (the class attribute says "exact", true for continuous data).
    """

    likelihood = "exact"
    conditional_ok = True

    def __init__(self, info, config=None):
        super().__init__(info, config)
        if info.discrete:
            self.likelihood = "bound"      # per instance: dequantisation gives a bound (see class doc)
        conditional = bool(getattr(self.config, "conditional", False))
        if conditional and info.cond is None:
            raise ModelError(f"{self.name}: conditional=True but the data have no labels or conditions")
        self.conditional_ok = conditional
        self.cond_net = None
        context_dim = 0
        if conditional and info.cond == "label":
            self.cond_net = nn.Embedding(info.num_classes, self.config.cond_embed)
            context_dim = self.config.cond_embed
        elif conditional and info.cond == "continuous":
            context_dim = math.prod(info.cond_shape or (1,))
        self.context_dim = context_dim
        self.flow = self.build_flow(context_dim)
        self.dequantizer = None
        deq = getattr(self.config, "dequant", "uniform")
        if deq not in ("uniform", "variational"):
            raise ModelError(f"{self.name}: dequant must be 'uniform' or 'variational', got {deq!r}")
        if info.discrete and deq == "variational":
            self.dequantizer = VariationalDequantizer(info, getattr(self.config, "deq_layers", 4),
                                                      getattr(self.config, "deq_hidden", 32))

    # ---- to implement -------------------------------------------------------------------------
    def build_flow(self, context_dim: int) -> Transform:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def check_data(cls, info) -> None:
        if info.modality == "text":
            raise ModelError(f"{cls.name}: flows model continuous vectors and images (discrete images are "
                             "dequantised); for text use an autoregressive model such as 'gpt' or 'rnn'")
        if info.modality == "image" and len(info.shape) != 3:
            raise ModelError(f"{cls.name}: images must be shaped (C, H, W), got {info.shape}")

    # ---- pre-processing -----------------------------------------------------------------------
    def _context(self, cond, n):
        if not self.conditional_ok:
            if cond is not None:
                raise ModelError(f"{self.name} is unconditional; do not pass cond= (create it with "
                                 "conditional=True on labelled data for a conditional flow)")
            return None
        if cond is None:
            raise ModelError(f"{self.name} is conditional ({self.info.cond}); pass cond= "
                             + ("(integer labels)" if self.info.cond == "label" else f"(shape (N, {self.info.cond_shape}))"))
        cond = torch.as_tensor(cond, device=self.device)
        if self.info.cond == "label":
            if cond.dtype.is_floating_point:
                raise ModelError(f"{self.name}: labels must be integers, got {cond.dtype}")
            cond = cond.long().reshape(-1)
            if cond.numel() == 1:
                cond = cond.expand(n)
            if cond.numel() != n:
                raise ModelError(f"{self.name}: got {cond.numel()} labels for {n} examples")
            if int(cond.min()) < 0 or int(cond.max()) >= self.info.num_classes:
                raise ModelError(f"{self.name}: labels must lie in 0..{self.info.num_classes - 1}")
            return self.cond_net(cond)
        cond = cond.float().reshape(cond.shape[0] if cond.ndim > 1 else 1, -1)
        if cond.shape[0] == 1 and n > 1:
            cond = cond.expand(n, -1)
        if cond.shape != (n, self.context_dim):
            raise ModelError(f"{self.name}: cond has shape {tuple(cond.shape)}, expected ({n}, {self.context_dim})")
        if not torch.isfinite(cond).all():
            raise ModelError(f"{self.name}: cond contains NaN or infinite values")
        return cond

    def preprocess(self, x, generator=None):
        """Data → flow input z₀ with ln|det ∂z₀/∂(x + u)| per example (0 for continuous data)."""
        if not self.info.discrete:
            return x.float(), x.new_zeros(x.shape[0], dtype=torch.float32)
        if self.dequantizer is None:            # u ~ U[0, 1)^D: ln q = 0
            y, ld = L.uniform_dequantize(x, self.info.num_levels, generator=generator)
            y, ld = y.to(self.device), ld.to(self.device)
        else:                                      # u ~ q(u | x): the bound subtracts ln q(u | x)
            u, log_q = self.dequantizer(x, generator)
            y, ld = L.dequantize_with(x, u, self.info.num_levels)
            ld = ld - log_q
        z, ld2 = self._flow_input(y)
        return z, ld + ld2

    def _flow_input(self, y):
        """Pre-processing of the dequantised y ∈ [0, 1)^D: (z₀, ln|det ∂z₀/∂y|)."""
        ld = torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)
        if self.config.preprocess == "logit":
            z, ld2 = L.logit_transform(y, self.config.logit_alpha)
        elif self.config.preprocess == "affine":
            z, ld2 = L.affine_transform(y, 2.0, -1.0)
        elif self.config.preprocess == "none":
            z, ld2 = y, torch.zeros_like(ld)
        else:
            raise ModelError(f"preprocess must be 'logit', 'affine' or 'none', got {self.config.preprocess!r}")
        return z, ld2

    def log_density_at(self, x, u, cond=None):
        """ln p(x + u): the model's continuous density at the dequantised point (discrete data, u ∈
        [0, 1)^D shaped like x), so that P(x) = ∫ p(x + u) du — computable by quadrature in low D."""
        if not self.info.discrete:
            raise ModelError(f"{self.name}: log_density_at is for discrete data")
        context = self._context(cond, x.shape[0])
        y, ld = L.dequantize_with(x.to(self.device), u.to(self.device), self.info.num_levels)
        z0, ld_pre = self._flow_input(y)
        z, ld_f = self.flow(z0, context)
        return std_normal_log_prob(z) + ld_f + ld_pre + ld

    def postprocess(self, z):
        """Flow input space → data (discrete: undo pre-processing, floor, clamp to levels)."""
        if not self.info.discrete:
            return z
        if self.config.preprocess == "logit":
            y, _ = L.logit_inverse(z, self.config.logit_alpha)
        elif self.config.preprocess == "affine":
            y, _ = L.affine_inverse(z, 2.0, -1.0)
        else:
            y = z
        return L.quantize(y, self.info.num_levels)

    # ---- the protocol -------------------------------------------------------------------------
    def _check(self, x, cond):
        self.check_input(x, None)
        if x.shape[0] == 0:
            raise ModelError(f"{self.name}: got an empty batch")
        if x.dtype.is_floating_point and not torch.isfinite(x).all():
            raise ModelError(f"{self.name}: x contains NaN or infinite values")

    def _log_prob_once(self, x, context, generator=None):
        z0, ld_pre = self.preprocess(x.to(self.device), generator)
        z, ld = self.flow(z0, context)
        return std_normal_log_prob(z) + ld + ld_pre

    def log_prob(self, x, cond=None, num_samples: int = 1, generator=None, importance: bool = False, **options):
        """ln p(x) in nats per example (exact for continuous data; dequantisation bound for discrete
        data, averaged over ``num_samples`` draws of u).

        ``importance=True`` (discrete data): ln (1/k) Σ_j p(x + u_j)/q(u_j | x) over the k draws
        instead of the average of the logs — also a lower bound on ln P(x) in expectation, tighter,
        and → ln P(x) as k → ∞ (Burda et al. 2016; ``likelihood.dequantize_with``)."""
        self._check(x, cond)
        context = self._context(cond, x.shape[0])
        if not self.info.discrete:
            return self._log_prob_once(x, context)
        k = max(1, int(num_samples))
        lps = torch.stack([self._log_prob_once(x, context, generator) for _ in range(k)])
        if importance:
            return torch.logsumexp(lps, 0) - math.log(k)
        return lps.mean(0)

    def loss(self, batch, phase="main"):
        x = batch["x"]
        context = self._context(batch.get("y") if self.conditional_ok else None, x.shape[0])
        nll = -self._log_prob_once(x.to(self.device), context).mean()
        return {"loss": nll / self.info.dim, "nll": nll.detach()}

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, temperature: float = 1.0, **options):
        """``n`` samples shaped like the data; ``temperature`` scales the base standard deviation."""
        context = self._context(cond, n)
        z = torch.randn((n, *self.info.shape), generator=generator).to(self.device) * temperature
        x, _ = self.flow.inverse(z, context)
        return self.postprocess(x)

    def likelihood_info(self, num_samples: int = 1, importance: bool = False, **options):
        d = {"kind": self.likelihood, "units": "nats/example", "dim": self.info.dim}
        if self.info.discrete:
            if self.dequantizer is None:
                note = "uniform-dequantisation bound: -log P(x) <= -E_u log p((x+u)/K) + D ln K"
            else:
                note = "variational-dequantisation bound: -log P(x) <= -E_q[log p(x+u) - log q(u|x)]"
            d.update(dequantization="uniform" if self.dequantizer is None else "variational",
                     num_samples=int(num_samples), estimator="importance-weighted" if importance else "mean",
                     preprocess=self.config.preprocess, note=note)
        return d


def randomize_(module: nn.Module, std: float = 0.2, generator: torch.Generator | None = None) -> nn.Module:
    """Add N(0, std²) noise to every parameter (tests: a flow that is not the identity)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)
    return module


__all__ = ["Transform", "Compose", "ActNorm", "Permute", "InvertibleLinearLU", "Squeeze", "FactorOut", "Reshape", "Inverse", "ConvNet",
           "ContextMLP", "AffineCoupling", "FlowModel", "VariationalDequantizer", "ImageContextConvNet", "checkerboard_mask", "channel_mask", "soft_clamp",
           "std_normal_log_prob", "randomize_", "F"]
