"""Train and ship genlab's feature classifiers (one per built-in image dataset).

    python benchmarks/train_feature_nets.py [digits mnist5k]

Writes ``src/genlab/assets/feature_<dataset>.safetensors`` (weights + metadata: test accuracy,
epochs, seed) and ``benchmarks/results/feature_nets.md`` (accuracies and SHA-256 hashes).
Runs on 1 CPU thread.
"""
from __future__ import annotations

import datetime
import sys
from pathlib import Path

import torch

import genlab as gl
from genlab.features import asset_path, save_feature_net, train_feature_net
from genlab.features.train import accuracy

SETTINGS = {"digits": dict(epochs=30, batch_size=32, lr=2e-3), "mnist5k": dict(epochs=15, batch_size=64, lr=2e-3)}


def main(names):
    torch.set_num_threads(1)
    rows = []
    for name in names:
        tr, va, te = (gl.load_dataset(name, split=s) for s in ("train", "val", "test"))
        net, stats = train_feature_net(tr, va, seed=0, **SETTINGS[name], log=lambda m: print(name, m, flush=True))
        stats["test_acc"] = accuracy(net, te.x, te.y)
        stats.update(n_train=len(tr), n_val=len(va), n_test=len(te), **SETTINGS[name])
        sha = save_feature_net(net, asset_path(name), extra={"stats": stats})
        size = asset_path(name).stat().st_size
        print(name, stats, sha, size, flush=True)
        rows.append((name, stats, sha, size))
    out = Path(__file__).parent / "results" / "feature_nets.md"
    lines = ["# Feature networks", "", "Command: `python benchmarks/train_feature_nets.py " + " ".join(names) + "`",
             f"Machine: 2-core CPU, torch {torch.__version__}, 1 thread; date {datetime.date.today()} "
             "(other sessions were loading the machine).", "",
             "Small CNN classifier (`genlab.features.FeatureNet`, 128-d penultimate features), Adam + cosine, "
             "±1-pixel shift augmentation, seed 0; split = the datasets' own train/val/test.", "",
             "| dataset | epochs | train s | train acc | val acc | test acc | file size | SHA-256 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s, sha, size in rows:
        lines.append(f"| {name} | {s['epochs']} | {s['train_seconds']} | {s['train_acc']:.4f} | {s['val_acc']:.4f} | "
                     f"{s['test_acc']:.4f} (n={s['n_test']}) | {size / 1024:.0f} KiB | `{sha}` |")
    if out.exists() and len(names) < len(SETTINGS):
        print("note: wrote only", names, "- rerun with all datasets to refresh", out)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or list(SETTINGS))
