"""Trains a tiny engine_toys model; run by tests/test_engine_dist.py as a plain subprocess (to be
SIGKILLed mid-run) or under ``torchrun --nproc_per_node=2 --standalone`` (DDP over gloo).

    python tests/engine_script.py OUT --steps 20 [--checkpoint-every 5] [--stall-at 8 --stall-file F]
           [--noise 0.01] [--ema 0.9] [--nan-at 4 --nan-rank 1]   (other options: engine_toys.SCRIPT_KW)

Each rank writes ``OUT/hash_rank{r}.txt`` (sha256 of its parameters) when training ends.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import warnings  # noqa: E402

import engine_toys as T  # noqa: E402
import genlab as gl  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--steps", type=int, default=20)
p.add_argument("--checkpoint-every", type=int, default=5)
p.add_argument("--noise", type=float, default=0.01)
p.add_argument("--ema", type=float, default=0.0)
p.add_argument("--stall-at", type=int, default=None)
p.add_argument("--stall-file", default=None)
p.add_argument("--nan-at", type=int, default=None, help="this training call's loss is NaN ...")
p.add_argument("--nan-rank", type=int, default=0, help="... on this rank only")
a = p.parse_args()

warnings.simplefilter("ignore")
warnings.filterwarnings("always", message=".*update skipped")   # the non-finite reports stay visible
ds = T.toy_data()
model = T.make(data=ds, noise=a.noise)
model.stall_at, model.stall_file = a.stall_at, a.stall_file
if a.nan_at is not None and int(os.environ.get("RANK", 0)) == a.nan_rank:
    model.nan_at = {a.nan_at}
run = gl.train(model, ds, steps=a.steps, out=a.out, checkpoint_every=a.checkpoint_every, ema=a.ema, **T.SCRIPT_KW)
rank = int(os.environ.get("RANK", 0))
Path(a.out, f"hash_rank{rank}.txt").write_text(T.param_hash(run.model))
