"""The engine across processes: a run SIGKILLed after a checkpoint and resumed equals an
uninterrupted one; a 2-process torchrun (DDP over gloo) keeps its replicas identical, matches the
1-process run, and its checkpoint resumes in 1 process. Subprocesses use tests/engine_script.py."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

import engine_toys as T
import genlab as gl

SCRIPT = Path(__file__).parent / "engine_script.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_close(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def test_sigkill_after_checkpoint_then_resume_equals_uninterrupted(tmp_path):
    out, stall = tmp_path / "run", tmp_path / "stalled"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(out), "--steps", "20", "--checkpoint-every", "5",
                             "--ema", "0.9", "--stall-at", "13", "--stall-file", str(stall)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 150
    while not stall.exists():                 # the model sleeps inside step 13 (checkpoint at 10 is written)
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "training subprocess did not reach step 13"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    state = json.loads((out / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 10
    assert max(json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()) == 12

    ds = T.toy_data()
    kw = dict(T.SCRIPT_KW, ema=0.9)
    res = gl.train(T.make(data=ds, seed=5), ds, steps=20, out=out, resume=True, checkpoint_every=5, **kw)
    full = gl.train(T.make(data=ds), ds, steps=20, **kw)
    assert_close(weights(res.model), weights(full.model))
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))     # steps 11-12 of the killed run were dropped
    assert [r["loss"] for r in rows] == pytest.approx([h["loss"] for h in full.history], rel=1e-6)


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           str(SCRIPT), str(out), "--steps", "12", "--checkpoint-every", "6", "--noise", "0",
           "--nan-at", "4", "--nan-rank", "1"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    hashes = [(out / f"hash_rank{i}.txt").read_text() for i in range(2)]
    assert hashes[0] == hashes[1]                              # replicas stayed identical
    info = json.loads((out / "run.json").read_text())
    assert info["world_size"] == 2
    ddp = gl.load(out)

    # Without the loss's own noise, DDP's gradient = mean of the two half-batch gradients = the
    # full-batch gradient, so 2 processes follow the 1-process run up to rounding. Rank 1 alone had a
    # NaN loss at step 4: both ranks must have skipped that update (as the 1-process run does).
    assert "loss is nan at step 4 (phase main)" in r.stderr + r.stdout
    ds = T.toy_data()
    m = T.make(data=ds, noise=0.0)
    m.nan_at = {4}
    with pytest.warns(RuntimeWarning, match="at step 4"):
        one = gl.train(m, ds, steps=12, out=tmp_path / "one", checkpoint_every=6, **T.SCRIPT_KW)
    assert_close(weights(ddp), weights(one.model), atol=1e-5)

    # the 2-process checkpoint resumes in 1 process and continues like the 1-process run
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = gl.train(T.make(data=ds, noise=0.0), ds, steps=16, out=out, resume=True, **T.SCRIPT_KW)
    assert any("saved by 2 process(es) on 1" in str(x.message) for x in w)
    ref = gl.train(T.make(data=ds, noise=0.0), ds, steps=16, out=tmp_path / "one", resume=True, **T.SCRIPT_KW)
    assert res.step == 16
    assert_close(weights(res.model), weights(ref.model), atol=1e-5)
