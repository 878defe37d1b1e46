"""The model protocol, registry, config overrides and safe saving/loading."""
import dataclasses
import json
import math

import pytest
import torch
from torch import nn

import genlab as gl
from genlab.data.base import DataError, DataInfo, Dataset
from genlab.models.base import GenerativeModel, ModelError, NoLikelihoodError
from genlab.models.io import CheckpointError
from genlab.models.registry import coerce, register


@register("_test_diag_gauss")
class DiagGauss(GenerativeModel):
    """Diagonal Gaussian with learnable mean and log-std (test model)."""
    likelihood = "exact"

    @dataclasses.dataclass
    class Config:
        init_log_std: float = 0.0
        hidden: tuple[int, ...] = (8,)
        name_tag: str | None = None
        flag: bool = False

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.mean = nn.Parameter(torch.zeros(info.dim))
        self.log_std = nn.Parameter(torch.full((info.dim,), self.config.init_log_std))

    def log_prob(self, x, cond=None):
        self.check_input(x, cond)
        z = (x - self.mean) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(1)

    def loss(self, batch, phase="main"):
        return -self.log_prob(batch["x"]).mean()

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None):
        eps = torch.randn(n, self.info.dim, generator=generator)
        return self.mean + self.log_std.exp() * eps


@register("_test_nolik")
class NoLik(DiagGauss):
    likelihood = "none"

    def log_prob(self, x, cond=None):
        return GenerativeModel.log_prob(self, x, cond)


def toy():
    return gl.load_dataset("8gaussians", n=500)


def test_create_fits_data_and_coerces_overrides():
    m = gl.create("_test_diag_gauss", data=toy(), init_log_std="0.5", hidden="16,32", name_tag="none", flag="true")
    assert m.config.init_log_std == 0.5 and m.config.hidden == (16, 32)
    assert m.config.name_tag is None and m.config.flag is True
    assert m.mean.shape == (2,)
    assert torch.allclose(m.log_std, torch.full((2,), 0.5))


def test_unknown_names_and_options_are_clear():
    with pytest.raises(ModelError, match="Did you mean '_test_diag_gauss'"):
        gl.create("_test_diag_gaus", data=toy())
    with pytest.raises(ModelError, match="unknown option.*init_log_sd.*did you mean 'init_log_std'"):
        gl.create("_test_diag_gauss", data=toy(), init_log_sd=1.0)
    with pytest.raises(ModelError, match="expected float"):
        gl.create("_test_diag_gauss", data=toy(), init_log_std="big")
    with pytest.raises(ModelError, match="needs data="):
        gl.create("_test_diag_gauss")
    with pytest.raises(DataError, match="unknown dataset 'moon'.*Did you mean 'moons'"):
        gl.load_dataset("moon")


def test_coerce_types():
    assert coerce("3", int, "k") == 3
    assert coerce("1e-3", float, "k") == 1e-3
    assert coerce("off", bool, "k") is False
    assert coerce("4,5", tuple[int, ...], "k") == (4, 5)
    assert coerce("null", int | None, "k") is None
    with pytest.raises(ValueError):
        coerce("maybe", bool, "k")


def test_log_prob_checks_input_and_no_likelihood_raises():
    m = gl.create("_test_diag_gauss", data=toy())
    with pytest.raises(ModelError, match=r"expected \(N, 2\)"):
        m.log_prob(torch.zeros(3, 3))
    with pytest.raises(ModelError, match="expected float"):
        m.log_prob(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ModelError, match="not conditional"):
        m.log_prob(torch.zeros(3, 2), cond=torch.zeros(3))
    with pytest.raises(NoLikelihoodError, match="no likelihood"):
        gl.create("_test_nolik", data=toy()).log_prob(torch.zeros(3, 2))


def test_log_prob_matches_closed_form():
    m = gl.create("_test_diag_gauss", data=toy(), init_log_std=math.log(2.0))
    x = torch.tensor([[1.0, -2.0]])
    expected = torch.distributions.Normal(0.0, 2.0).log_prob(x).sum()
    assert torch.allclose(m.log_prob(x)[0], expected)


def test_save_load_round_trip(tmp_path):
    m = gl.create("_test_diag_gauss", data=toy(), hidden=(3, 4))
    with torch.no_grad():
        m.mean.copy_(torch.tensor([0.3, -0.7]))
    m.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["genlab_model"] == "_test_diag_gauss" and cfg["config"]["hidden"] == [3, 4]
    same = gl.load(tmp_path / "m")
    assert isinstance(same, DiagGauss) and same.config.hidden == (3, 4)
    assert torch.equal(same.mean, m.mean)
    x = torch.randn(5, 2)
    assert torch.allclose(same.log_prob(x), m.log_prob(x))
    assert DiagGauss.from_pretrained(tmp_path / "m").config == m.config
    with pytest.raises(ModelError, match="not a NoLik"):
        NoLik.from_pretrained(tmp_path / "m")


def test_corrupt_truncated_and_foreign_files_are_named(tmp_path):
    m = gl.create("_test_diag_gauss", data=toy())
    d = tmp_path / "m"
    m.save_pretrained(d)
    w = d / "model.safetensors"
    good = w.read_bytes()
    w.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors.*corrupt, truncated"):
        gl.load(d)
    w.write_bytes(b"\x80\x04\x95 a pickle, not safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        gl.load(d)
    w.write_bytes(good)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json.*not valid JSON"):
        gl.load(d)
    (d / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(CheckpointError, match="not a genlab model config"):
        gl.load(d)
    # weights of another shape: a model with 3-D data cannot load 2-D weights
    cfg = m.config_dict()
    cfg["info"]["shape"] = [3]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit"):
        gl.load(d)
    with pytest.raises(CheckpointError, match="no such file"):
        gl.load(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a genlab model folder"):
        gl.load(tmp_path)


def test_dataset_validation_errors():
    info = DataInfo(shape=(2,))
    with pytest.raises(DataError, match="NaN"):
        Dataset(torch.tensor([[0.0, float("nan")]]), info)
    with pytest.raises(DataError, match=r"expected \(N, 2\)"):
        Dataset(torch.zeros(4, 3), info)
    with pytest.raises(DataError, match="float tensor"):
        Dataset(torch.zeros(4, 2, dtype=torch.long), info)
    dinfo = DataInfo(shape=(2,), kind="discrete", num_levels=4)
    with pytest.raises(DataError, match="0..3"):
        Dataset(torch.tensor([[0, 4]]), dinfo)
    with pytest.raises(DataError, match="num_levels >= 2"):
        DataInfo(shape=(2,), kind="discrete")
    with pytest.raises(DataError, match="split must be one of"):
        gl.load_dataset("moons", split="dev")
    assert DataInfo.from_dict(dinfo.to_dict()) == dinfo
