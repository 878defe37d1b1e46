"""Real-valued sequences with a mixture density head: RNN (GRU) and WaveNet on noisy sine waves.

    nice python benchmarks/ar_sequences.py [--steps 800]

Data (made here, seeded): x_t = A sin(ω t + φ) + 0.05 ε_t, t = 0..39, with ω ∈ {0.3, 0.6} (two
modes), φ ~ U(0, 2π), A ~ U(0.5, 1). After a few steps the next value is nearly determined; at the
start it is multimodal, which a mixture head can represent and a single Gaussian cannot.
Writes docs/img/ar_sequences.png (data vs samples) and prints test NLL in nats/sequence.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from autoregressive_common import load, machine, write_raw  # noqa: E402

import genlab as gl  # noqa: E402
from genlab.data.base import DataInfo, Dataset  # noqa: E402

T = 40


def waves(n, seed):
    g = torch.Generator().manual_seed(seed)
    omega = torch.tensor([0.3, 0.6])[torch.randint(0, 2, (n, 1), generator=g)]
    phi = torch.rand(n, 1, generator=g) * 2 * math.pi
    amp = 0.5 + 0.5 * torch.rand(n, 1, generator=g)
    t = torch.arange(T).float()
    return amp * torch.sin(omega * t + phi) + 0.05 * torch.randn(n, T, generator=g)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=800)
    args = ap.parse_args()
    torch.set_num_threads(1)
    info = DataInfo(shape=(T,), modality="sequence", name="sines")
    train, test = Dataset(x=waves(2000, 0), info=info), Dataset(x=waves(500, 1), info=info, split="test")
    res, samples = {}, {}
    for name, kw in (("rnn", dict(cell="gru", hidden=64, layers=1, embd=16, components=3)),
                     ("wavenet", dict(channels=32, skip_channels=64, embd=16, components=3))):
        model = gl.create(name, data=train, **kw)
        t0 = time.perf_counter()
        gl.train(model, train, steps=args.steps, batch_size=64, lr=3e-3, schedule="cosine", progress=False,
                 eval_every=-1, sample_every=-1)
        with torch.no_grad():
            res[name] = {"test_nll_nats_per_seq": float(-model.log_prob(test.x).mean()),
                         "wall_s": time.perf_counter() - t0, "settings": kw}
            samples[name] = model.sample(6, generator=torch.Generator().manual_seed(0))
        print(name, res[name], flush=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)
    for ax, (title, xs) in zip(axes, [("data", test.x[:6]), ("rnn (GRU) + MDN head", samples["rnn"]),
                                      ("wavenet + MDN head", samples["wavenet"])]):
        ax.plot(xs.T.numpy(), lw=1)
        ax.set_title(title)
        ax.set_xlabel("t")
    fig.tight_layout()
    fig.savefig(Path(__file__).resolve().parents[1] / "docs" / "img" / "ar_sequences.png", dpi=70)
    out = dict(results=res, steps=args.steps, load=load(), machine=machine())
    print(json.dumps(out, indent=1))
    write_raw("sequences", "```json\n" + json.dumps(out, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
