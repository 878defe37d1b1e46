"""GPT on Shakespeare with nanoGPT's documented CPU configuration; val nats/char, tokens/s, MFU.

    nice python benchmarks/shakespeare_gpt.py [--steps 2000] [--out runs/bench-gpt-shakespeare]

nanoGPT CPU config: 4 layers, 4 heads, 128 embedding, context 64, batch 12, 2000 iterations, lr 1e-3
(warm-up 100, cosine decay), AdamW β2 = 0.99, weight decay 0.1, grad clip 1, no dropout, no bias.
genlab's windows are 65 characters with a START symbol in front, so the context is 65 positions and
every window predicts 65 characters; "val (nanoGPT-comparable)" averages positions 1..64 (each
predicted from ≥ 1 character of context, as nanoGPT's targets are), "val (all)" all 65.
Differences: genlab's cosine schedule decays to 0 (nanoGPT: to 1e-4); validation = 4000 random
val windows (nanoGPT CPU run: 20 batches of 12).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from autoregressive_common import load, machine, peak_matmul_gflops, write_raw  # noqa: E402

import genlab as gl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench-gpt-shakespeare")
    ap.add_argument("--tag", default="gpt")
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load0 = load()
    peak = peak_matmul_gflops()
    train = gl.load_dataset("shakespeare", split="train")
    val = gl.load_dataset("shakespeare", split="val")
    model = gl.create("gpt", data=train, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False)
    t0, c0 = time.perf_counter(), time.process_time()
    run = gl.train(model, train, steps=args.steps, batch_size=12, lr=args.lr, warmup=100, schedule="cosine",
                   weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, seed=0, threads=args.threads,
                   out=args.out, overwrite=True, eval_every=-1, sample_every=-1, checkpoint_every=0,
                   progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    model = run.model.eval()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, len(val), (4000,), generator=g)
    with torch.no_grad():
        lps = torch.cat([model.token_log_probs(val.x[idx[i:i + 500]]) for i in range(0, len(idx), 500)])
    val_cmp = float(-lps[:, 1:].mean())
    val_all = float(-lps.mean())
    # throughput and MFU (nanoGPT's estimate: 6N + 12·L·H·Q·T FLOPs per token, N without wpe)
    N = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel()
    L, H, Q, T = 4, 4, 128 // 4, model.block_size
    flops_token = 6 * N + 12 * L * H * Q * T
    tokens = args.steps * 12 * T
    tps = tokens / run.wall_time
    tps_cpu = tokens / cpu
    mfu = flops_token * tps / (peak * 1e9)
    t1 = time.perf_counter()
    sample = model.generate_text("ROMEO:", max_new_tokens=300, temperature=0.8, top_p=0.9)
    gen_time = time.perf_counter() - t1
    res = dict(steps=args.steps, lr=args.lr, command="python benchmarks/shakespeare_gpt.py " + " ".join(sys.argv[1:]), train_wall_s=run.wall_time, total_wall_s=wall, train_cpu_s=cpu, val_nats_char_cmp=val_cmp,
               val_nats_char_all=val_all, tokens_per_s=tps, mfu=mfu, tokens_per_cpu_s=tps_cpu, mfu_cpu_time=flops_token * tps_cpu / (peak * 1e9), peak_gflops=peak, params=N,
               load_start=load0, load_end=load(), machine=machine(), sample=sample, sample_chars_per_s=300 / gen_time,
               final_train_loss=run.final_loss)
    print(json.dumps(res, indent=1))
    write_raw(f"shakespeare_{args.tag}", "```json\n" + json.dumps(res, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
