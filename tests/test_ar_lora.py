"""LoRA adapters: start equal to the base model, merged == unmerged, base weights frozen."""
import pytest
import torch

import genlab as gl
from genlab.data.base import DataInfo, Dataset
from genlab.models.lora import LoRALinear, apply_lora, lora_parameters, merge_lora, remove_lora, unmerge_lora

INFO = DataInfo(shape=(9,), kind="discrete", num_levels=5, modality="text", vocab=tuple("abcde"))


def _model():
    return gl.create("gpt", data=INFO, n_layer=2, n_head=2, n_embd=16)


def test_lora_starts_as_the_base_model_and_trains_only_adapters():
    model = _model()
    x = torch.randint(0, 5, (16, 9))
    before = model.log_prob(x).detach()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = apply_lora(model, r=4, alpha=8)
    assert len(wrapped) == 2 * 4                                          # 4 projections per block
    assert torch.allclose(model.log_prob(x), before, atol=1e-6)           # B = 0 at the start
    assert all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())
    ds = Dataset(x=torch.randint(0, 5, (64, 9)), info=INFO)
    gl.train(model, ds, steps=20, batch_size=16, lr=1e-2, progress=False)
    after = model.state_dict()
    for k, v in base.items():                                             # frozen base weights unchanged
        key = k if k in after else k.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        assert torch.equal(after[key], v), k
    assert any(float(p.detach().abs().sum()) > 0 for n, p in model.named_parameters() if "lora_B" in n)
    assert not torch.allclose(model.log_prob(x), before, atol=1e-4)


def test_merged_equals_unmerged_and_unmerge_restores():
    model = _model()
    apply_lora(model, r=4, alpha=8)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0, 0.3)
    x = torch.randint(0, 5, (8, 9))
    w0 = model.transformer.blocks[0].attn.c_attn.base.weight.clone()
    with torch.no_grad():
        unmerged = model.log_prob(x)
        merge_lora(model)
        merged = model.log_prob(x)
        assert not torch.allclose(model.transformer.blocks[0].attn.c_attn.base.weight, w0)
        unmerge_lora(model)
        again = model.log_prob(x)
    assert torch.allclose(merged, unmerged, atol=1e-4)
    assert torch.allclose(again, unmerged, atol=1e-4)
    assert torch.allclose(model.transformer.blocks[0].attn.c_attn.base.weight, w0, atol=1e-6)


def test_remove_lora_gives_a_plain_saveable_model(tmp_path):
    model = _model()
    apply_lora(model, r=2)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0, 0.3)
    x = torch.randint(0, 5, (4, 9))
    want = model.log_prob(x).detach()
    remove_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    model.save_pretrained(tmp_path / "m")
    assert torch.allclose(gl.load(tmp_path / "m").log_prob(x), want, atol=1e-4)
    with pytest.raises(ValueError, match="no nn.Linear"):
        apply_lora(model, targets=("nothing",))
