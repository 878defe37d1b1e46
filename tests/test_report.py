"""Bench + report: a tiny suite trains through gl.train, evaluates with one protocol, and writes a
Markdown and a self-contained HTML report (leaderboard, base64 sample grids, curves)."""
import json
import re

import pytest

from genlab.apps.bench import SUITES, BenchEntry, Suite, run_bench
from genlab.apps.report import leaderboard, write_report


def test_tiny_bench_writes_reports(tmp_path):
    suite = Suite("tiny", [BenchEntry("realnvp", "8gaussians", 6, {"num_layers": 2, "hidden": (16,)}),
                           BenchEntry("not-a-family", "8gaussians", 3)],
                  metrics=["nll", "kl_gap", "mmd", "energy"], n_samples=300, test_n=300, keep_best=True)
    path = run_bench(suite, tmp_path, progress=False, log=lambda m: None)
    assert path == tmp_path / "tiny" / "report.html"
    page = path.read_text()
    assert "http://" not in page and "https://" not in page                   # self-contained
    assert len(re.findall(r"src='data:image/png;base64,[A-Za-z0-9+/=]{200,}'", page)) >= 2   # samples + curves
    md = (tmp_path / "tiny" / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| realnvp | 8gaussians | exact |"))
    nll = float(row.split("|")[4])
    bench = json.loads((tmp_path / "tiny" / "bench.json").read_text())
    rec = bench["results"][0]["record"]
    assert nll == pytest.approx(rec["metrics"]["nll"]["nll"], rel=1e-3)     # table shows the record's number
    assert rec["protocol"]["n_samples"] == 300 and rec["protocol"]["dataset"] == "8gaussians"
    assert "not registered" in md                                           # failures are reported, not fatal
    best = bench["results"][0]["best_step"]                                 # keep_best: validation every step
    vals = [(h["val_loss"], h["step"]) for h in bench["results"][0]["history"] if "val_loss" in h]
    assert best == min(vals)[1] and f"(best {best})" in row
    # the evaluation record is also in the run directory
    assert list((tmp_path / "tiny" / "realnvp-8gaussians" / "evaluations").glob("*.json"))


def test_leaderboard_from_records_without_training(tmp_path):
    rec = {"metrics": {"mmd": 0.01, "prdc": {"precision": 0.9, "recall": 0.8, "density": 1.0, "coverage": 0.7}},
           "protocol": {"likelihood": {"kind": "none"}, "dataset": "x", "split": "test", "n_data": 5, "n_samples": 5,
                        "seed": 0, "features": {"name": "raw"}, "genlab_version": "0", "torch_version": "0",
                        "date": "today"}, "notes": []}
    res = [{"family": "gan", "dataset": "x", "steps": 1, "record": rec, "num_parameters": 10, "train_seconds": 1.0}]
    header, rows = leaderboard(res)
    assert header[3:8] == ["MMD²", "precision", "recall", "density", "coverage"]
    assert rows[0][3:8] == ["0.01", "0.9", "0.8", "1", "0.7"]
    p = write_report(res, tmp_path, {"suite": "s"})
    assert "<td>gan</td>" in p.read_text()
    assert set(SUITES) >= {"quick", "toy2d", "digits"}
    with pytest.raises(ValueError, match="unknown bench suite"):
        run_bench("nope", tmp_path)
