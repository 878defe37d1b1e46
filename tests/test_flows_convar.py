"""MAF/IAF with masked-convolution conditioners (``conditioner="conv"``): causality of the conditioner by
input gradients, log-dets against the autograd Jacobian (float64) and exact inverses in both directions,
for pixel and row orderings, every orientation, and the squeezed (2×2-block) variant."""
import pytest
import torch

import genlab as gl
from genlab.data.base import DataInfo
from genlab.models import flows_common as fc
from genlab.models.base import ModelError
from genlab.models.maf import AffineElementwise, ChannelMaskedConvNet, MaskedConvAutoregressive, MaskedConvNet
from test_flows_helpers import check_logdet


@pytest.mark.parametrize("order", ["pixel", "row"])
def test_masked_conv_net_causality_by_gradients(order):
    torch.manual_seed(0)
    H, W = 5, 4
    net = MaskedConvNet(1, 2, channels=8, layers=3, kernel=3, order=order).double()
    fc.randomize_(net, 0.3, torch.Generator().manual_seed(0))        # the zero-initialised output layer too
    x = torch.randn(2, 1, H, W, dtype=torch.float64, requires_grad=True)
    out = net(x)
    pos = torch.arange(H * W)
    row = pos // W
    dep = torch.zeros(H * W, H * W, dtype=torch.bool)
    for p in range(H * W):
        g, = torch.autograd.grad(out[:, :, p // W, p % W].sum(), x, retain_graph=True)
        dep[p] = g.abs().sum(0).reshape(-1) > 0
    allowed = (pos[None, :] < pos[:, None]) if order == "pixel" else (row[None, :] < row[:, None])
    assert not (dep & ~allowed).any(), "a pixel's parameters depend on itself or a later pixel"
    assert dep[-1].sum() >= (W if order == "row" else 3)               # and they do see earlier pixels
    assert dep[0].sum() == 0


def test_channel_group_conv_net_causality_by_gradients():
    """Group g of the output (channels k ≡ g mod 4) depends exactly on input groups < g, at every position."""
    torch.manual_seed(0)
    net = ChannelMaskedConvNet(8, 2, groups=4, channels=12, layers=3, context_dim=2).double()
    fc.randomize_(net, 0.3, torch.Generator().manual_seed(0))
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    out = net(x, torch.randn(2, 2, dtype=torch.float64)).reshape(2, 2, 8, 3, 3)     # (N, n_params, channels, H, W)
    group = torch.arange(8) % 4
    for k in range(8):
        g, = torch.autograd.grad(out[:, :, k].sum(), x, retain_graph=True)
        seen = g.abs().sum((0, 2, 3)) > 0
        assert torch.equal(seen, group < group[k]), (k, seen)


@pytest.mark.parametrize("fast,order,orient", [("density", "pixel", 0), ("density", "pixel", 1), ("density", "pixel", 2),
                                               ("sampling", "pixel", 3), ("sampling", "row", 0), ("density", "row", 2),
                                               ("sampling", "row", 3), ("sampling", "group", 0),
                                               ("density", "group", 3)])
def test_conv_autoregressive_logdet_and_inverse(fast, order, orient):
    torch.manual_seed(1)
    shape = (4, 3, 4) if order == "group" else (2, 3, 4)
    layer = MaskedConvAutoregressive(shape, AffineElementwise(2.0), channels=8, layers=2, context_dim=3, orient=orient,
                                     fast=fast, order=order).double()
    fc.randomize_(layer, 0.3, torch.Generator().manual_seed(orient))
    x = torch.randn(3, *shape, dtype=torch.float64)
    ctx = torch.randn(3, 3, dtype=torch.float64)
    check_logdet(layer, x, ctx)


@pytest.mark.parametrize("name,kw", [("maf", dict(conditioner="conv")), ("iaf", dict(conditioner="conv", conv_order="row")),
                                     ("iaf", dict(conditioner="conv", conv_order="row", conv_squeeze=True)),
                                     ("iaf", dict(conditioner="conv", conv_order="group")),
                                     ("maf", dict(conditioner="conv", conv_squeeze=True, dequant="variational"))])
def test_conv_maf_iaf_models(name, kw):
    torch.manual_seed(0)
    info = DataInfo(shape=(1, 4, 4), kind="discrete", num_levels=17, modality="image", name="tiny")
    m = gl.create(name, data=info, num_layers=3, channels=8, conv_layers=2, **kw)
    x = torch.randint(0, 17, (16, 1, 4, 4))
    m.log_prob(x)                                                      # ActNorm initialisation
    fc.randomize_(m.flow, 0.1, torch.Generator().manual_seed(2))
    z0 = torch.randn(2, 1, 4, 4)
    check_logdet(m.flow, z0)                                           # the whole stack, float64
    m.float()
    s = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, 4, 4) and s.dtype == torch.long and int(s.min()) >= 0 and int(s.max()) <= 16
    assert torch.isfinite(m.log_prob(x)).all()


def test_conv_conditioner_errors():
    with pytest.raises(ModelError):
        gl.create("maf", data=DataInfo(shape=(4,)), conditioner="conv")
    with pytest.raises(ModelError):
        gl.create("maf", data=DataInfo(shape=(1, 4, 4), modality="image"), conditioner="pixelcnn")
    with pytest.raises(ModelError):
        gl.create("iaf", data=DataInfo(shape=(1, 3, 3), modality="image"), conditioner="conv", conv_squeeze=True)
    with pytest.raises(ModelError):
        gl.create("iaf", data=DataInfo(shape=(1, 4, 4), modality="image"), conditioner="conv", conv_order="column")
