"""The command line end to end, as a user runs it: train → sample → evaluate → resume."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def genlab(*args, ok=True, timeout=240):
    p = subprocess.run([sys.executable, "-m", "genlab.cli", *map(str, args)], capture_output=True, text=True,
                       env=ENV, timeout=timeout)
    if ok:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


def invoke(*args):
    """In-process run of the CLI (spares a torch import per call)."""
    from typer.testing import CliRunner

    from genlab.cli import app
    return CliRunner().invoke(app, [str(a) for a in args])


def test_help_and_list():
    p = genlab("--help")  # one real subprocess: the entry point works
    assert "train" in p.stdout and "evaluate" in p.stdout
    r = invoke("list", "datasets")
    assert r.exit_code == 0 and "8gaussians" in r.output and "digits" in r.output
    r = invoke("list", "models")
    assert "realnvp" in r.output and "exact" in r.output
    r = invoke("list", "nonsense")
    assert r.exit_code == 2 and "choose models, datasets or metrics" in r.output


def test_train_sample_evaluate_resume(tmp_path):
    run = tmp_path / "run"
    genlab("train", "realnvp", "--data", "8gaussians", "--steps", 40, "--out", run, "--seed", 1,
           "hidden=32,32", "num_layers=4", "batch_size=64", "checkpoint_every=20", "data.n=800")
    cfg = json.loads((run / "run.json").read_text())
    assert cfg["data"]["name"] == "8gaussians" and cfg["data"]["n"] == 800
    assert (run / "final" / "model.safetensors").is_file() and (run / "checkpoint").is_dir()
    genlab("sample", run, "--n", 50, "--out", tmp_path / "s.npy", "--seed", 3)
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (50, 2) and np.isfinite(x).all()
    assert invoke("sample", run, "--n", 50, "--out", tmp_path / "s2.npy", "--seed", 3).exit_code == 0
    assert np.array_equal(x, np.load(tmp_path / "s2.npy")), "same seed must give the same samples"
    assert invoke("sample", run, "--n", 100, "--out", tmp_path / "s.png").exit_code == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    p = genlab("evaluate", run, "--metrics", "nll,mmd", "--json")
    rec = json.loads(p.stdout[p.stdout.index("{"):])
    assert "nll" in json.dumps(rec["metrics"]) and rec["protocol"]["likelihood"]["kind"] == "exact"
    assert list((run / "evaluations").glob("*.json"))
    # resume to 60 steps continues from the checkpoint at step 40
    genlab("train", "realnvp", "--data", "8gaussians", "--steps", 60, "--out", run, "--seed", 1, "--resume",
           "hidden=32,32", "num_layers=4", "batch_size=64", "data.n=800")
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"step"' in line]
    assert max(steps) == 60


@pytest.mark.parametrize("args, message", [
    (["train", "realnvpp", "--data", "moons", "--steps", 1], "Did you mean 'realnvp'"),
    (["train", "realnvp", "--data", "moonz", "--steps", 1], "unknown dataset 'moonz'"),
    (["train", "realnvp", "--data", "moons", "--steps", 1, "hiden=3"], "did you mean 'hidden'"),
    (["train", "realnvp", "--data", "moons", "--steps", 1, "lr=fast"], "expected float"),
    (["train", "realnvp", "--data", "moons", "--steps", 1, "oops"], "key=value"),
    (["sample", "/nonexistent/run"], "no such file"),
    (["bench", "nonsense"], "unknown bench suite 'nonsense'"),
])
def test_bad_input_gets_clear_error(args, message, tmp_path, monkeypatch):
    # in-process (typer's runner) to spare a torch import per case; exit code 2 and a one-line message
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output[-1500:]
    assert result.exception is None or isinstance(result.exception, SystemExit)
