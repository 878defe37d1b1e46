"""nn/masked.py: MADE causality checked by input gradients (output i depends only on earlier inputs)."""
import pytest
import torch

from genlab.nn.masked import MADE, MaskedLinear, make_order


def _dependency(made, D, cond=None):
    """dep[i, j] = True iff some output parameter of dimension i has a nonzero gradient wrt x_j."""
    x = torch.randn(3, D, dtype=torch.float64, requires_grad=True)
    out = made(x, cond)                                # (3, D, P)
    dep = torch.zeros(D, D, dtype=torch.bool)
    for i in range(D):
        for p in range(out.shape[-1]):
            g, = torch.autograd.grad(out[:, i, p].sum(), x, retain_graph=True)
            dep[i] |= (g.abs().sum(0) > 0)
    return dep


@pytest.mark.parametrize("order,degrees", [("natural", "cyclic"), ("reverse", "cyclic"), ("random", "random")])
def test_made_causality_by_gradients(order, degrees):
    D = 6
    made = MADE(D, hidden=(32, 32), n_params=3, order=order, seed=4, degrees=degrees).double()
    dep = _dependency(made, D)
    pos = made.order
    allowed = pos[None, :] < pos[:, None]               # allowed[i, j]: j comes before i
    assert not (dep & ~allowed).any(), "an output depends on a later input"
    # and it is not trivially disconnected: the last dimension sees every other input
    last = int(torch.argmax(pos))
    assert dep[last].sum() == D - 1
    first = int(torch.argmin(pos))
    assert dep[first].sum() == 0


def test_made_context_reaches_every_output_and_masks_survive_reload():
    D, C = 4, 3
    made = MADE(D, hidden=(16,), n_params=2, cond_dim=C, order="random", seed=2).double()
    c = torch.randn(2, C, dtype=torch.float64, requires_grad=True)
    out = made(torch.randn(2, D, dtype=torch.float64), c)
    for i in range(D):
        g, = torch.autograd.grad(out[:, i].sum(), c, retain_graph=True)
        assert g.abs().sum() > 0, f"dimension {i} ignores the context"
    state = made.state_dict()
    other = MADE(D, hidden=(16,), n_params=2, cond_dim=C).double()   # natural order
    other.load_state_dict(state)
    assert torch.equal(other.order, made.order)
    x = torch.randn(5, D, dtype=torch.float64)
    cc = torch.randn(5, C, dtype=torch.float64)
    assert torch.allclose(other(x, cc), made(x, cc))


def test_made_resample_changes_order_and_keeps_causality():
    D = 5
    made = MADE(D, hidden=(24, 24), n_params=1, degrees="random", seed=0).double()
    before = made.order.clone()
    made.resample(seed=7)
    assert not torch.equal(before, made.order)
    dep = _dependency(made, D)
    allowed = made.order[None, :] < made.order[:, None]
    assert not (dep & ~allowed).any()
    made.set_order("natural")
    assert torch.equal(made.order, torch.arange(D))


def test_masked_linear_and_order_errors():
    lin = MaskedLinear(3, 2)
    lin.set_mask(torch.tensor([[1.0, 0, 0], [0, 0, 1]]))
    x = torch.randn(4, 3)
    y = lin(x)
    assert torch.allclose(y[:, 0], x[:, 0] * lin.weight[0, 0] + lin.bias[0])
    with pytest.raises(ValueError):
        lin.set_mask(torch.ones(3, 3))
    with pytest.raises(ValueError):
        make_order(3, [0, 0, 1])
    with pytest.raises(ValueError):
        MADE(3, (8,), cond_dim=2)(torch.randn(2, 3))


@pytest.mark.parametrize("passes", [2, 3, 4])
def test_made_block_passes_causality(passes):
    """passes=P: output i depends exactly on inputs in earlier blocks of the ordering (⌈D/P⌉ per block)."""
    D = 7
    made = MADE(D, hidden=(32, 32), n_params=2, order="random", seed=3, passes=passes).double()
    dep = _dependency(made, D)
    size = -(-D // passes)
    block = torch.div(made.order, size, rounding_mode="floor")
    allowed = block[None, :] < block[:, None]
    assert not (dep & ~allowed).any(), "an output depends on an input of its own or a later block"
    assert (dep == allowed).all(), "some allowed connection is missing (last block should see all earlier ones)"
