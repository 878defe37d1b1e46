"""Masked autoregressive flows: MAF (Papamakarios, Pavlakou & Murray 2017) and IAF (Kingma et al. 2016).

Both stack autoregressive element-wise bijections whose parameters come from a MADE
(``genlab.nn.masked.MADE``; Germain et al. 2015), with the ordering reversed between layers.
With h(u; θ) = u · exp(s) + t (log-scale bounded, s = B tanh(ŝ/B)):

MAF (data → latent):  z_i = h(x_i; θ_i(x_<i)),        ln|det ∂z/∂x| = Σ_i s_i(x_<i)
    density  ln p(x) = ln N(z) + Σ s_i  — ONE MADE pass (all θ_i computed from x at once): fast;
    sampling x_i = h⁻¹(z_i; θ_i(x_<i)) needs x_<i first — D sequential MADE passes: slow.

IAF (latent → data):  x_i = h(z_i; θ_i(z_<i)),        ln|det ∂x/∂z| = Σ_i s_i(z_<i)
    sampling: ONE pass (θ from z, which we have): fast; density needs z from x, solved
    dimension by dimension — D sequential passes: slow. IAF is the natural choice when sampling
    (and the density of one's own samples) matters, e.g. as a VAE posterior; MAF when density
    evaluation (training by maximum likelihood) matters. Both are trained here by maximum
    likelihood, so IAF training costs D passes per layer per step.

``made`` (MAF with ``transform="spline"``) is the autoregressive neural spline flow; see ``nsf``.

Conditioners (``conditioner``): ``"made"`` (default; images are flattened to vectors) or, for images,
``"conv"``: a PixelCNN-style stack of masked convolutions (van den Oord et al. 2016; the
conditioner of MaCow, Ma et al. 2019, and of the autoregressive flows in Papamakarios et al. 2021
§3.1) that gives every pixel's θ_i from the pixels before it in raster order — the same
autoregressive flow, with weights shared across positions (a strong prior on 1000 digits, where a
64-input MADE overfits within a few hundred steps). Successive layers see the image rotated by
0°/180° and transposed, so the orderings alternate as MAF's reversals do. ``conv_order="row"``
makes each row depend only on earlier rows (blocks of W pixels): the slow direction then takes H
passes instead of H·W (the image analogue of ``passes``). ``conv_order="group"`` orders the four
pixels of every 2×2 block (the channels of the squeezed image, :class:`ChannelMaskedConvNet`):
a four-way checkerboard in which each pixel sees the neighbours of the earlier classes, 4 passes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from torch import nn

from ..nn.causal import MaskedConv2d
from ..nn.masked import MADE, block_degrees
from ..nn.mlp import activation
from .base import ModelError
from .flows_common import ActNorm, Compose, FlowModel, Inverse, Reshape, Squeeze, Transform, soft_clamp
from .registry import register


class AffineElementwise:
    """h(u; ŝ, t) = u · exp(s) + t with s = B tanh(ŝ/B); n_params = 2."""

    n_params = 2

    def __init__(self, scale_bound: float = 2.0):
        self.scale_bound = scale_bound

    def forward(self, u, p):
        s = soft_clamp(p[..., 0], self.scale_bound)
        return u * torch.exp(s) + p[..., 1], s

    def inverse(self, v, p):
        s = soft_clamp(p[..., 0], self.scale_bound)
        return (v - p[..., 1]) * torch.exp(-s), -s


class MaskedAutoregressive(Transform):
    """Autoregressive layer on vectors (N, D) with MADE parameters θ_i = MADE(·)_<i.

    ``fast="density"`` (MAF): forward x → z = h(x; θ(x)) in one pass, inverse sequential.
    ``fast="sampling"`` (IAF): inverse z → x = h(z; θ(z)) in one pass, forward sequential.
    ``elementwise`` provides ``forward(u, params) -> (v, logabsdet)`` and ``inverse``.
    """

    def __init__(self, dim, hidden, elementwise, context_dim=0, order="natural", fast="density", act="relu",
                 seed=0, dropout=0.0, passes=None):
        super().__init__()
        if fast not in ("density", "sampling"):
            raise ValueError("fast must be 'density' (MAF) or 'sampling' (IAF)")
        self.dim, self.fast, self.el = dim, fast, elementwise
        self.made = MADE(dim, hidden, elementwise.n_params, cond_dim=context_dim, order=order, seed=seed, act=act,
                         zero_last=True, dropout=dropout, passes=passes)

    def _one_pass(self, u, context):
        v, ld = self.el.forward(u, self.made(u, context))
        return v, ld.sum(-1)

    def _sequential(self, v, context):
        """Solve v = h(u; θ(u_<)) for u, one block of the ordering per MADE pass (a block is one
        dimension unless the MADE has ``passes``): pass b fixes block b, whose θ sees only blocks < b,
        already final. In the last pass every θ_i sees its final inputs, so its output and log-det
        are exact for all dimensions: P passes in all (D when fully autoregressive)."""
        degree = block_degrees(self.made.order, self.made.passes).to(v.device)
        u = torch.zeros_like(v)
        blocks = int(degree.max())
        for b in range(1, blocks + 1):
            out, ld = self.el.inverse(v, self.made(u, context))
            u = out if b == blocks else torch.where(degree <= b, out, u)
        return u, ld.sum(-1)

    def forward(self, x, context=None):
        return self._one_pass(x, context) if self.fast == "density" else self._sequential(x, context)

    def inverse(self, z, context=None):
        return self._sequential(z, context) if self.fast == "density" else self._one_pass(z, context)


class MaskedConvNet(nn.Module):
    """θ(x) for an autoregressive layer on images (N, C, H, W) → (N, out, H, W): a masked convolution
    that excludes the current pixel (PixelCNN type A), then ``layers − 1`` residual masked convolutions
    that include it (type B), then a 1×1 convolution (zero-initialised: the layer starts as the
    identity). Output at pixel (i, j) depends only on pixels before (i, j) in raster order
    (``order="pixel"``), or only on rows < i (``order="row"``: kernels see the rows above, plus the
    current row from the second layer on). A context vector is added to the first hidden layer."""

    def __init__(self, in_ch: int, out_ch: int, channels: int = 32, layers: int = 3, kernel: int = 3,
                 order: str = "pixel", context_dim: int = 0, act: str = "relu"):
        super().__init__()
        if order not in ("pixel", "row"):
            raise ModelError(f"conv_order must be 'pixel', 'row' or 'group', got {order!r}")
        if kernel % 2 != 1 or kernel < 3:
            raise ModelError(f"kernel must be odd and >= 3, got {kernel}")
        self.convs = nn.ModuleList([MaskedConv2d(in_ch, channels, kernel, "A")]
                                   + [MaskedConv2d(channels, channels, kernel, "B") for _ in range(layers - 1)])
        if order == "row":
            for i, conv in enumerate(self.convs):
                m = torch.zeros_like(conv.mask)
                m[:, :, : kernel // 2 + (i > 0)] = 1          # rows above (and, after the first, the current row)
                conv.mask = m
        self.out = nn.Conv2d(channels, out_ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.cond = nn.Linear(context_dim, channels, bias=False) if context_dim else None
        self.act = activation(act)

    def forward(self, x, context=None):
        h = self.convs[0](x)
        if self.cond is not None:
            h = h + self.cond(context)[:, :, None, None]
        h = self.act(h)
        for conv in self.convs[1:]:
            h = h + self.act(conv(h))
        return self.out(h)


class ChannelMaskedConvNet(nn.Module):
    """θ(x) on (N, G·C, H, W) autoregressive over G channel *groups* (group of channel k = k mod G), with
    full spatial kernels: MADE's masks (Germain et al. 2015, eqs. 12–13) on the channel axis of every
    convolution, W ⊙ M[:, :, None, None]. Output group g depends on input groups < g at any position.
    On a squeezed image (G = 4: the four pixels of each 2×2 block, ``Squeeze``) a pixel of parity class g
    sees the neighbouring pixels of the classes before it: a four-way checkerboard, inverted in 4 sweeps."""

    def __init__(self, in_ch: int, n_params: int, groups: int = 4, channels: int = 32, layers: int = 3,
                 kernel: int = 3, context_dim: int = 0, act: str = "relu"):
        super().__init__()
        from ..nn.masked import made_masks
        if in_ch % groups:
            raise ModelError(f"{in_ch} channels do not split into {groups} groups")
        per = in_ch // groups
        # position of channel k in the ordering: group-major, so block_degrees with passes=G gives its group
        order = torch.tensor([(k % groups) * per + k // groups for k in range(in_ch)])
        masks = made_masks(order, [channels] * layers, n_params, "cyclic", min_degree=0 if context_dim else 1,
                           passes=groups)
        self.convs = nn.ModuleList([nn.Conv2d(in_ch, channels, kernel, padding=kernel // 2)]
                                   + [nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
                                      for _ in range(layers - 1)])
        self.out = nn.Conv2d(channels, n_params * in_ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        for i, m in enumerate(masks):
            self.register_buffer(f"mask{i}", m[:, :, None, None], persistent=False)
        self.cond = nn.Linear(context_dim, channels, bias=False) if context_dim else None
        self.act = activation(act)

    def forward(self, x, context=None):
        F_ = torch.nn.functional
        h = F_.conv2d(x, self.convs[0].weight * self.mask0, self.convs[0].bias, padding=self.convs[0].padding)
        if self.cond is not None:
            h = h + self.cond(context)[:, :, None, None]
        h = self.act(h)
        for i, conv in enumerate(self.convs[1:], 1):
            h = h + self.act(F_.conv2d(h, conv.weight * getattr(self, f"mask{i}"), conv.bias, padding=conv.padding))
        return F_.conv2d(h, self.out.weight * getattr(self, f"mask{len(self.convs)}"), self.out.bias)


class MaskedConvAutoregressive(Transform):
    """Autoregressive layer on images with a :class:`MaskedConvNet` conditioner: v = h(u; θ(u_<)) per
    pixel and channel, ln|det| = Σ ln|∂h/∂u| (triangular Jacobian in the raster order). ``orient`` ∈
    0..3 selects the ordering: (transpose if orient ≥ 2) then (rotate 180° if orient is odd) before
    the conditioner, undone on its output. ``fast`` as in :class:`MaskedAutoregressive`; the slow
    direction takes H·W passes (``order="pixel"``) or H passes (``"row"``)."""

    def __init__(self, shape, elementwise, channels=32, layers=3, kernel=3, context_dim=0, orient=0,
                 fast="density", act="relu", order="pixel"):
        super().__init__()
        if fast not in ("density", "sampling"):
            raise ValueError("fast must be 'density' (MAF) or 'sampling' (IAF)")
        self.shape, self.el, self.fast, self.order = tuple(shape), elementwise, fast, order
        self.transpose, self.flip = orient % 4 >= 2, orient % 2 == 1
        C = self.shape[0]
        if order == "group":
            self.net = ChannelMaskedConvNet(C, elementwise.n_params, 4, channels, layers, kernel, context_dim, act)
        else:
            self.net = MaskedConvNet(C, C * elementwise.n_params, channels, layers, kernel, order, context_dim, act)

    def _params(self, u, context):
        a = u.transpose(-1, -2) if self.transpose else u
        a = a.flip((-2, -1)) if self.flip else a
        p = self.net(a, context)
        p = p.flip((-2, -1)) if self.flip else p
        p = p.transpose(-1, -2) if self.transpose else p
        C, H, W = self.shape
        return p.reshape(u.shape[0], self.el.n_params, C, H, W).movedim(1, -1)     # (N, C, H, W, n_params)

    def _one_pass(self, u, context):
        v, ld = self.el.forward(u, self._params(u, context))
        return v, ld.reshape(u.shape[0], -1).sum(1)

    def _sequential(self, v, context):
        """Solve v = h(u; θ(u_<)) by the fixed-point sweep u ← h⁻¹(v; θ(u)) from u = 0: after sweep b
        the first b blocks (pixels, or rows) of the ordering are exact, because their θ sees only
        earlier blocks; after the last sweep every u_i, θ_i and log-det is exact."""
        _, H, W = self.shape
        rows = W if self.transpose else H
        sweeps = rows if self.order == "row" else 4 if self.order == "group" else H * W
        u = torch.zeros_like(v)
        for _ in range(sweeps):
            u, ld = self.el.inverse(v, self._params(u, context))
        return u, ld.reshape(v.shape[0], -1).sum(1)

    def forward(self, x, context=None):
        return self._one_pass(x, context) if self.fast == "density" else self._sequential(x, context)

    def inverse(self, z, context=None):
        return self._sequential(z, context) if self.fast == "density" else self._one_pass(z, context)


def conv_autoregressive_stack(shape, num_layers, make_elementwise, channels, conv_layers, kernel, context_dim, fast,
                              actnorm, act, order="pixel", squeeze=False):
    """[per-pixel ActNorm] → masked-conv autoregressive layer, orientations cycling 0, 1, 2, 3.
    ``squeeze=True``: each layer acts on the squeezed image (4C, H/2, W/2), so its ordering runs over
    2×2 blocks (a block's 4C values depend only on earlier blocks): half as many slow passes per axis."""
    D = 1
    for s in shape:
        D *= s
    C, H, W = shape
    if order == "group":
        squeeze = True               # the four groups are the pixels of each 2×2 block
    if squeeze and (H % 2 or W % 2):
        raise ModelError(f"conv_squeeze (and conv_order='group') needs even height and width, got {H}×{W}")
    inner = (4 * C, H // 2, W // 2) if squeeze else tuple(shape)
    ts = []
    for i in range(num_layers):
        if actnorm:
            ts += [Reshape(shape, (D,)), ActNorm(D), Inverse(Reshape(shape, (D,)))]
        layer = MaskedConvAutoregressive(inner, make_elementwise(), channels, conv_layers, kernel, context_dim,
                                         orient=i % 4, fast=fast, act=act, order=order)
        ts += [Squeeze(), layer, Inverse(Squeeze())] if squeeze else [layer]
    return ts


def autoregressive_stack(dim, num_layers, hidden, make_elementwise, context_dim, fast, actnorm, act, dropout=0.0,
                         passes=None):
    """[ActNorm] → autoregressive layer, orderings alternating natural / reverse (``passes``: see MADE)."""
    ts = []
    for i in range(num_layers):
        if actnorm:
            ts.append(ActNorm(dim))
        ts.append(MaskedAutoregressive(dim, hidden, make_elementwise(), context_dim,
                                       order="natural" if i % 2 == 0 else "reverse", fast=fast, act=act, seed=i,
                                       dropout=dropout, passes=passes))
    return ts


class _ARFlow(FlowModel):
    fast = "density"

    @dataclass
    class Config:
        num_layers: int = 5
        hidden: tuple[int, ...] = (128, 128)
        scale_bound: float = 2.0
        actnorm: bool = True
        act: str = "relu"
        dropout: float = 0.0                 # dropout in the MADEs (small data overfit: digits)
        passes: int | None = None            # None: fully autoregressive; P: P blocks (slow direction = P passes)
        conditioner: str = "made"            # made | conv (images: masked convolutions, see module doc)
        channels: int = 32                   # conv: hidden channels
        conv_layers: int = 3                 # conv: masked convolutions per conditioner
        kernel: int = 3                      # conv: kernel size
        conv_order: str = "pixel"            # conv: pixel (H·W slow passes) | row (H) | group (2×2 parity classes: 4)
        conv_squeeze: bool = False           # conv: order over 2×2 blocks (H·W/4 or H/2 slow passes)
        preprocess: str = "logit"            # discrete data: logit | affine | none
        logit_alpha: float = 0.05
        dequant: str = "uniform"             # discrete data: uniform | variational (learned q(u|x), Flow++)
        deq_layers: int = 4                  # variational dequantiser: layers
        deq_hidden: int = 32                 # variational dequantiser: conv channels (MLP: 2× this)
        conditional: bool = False               # p(x | y): labels/conditions feed the conditioners
        cond_embed: int = 16

    @classmethod
    def default_config(cls, info):
        if info.modality == "image" or info.dim > 16:
            return cls.Config(num_layers=5, hidden=(256,), dropout=0.3)   # small data (digits) overfit quickly
        return cls.Config()

    def build_flow(self, context_dim):
        c = self.config
        D = self.info.dim
        shape = self.info.shape
        if c.conditioner == "conv":
            if len(shape) != 3:
                raise ModelError(f"{self.name}: conditioner='conv' needs images shaped (C, H, W), got {shape}")
            return Compose(conv_autoregressive_stack(shape, c.num_layers, lambda: AffineElementwise(c.scale_bound),
                                                     c.channels, c.conv_layers, c.kernel, context_dim, self.fast,
                                                     c.actnorm, c.act, c.conv_order, c.conv_squeeze))
        if c.conditioner != "made":
            raise ModelError(f"{self.name}: conditioner must be 'made' or 'conv', got {c.conditioner!r}")
        ts = autoregressive_stack(D, c.num_layers, c.hidden, lambda: AffineElementwise(c.scale_bound), context_dim,
                                  self.fast, c.actnorm, c.act, c.dropout, c.passes)
        if len(shape) != 1:
            ts = [Reshape(shape, (D,)), *ts, Inverse(Reshape(shape, (D,)))]
        return Compose(ts)


@register("maf")
class MAF(_ARFlow):
    """Masked autoregressive flow (Papamakarios et al. 2017): density in one pass, sampling in D passes."""

    likelihood = "exact"   # "bound" per instance on discrete data
    fast = "density"


@register("iaf")
class IAF(_ARFlow):
    """Inverse autoregressive flow (Kingma et al. 2016): sampling in one pass, density in D passes."""

    likelihood = "exact"   # "bound" per instance on discrete data
    fast = "sampling"

    @classmethod
    def check_data(cls, info):
        super().check_data(info)
        if info.dim > 1024:
            raise ModelError(f"iaf: density evaluation costs D={info.dim} sequential passes per layer; "
                             "use 'maf' or a coupling flow for data this large")
