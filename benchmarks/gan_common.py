"""Shared bits of the GAN/EBM benchmark scripts: the load/date stamp and the JSON-lines record."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


def stamp() -> dict:
    """1-minute load average, UTC date and the genlab commit, recorded beside every timing."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {"load1": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "commit": commit}


def record(row: dict, out, show: dict | None = None) -> dict:
    """Print ``show`` (default ``row``) as one JSON line and append ``row`` to the file ``out``."""
    print(json.dumps(row if show is None else show, default=str), flush=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
    return row
