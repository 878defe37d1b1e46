"""Fine-tune a character GPT trained on Shakespeare on a new corpus (a list of names), fully and with
LoRA adapters, and show samples before and after.

    nice python benchmarks/finetune_lm.py [--base runs/bench-gpt-shakespeare] [--steps 300]

If ``--base`` does not hold a trained model, a small GPT is first trained on Shakespeare for
``--base-steps`` steps. The new corpus is the ``names`` dataset's training names, capitalised, one per
line ("Mary\\nJohn\\n…"), encoded with the *Shakespeare* vocabulary (every character of it is in
there) and cut into the same 65-character windows, so the model, its vocabulary and its window are
unchanged: only the weights move.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from autoregressive_common import load, machine, write_raw  # noqa: E402

import genlab as gl  # noqa: E402
from genlab.data.base import Dataset  # noqa: E402
from genlab.models.lora import apply_lora, lora_parameters, remove_lora  # noqa: E402


def names_corpus(info, split: str) -> Dataset:
    names = gl.load_dataset("names", split=split).extras["names"]
    text = "".join(n.capitalize() + "\n" for n in names)
    index = {c: i for i, c in enumerate(info.vocab)}
    stream = torch.tensor([index[c] for c in text])
    return Dataset(x=stream.unfold(0, info.dim, 1), info=info, split=split)


def nll(model, ds, n=2000):
    idx = torch.randint(0, len(ds), (n,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return float(-model.token_log_probs(ds.x[idx])[:, 1:].mean())


def samples(model, prompt="\n", k=3):
    g = torch.Generator().manual_seed(0)
    out = model.sample(k, prompt=prompt, max_new_tokens=120, temperature=0.8, top_p=0.95, generator=g)
    return model.decode(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="runs/bench-gpt-shakespeare")
    ap.add_argument("--base-steps", type=int, default=600)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rank", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load0 = load()
    try:
        base = gl.load(args.base)
        base_note = f"loaded from {args.base}"
    except Exception:
        sh = gl.load_dataset("shakespeare")
        base = gl.create("gpt", data=sh)
        gl.train(base, sh, steps=args.base_steps, batch_size=12, lr=1e-3, warmup=50, schedule="cosine", progress=False,
                 eval_every=-1, sample_every=-1)
        base_note = f"trained here for {args.base_steps} steps (nanoGPT CPU config otherwise)"
    sh_val = gl.load_dataset("shakespeare", split="val")
    train, val = names_corpus(base.info, "train"), names_corpus(base.info, "val")
    res = {"base": base_note, "new_corpus_windows": len(train), "steps": args.steps,
           "before": {"names_val": nll(base, val), "shakespeare_val": nll(base, sh_val), "samples": samples(base)}}
    for mode in ("full", "lora"):
        model = copy.deepcopy(base)
        if mode == "lora":
            apply_lora(model, r=args.rank, alpha=2 * args.rank)
            trainable, lr = sum(p.numel() for p in lora_parameters(model)), 3e-3
        else:
            trainable, lr = sum(p.numel() for p in model.parameters()), 3e-4
        t0 = time.perf_counter()
        gl.train(model, train, steps=args.steps, batch_size=12, lr=lr, schedule="cosine", progress=False,
                 eval_every=-1, sample_every=-1)
        wall = time.perf_counter() - t0
        if mode == "lora":
            remove_lora(model, merge=True)            # a plain GPT again: save_pretrained works as usual
        res[mode] = {"trainable_params": trainable, "lr": lr, "wall_s": wall, "names_val": nll(model, val),
                     "shakespeare_val": nll(model, sh_val), "samples": samples(model)}
        print(mode, json.dumps(res[mode], indent=1), flush=True)
    res.update(load_start=load0, load_end=load(), machine=machine(),
               total_params=sum(p.numel() for p in base.parameters()))
    print(json.dumps(res, indent=1))
    write_raw("finetune_lm", "```json\n" + json.dumps(res, indent=1) + "\n```\n")


if __name__ == "__main__":
    main()
