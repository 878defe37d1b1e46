"""The training engine, in one process: resume = uninterrupted, checkpoint integrity, non-finite
handling, EMA against a hand computation, the phases protocol, determinism, logging, export."""
import json
import math
import os
import sys
import types
import warnings

import pytest
import torch

import engine_toys as T
import genlab as gl
from genlab.engine import checkpoint as ck
from genlab.engine.trainer import BatchOrder, TrainConfig, TrainingError, lr_factor
from genlab.models.io import CheckpointError

FAST = dict(batch_size=32, lr=0.05, progress=False, sample_every=-1, log_every=1)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_batch_order_epochs_and_shards():
    o = BatchOrder(n=100, batch_size=32, seed=3)
    assert o.per_epoch == 3                                   # the last 4 examples of each epoch are dropped
    e0 = torch.cat([o.indices(b) for b in range(3)])
    assert len(set(e0.tolist())) == 96                        # no repeats within an epoch
    assert not torch.equal(o.indices(0), o.indices(3))        # a fresh permutation each epoch
    assert torch.equal(BatchOrder(100, 32, 3).indices(7), o.indices(7))   # the batch number fixes the data
    assert not torch.equal(BatchOrder(100, 32, 4).indices(0), o.indices(0))
    shards = [BatchOrder(100, 32, 3, rank=r, world=2).indices(5) for r in range(2)]
    assert [len(s) for s in shards] == [16, 16]
    assert torch.equal(torch.cat(shards), o.indices(5))       # rank r takes its slice of the global batch


def test_lr_schedule():
    cfg = TrainConfig(steps=110, warmup=10, schedule="cosine")
    assert lr_factor(5, cfg) == pytest.approx(0.5)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.5)           # half-way through the cosine
    assert lr_factor(110, cfg) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(50, TrainConfig(steps=100)) == 1.0


@pytest.mark.parametrize("name", ["test-engine-gauss", "test-engine-2phase"])
def test_resume_equals_uninterrupted(tmp_path, name):
    """18 steps in one go == 8 steps, then resume to 18 (constant LR after warm-up, so the first call's
    schedule does not depend on its `steps`; the cosine case is the SIGKILL test in test_engine_dist)."""
    ds = T.toy_data()
    kw = dict(FAST, ema=0.8 if name == "test-engine-gauss" else 0.0, warmup=3, checkpoint_every=4)
    full = gl.train(T.make(name, ds), ds, steps=18, out=tmp_path / "full", **kw)
    gl.train(T.make(name, ds), ds, steps=8, out=tmp_path / "res", **kw)
    res = gl.train(T.make(name, ds, seed=99), ds, steps=18, out=tmp_path / "res", resume=True, **kw)
    assert res.step == 18
    assert_same(state(res.model), state(full.model))          # bitwise: weights (the EMA export if on)
    raw_full = ck.load_checkpoint(tmp_path / "full" / "checkpoint")
    raw_res = ck.load_checkpoint(tmp_path / "res" / "checkpoint")
    assert_same(raw_res["model"], raw_full["model"])          # raw weights
    for ph in raw_full["optimizers"]:                         # Adam moments
        for i, s in raw_full["optimizers"][ph]["state"].items():
            for k, v in s.items():
                assert torch.equal(torch.as_tensor(raw_res["optimizers"][ph]["state"][i][k]), torch.as_tensor(v))
    losses = lambda r: [(h["step"], h["loss"]) for h in r.history]  # noqa: E731
    assert losses(res) == losses(full)                        # the log continues seamlessly
    rows = [json.loads(line) for line in (tmp_path / "res" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 19))
    run_json = json.loads((tmp_path / "res" / "run.json").read_text())
    assert run_json["resumed"][0]["step"] == 8


def test_resume_refuses_other_model_config(tmp_path):
    ds = T.toy_data()
    gl.train(T.make(data=ds), ds, steps=2, out=tmp_path, **FAST)
    with pytest.raises(TrainingError, match="init_shift: run has 0.0, now 1.0"):
        gl.train(T.make(data=ds, init_shift=1.0), ds, steps=4, out=tmp_path, resume=True, **FAST)
    with pytest.raises(TrainingError, match="already holds a run"):
        gl.train(T.make(data=ds), ds, steps=4, out=tmp_path, **FAST)
    gl.train(T.make(data=ds), ds, steps=2, out=tmp_path, overwrite=True, **FAST)


def test_resume_without_checkpoint_starts_afresh(tmp_path):
    ds = T.toy_data()
    a = gl.train(T.make(data=ds), ds, steps=3, out=tmp_path / "a", resume=True, **FAST)
    b = gl.train(T.make(data=ds), ds, steps=3, **FAST)
    assert_same(state(a.model), state(b.model))


def test_corrupt_checkpoint_files_are_named(tmp_path):
    ds = T.toy_data()
    gl.train(T.make(data=ds), ds, steps=3, out=tmp_path, **FAST)
    c = tmp_path / "checkpoint"
    good = {p.name: p.read_bytes() for p in c.iterdir()}
    for name, damage in [("model.safetensors", lambda b: b[: len(b) // 2]),
                         ("optimizer.pt", lambda b: b[:-40] + bytes(40)),
                         ("rng.safetensors", lambda b: b[:10])]:
        (c / name).write_bytes(damage(good[name]))
        with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
            gl.train(T.make(data=ds), ds, steps=5, out=tmp_path, resume=True, **FAST)
        (c / name).write_bytes(good[name])
    # the readers themselves name the file even without the recorded hashes
    bad = tmp_path / "junk.pt"
    bad.write_bytes(good["optimizer.pt"][:100])
    with pytest.raises(CheckpointError, match="junk.pt"):
        ck.load_optimizers(bad)
    (tmp_path / "junk.safetensors").write_bytes(good["model.safetensors"][:50])
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        gl.models.io.load_safetensors(tmp_path / "junk.safetensors")
    # an unfinished checkpoint (no trainer_state.json) is refused, not half-loaded
    (c / "trainer_state.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        gl.train(T.make(data=ds), ds, steps=5, out=tmp_path, resume=True, **FAST)


def test_crash_between_renames_recovers_old_checkpoint(tmp_path):
    ds = T.toy_data()
    full = gl.train(T.make(data=ds), ds, steps=6, **FAST)
    gl.train(T.make(data=ds), ds, steps=3, out=tmp_path, **FAST)
    os.replace(tmp_path / "checkpoint", tmp_path / ".checkpoint.old")   # the state after the first rename
    res = gl.train(T.make(data=ds), ds, steps=6, out=tmp_path, resume=True, **FAST)
    assert_same(state(res.model), state(full.model))
    assert (tmp_path / "checkpoint" / "trainer_state.json").is_file()
    assert not (tmp_path / ".checkpoint.old").exists()


def test_nonfinite_loss_is_skipped_then_aborts():
    ds = T.toy_data()
    ref = gl.train(T.make(data=ds), ds, steps=2, **FAST)
    m = T.make(data=ds)
    m.nan_at = {3}
    with pytest.warns(RuntimeWarning, match=r"loss is nan at step 3 \(phase main\)"):
        gl.train(m, ds, steps=3, **FAST)
    assert_same(state(m), state(ref.model))                   # step 3 made no update
    m = T.make(data=ds)
    m.nan_at = set(range(5, 100))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainingError, match=r"3 consecutive.*nan at step 7 \(phase main\).*lower lr"):
            gl.train(m, ds, steps=20, max_nonfinite=3, **FAST)


def test_ema_matches_hand_computation():
    ds = T.toy_data()
    d = 0.7
    theta = [state(T.make(data=ds))] + [state(gl.train(T.make(data=ds), ds, steps=k, **FAST).model)
                                        for k in (1, 2, 3)]
    ema = gl.train(T.make(data=ds), ds, steps=3, ema=d, ema_warmup=False, **FAST)
    for k in theta[0]:
        # θ̄₃ = d³θ₀ + d²(1−d)θ₁ + d(1−d)θ₂ + (1−d)θ₃
        want = d**3 * theta[0][k] + d**2 * (1 - d) * theta[1][k] + d * (1 - d) * theta[2][k] + (1 - d) * theta[3][k]
        torch.testing.assert_close(ema.model.state_dict()[k], want, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(want, theta[3][k])          # the average differs from the raw weights
    # with the warm-up (the default) step n uses dₙ = min(d, (1+n)/(10+n)): d₁ = 2/11, d₂ = 3/12, d₃ = 4/13
    d = 0.3                                                   # d₃ = 4/13 > 0.3: the cap is reached at n = 3
    ds_ = [min(d, (1 + n) / (10 + n)) for n in (1, 2, 3)]
    assert ds_[0] == pytest.approx(2 / 11) and ds_[1] == pytest.approx(0.25) and ds_[2] == 0.3
    warm = gl.train(T.make(data=ds), ds, steps=3, ema=d, **FAST)
    for k in theta[0]:
        want = theta[0][k]
        for n in (1, 2, 3):
            want = ds_[n - 1] * want + (1 - ds_[n - 1]) * theta[n][k]
        torch.testing.assert_close(warm.model.state_dict()[k], want, rtol=1e-6, atol=1e-7)
        weight0 = ds_[0] * ds_[1] * ds_[2]                    # θ₀'s share: 0.0136 with, 0.027 without warm-up
        assert weight0 < 0.6 * d**3


def test_phases_repeats_and_own_parameters():
    ds = T.toy_data()
    m = T.make("test-engine-2phase", ds)
    a0, b0 = state(m.a), state(m.b)
    gl.train(m, ds, steps=5, **FAST)
    assert m.calls == {"a": 10, "b": 5}                       # repeats honoured
    assert not torch.equal(state(m.a)["0.weight"], a0["0.weight"]) and not torch.equal(state(m.b)["weight"], b0["weight"])

    class FrozenA(T.TwoPhaseToy):                           # phase a with lr 0: a must not move at all,
        def phases(self):                                   # although phase b's loss has gradients in a
            ph = super().phases()
            ph[0].lr = 0.0
            return ph

    m = FrozenA(ds.info, T.TwoPhaseToy.Config())
    a0, b0 = state(m.a), state(m.b)
    gl.train(m, ds, steps=4, **FAST)
    assert_same(state(m.a), a0)
    assert not torch.equal(state(m.b)["weight"], b0["weight"])


def test_seeded_determinism():
    ds = T.toy_data()
    runs = [gl.train(T.make(data=ds), ds, steps=6, seed=s, **FAST) for s in (0, 0, 1)]
    assert T.param_hash(runs[0].model) == T.param_hash(runs[1].model)
    assert T.param_hash(runs[0].model) != T.param_hash(runs[2].model)
    # validation never changes the training trajectory (it runs under a forked RNG)
    with_val = gl.train(T.make(data=ds), ds, steps=6, seed=0, val=T.toy_data(64, seed=1), eval_every=2, **FAST)
    assert T.param_hash(with_val.model) == T.param_hash(runs[0].model)


def test_validation_metrics_run_json_and_final_export(tmp_path, monkeypatch):
    saved = []
    fake = types.ModuleType("genlab.data.plot")
    fake.save_samples = lambda x, info, path, **kw: (saved.append((x.shape, str(path))), path.write_bytes(b"png"))
    monkeypatch.setitem(sys.modules, "genlab.data.plot", fake)
    ds, val = T.toy_data(), T.toy_data(100, seed=1, split="val")
    run = gl.train(T.make(data=ds, noise=0.0), ds, steps=10, out=tmp_path, val=val, eval_every=5,
                   num_samples=50, ema=0.5, checkpoint_every=5, **dict(FAST, sample_every=5))
    vals = [h for h in run.history if "val_loss" in h]
    assert [h["step"] for h in vals] == [5, 10]
    with torch.no_grad():                                     # the EMA (exported) model's mean NLL on val
        assert vals[-1]["val_loss_ema"] == pytest.approx(float(-run.model.log_prob(val.x).mean()), rel=1e-5)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11)) and rows[4]["val_loss"] == vals[0]["val_loss"]
    csv = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("step,") and "val_loss" in csv[0] and len(csv) == 11
    assert saved == [((50, 2), str(tmp_path / "samples" / "step_000005.png")),
                     ((50, 2), str(tmp_path / "samples" / "step_000010.png"))]
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["model"]["genlab_model"] == "test-engine-gauss" and info["data"] == ds.source
    assert info["train"]["ema"] == 0.5 and info["world_size"] == 1 and info["seed"] == 0 and info["genlab_version"]
    loaded = gl.load(tmp_path)                                # final/ = the EMA weights
    assert_same(state(loaded), state(run.model))
    raw = gl.models.io.load_model(tmp_path / "checkpoint")    # checkpoint/ = the raw weights
    assert not torch.equal(raw.mu, loaded.mu)


def test_bf16_autocast_trains():
    ds = T.toy_data()
    run = gl.train(T.make(data=ds), ds, steps=30, precision="bf16", **FAST)
    assert math.isfinite(run.final_loss) and run.final_loss < run.history[0]["loss"]


def test_unknown_option_is_named():
    ds = T.toy_data()
    with pytest.raises(TypeError, match="did you mean 'grad_clip'"):
        gl.train(T.make(data=ds), ds, steps=1, grad_clp=1.0)


def test_phase_gradients_do_not_leak_into_other_phases():
    """Phase b's loss has gradients in a; they must be cleared before a's next update. With b's lr at 0
    and full batches, a trains exactly as if phase b did not exist."""
    ds = T.toy_data(64)

    class FrozenB(T.TwoPhaseToy):
        def phases(self):
            ph = super().phases()
            ph[1].lr = 0.0
            return ph

    class OnlyA(T.TwoPhaseToy):
        def phases(self):
            return super().phases()[:1]

    runs = []
    for cls in (FrozenB, OnlyA):
        torch.manual_seed(0)
        m = cls(ds.info, T.TwoPhaseToy.Config())
        runs.append(gl.train(m, ds, steps=6, **dict(FAST, batch_size=64)).model)
    torch.testing.assert_close(state(runs[0].a), state(runs[1].a), rtol=1e-5, atol=1e-6)


def _shifted(ds, shift):
    from genlab.data.base import Dataset
    return Dataset(ds.x + shift, ds.info, split="val")


def test_keep_best_exports_the_weights_that_validated_best(tmp_path):
    """Train data centred at (1, −1), validation data shifted half-way towards the start (μ₀ = 4): the
    validation loss falls, then rises as μ walks past it, so its minimum lies strictly inside the run.
    The exported model must carry the weights of the logged arg-min step, bit for bit (final/ too),
    and score exactly the logged minimum; without keep_best the model is the last one."""
    ds = T.toy_data()
    val = _shifted(ds, 1.5)
    kw = dict(FAST, lr=0.1, eval_every=2, checkpoint_every=0)
    last = gl.train(T.make(data=ds, init_shift=4.0), ds, steps=40, val=val, **kw)
    run = gl.train(T.make(data=ds, init_shift=4.0), ds, steps=40, val=val, keep_best=True,
                   out=tmp_path / "r", **kw)
    vals = [(h["val_loss"], h["step"]) for h in run.history if "val_loss" in h]
    best_val, best_step = min(vals)
    assert 2 < best_step < 40                                  # an interior minimum: the test can fail
    assert run.best_step == best_step and run.best_val_loss == best_val
    assert vals[-1][0] > best_val + 0.05                       # the last weights are clearly worse
    from genlab.engine.trainer import TrainConfig, validation_loss
    phases = run.model.phases()
    again = validation_loss(run.model, val, phases, TrainConfig(batch_size=32), "cpu")["val_loss"]
    assert again == pytest.approx(best_val, abs=1e-6)
    assert not torch.equal(run.model.mu, last.model.mu)
    assert_same(state(gl.load(tmp_path / "r")), state(run.model))
    assert json.loads((tmp_path / "r" / "run.json").read_text())["best"]["step"] == best_step
    # the uninterrupted run with keep_best=False ends on the last weights, which the val log shows worse
    assert validation_loss(last.model, val, phases, TrainConfig(batch_size=32), "cpu")["val_loss"] > best_val + 0.05


def test_keep_best_survives_resume(tmp_path):
    """A run resumed after its best step keeps the best weights through the checkpoint (not only memory)."""
    ds = T.toy_data()
    val = _shifted(ds, 1.5)
    kw = dict(FAST, lr=0.1, eval_every=2, keep_best=True)
    full = gl.train(T.make(data=ds, init_shift=4.0), ds, steps=40, val=val, out=tmp_path / "full",
                    checkpoint_every=30, **kw)
    gl.train(T.make(data=ds, init_shift=4.0), ds, steps=30, val=val, out=tmp_path / "res", checkpoint_every=30, **kw)
    assert ck.load_checkpoint(tmp_path / "res" / "checkpoint")["best"] is not None
    res = gl.train(T.make(data=ds, seed=5, init_shift=4.0), ds, steps=40, val=val, out=tmp_path / "res",
                   resume=True, checkpoint_every=30, **kw)
    assert res.best_step == full.best_step < 30
    assert_same(state(res.model), state(full.model))


def test_keep_best_and_train_defaults_are_checked(monkeypatch):
    ds = T.toy_data()
    with pytest.raises(TrainingError, match="val="):
        gl.train(T.make(data=ds), ds, steps=2, keep_best=True, **FAST)
    with pytest.raises(TrainingError, match="single-phase"):
        gl.train(T.make("test-engine-2phase", ds), ds, steps=2, keep_best=True, val=ds, **FAST)
    m = T.make(data=ds)
    m.train_defaults = {"grad_clip": None, "lr": 0.5}        # a family's defaults apply ...
    run = gl.train(m, ds, steps=1, **{k: v for k, v in FAST.items() if k != "lr"})
    assert run.config.grad_clip is None and run.config.lr == 0.5
    run = gl.train(m, ds, steps=1, **FAST)                   # ... unless the caller says otherwise
    assert run.config.lr == FAST["lr"] and run.config.grad_clip is None
    m.train_defaults = {"grad_clipp": None}
    with pytest.raises(Exception, match="grad_clipp"):
        gl.train(m, ds, steps=1, **FAST)
