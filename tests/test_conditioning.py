"""Unconditional models of labelled data refuse cond= (so no metric or user silently conditions a
model that ignores labels); class-conditional ones accept it and their density depends on it."""
import pytest
import torch

import genlab as gl
from genlab.models.base import ModelError


@pytest.mark.parametrize("name, small", [
    ("made", {"hidden": (32,)}),
    ("pixelcnn", {"channels": 8, "num_layers": 2}),
])
def test_cond_refused_unless_class_conditional(name, small):
    ds = gl.load_dataset("digits", split="val")
    x, y = ds.x[:4], ds.y[:4]
    try:
        m = gl.create(name, data=ds, **small)
    except ModelError:  # option names differ per family: fall back to defaults
        m = gl.create(name, data=ds)
    assert not m.conditional_ok
    with pytest.raises(ModelError, match="not conditional"):
        m.log_prob(x, cond=y)
    mc = gl.create(name, data=ds, class_cond=True)
    assert mc.conditional_ok
    torch.nn.init.normal_(next(p for n, p in mc.named_parameters() if "class" in n or "cond" in n), std=1.0)
    with torch.no_grad():
        lp_a = mc.log_prob(x, cond=y)
        lp_b = mc.log_prob(x, cond=(y + 1) % 10)
    assert not torch.allclose(lp_a, lp_b), "the class must change the density"
