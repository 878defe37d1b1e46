"""Helpers for the rate tests, the load benchmark and the docs: tiny stimuli, a design on disk,
a server subprocess on loopback, and a scripted participant (standard library HTTP only)."""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def make_images(folder: Path, n: int, level: float, size: int = 8, seed: int = 0) -> Path:
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        a = np.clip(level * 255 + rng.normal(0, 20, size=(size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"{i:03d}.png")
    return folder


def make_wavs(folder: Path, n: int, freq: float, sr: int = 16000, dur: float = 0.15) -> Path:
    from scipy.io import wavfile
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * dur)) / sr
    for i in range(n):
        x = 0.3 * np.sin(2 * np.pi * (freq + 10 * i) * t)
        wavfile.write(folder / f"{i:03d}.wav", sr, (x * 32767).astype(np.int16))
    return folder


def make_texts(folder: Path, n: int, word: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i:03d}.txt").write_text(f"{word} number {i} is a short sentence.")
    return folder


def toy_design(root: Path, ttype: str, modality: str = "image", n_systems: int = 2, n_items: int = 4,
               **extra: Any) -> Path:
    """Write sources and a JSON design under ``root``; returns the design path."""
    root.mkdir(parents=True, exist_ok=True)
    maker = {"image": lambda f, k: make_images(f, n_items, 0.2 + 0.2 * k, seed=k),
             "audio": lambda f, k: make_wavs(f, n_items, 220.0 * (k + 1)),
             "text": lambda f, k: make_texts(f, n_items, f"word{k}")}[modality]
    systems = []
    for k in range(n_systems):
        maker(root / f"sys{k}", k + 1)
        systems.append({"name": f"sys{k}", "path": f"sys{k}"})
    design: dict[str, Any] = {"name": f"toy-{ttype}", "type": ttype, "modality": modality, "systems": systems,
                              "min_time_s": 0.0, "seed": 0}
    if ttype in ("mushra", "hype") or extra.pop("reference", False):
        maker(root / "real", 0)
        design["reference"] = {"path": "real"}
    design.update(extra)
    p = root / "design.json"
    p.write_text(json.dumps(design, indent=1))
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ForkedServer:
    """A server in a forked child process (starts instantly: the parent's imports are inherited).
    Popen-like: poll(), kill(), send_signal(), wait()."""

    def __init__(self, test_dir: Path, port: int, admin_token: str, db: str | None):
        import multiprocessing as mp
        self.proc = mp.get_context("fork").Process(target=_child, args=(str(test_dir), port, admin_token, db),
                                                   daemon=True)
        self.proc.start()
        self.pid = self.proc.pid
        self.stdout = None

    def poll(self):
        return None if self.proc.is_alive() else self.proc.exitcode

    def kill(self):
        self.proc.kill()

    def send_signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout=None):
        self.proc.join(timeout)
        return self.proc.exitcode


def _child(test_dir, port, admin_token, db):  # pragma: no cover - runs in the child
    import contextlib
    from .server import serve
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        serve(test_dir, port=port, admin_token=admin_token, db=db)


def start_server(test_dir: Path, port: int, admin_token: str = "admin-secret-token", db: str | None = None,
                 timeout: float = 60.0, fork: bool = False, workers: int = 1):
    """Start a server on 127.0.0.1:port and wait until it answers: ``python -m genlab.apps.rate serve``
    in a subprocess, or (``fork=True``) a forked child of this process."""
    if fork:
        proc = ForkedServer(test_dir, port, admin_token, db)
    else:
        cmd = [sys.executable, "-m", "genlab.apps.rate", "serve", str(test_dir), "--port", str(port),
               "--admin-token", admin_token, "--workers", str(workers)]
        if db:
            cmd += ["--db", db]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError("server exited: " + (proc.stdout.read().decode(errors="replace") if proc.stdout else ""))
        try:
            status, _ = request(port, "GET", "/api/config")
            if status == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start in time")


def request(port: int, method: str, path: str, body: Any = None, token: str | None = None,
            raw: bytes | None = None, conn: http.client.HTTPConnection | None = None,
            timeout: float = 30.0) -> tuple[int, Any]:
    """One HTTP request to 127.0.0.1:port; returns (status, parsed JSON or text)."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        payload = r.read()
    finally:
        if own:
            c.close()
    ctype = r.getheader("content-type", "")
    if "json" in ctype:
        return r.status, json.loads(payload)
    return r.status, payload


def answer_for(trial: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A random valid answer for a trial payload."""
    k = trial["kind"]
    if k == "mos":
        return {"rating": int(rng.integers(1, 6))}
    if k == "pairwise":
        return {"choice": ["left", "right"][int(rng.integers(0, 2))]}
    if k == "mushra":
        return {"scores": [int(v) for v in rng.integers(0, 101, size=len(trial["stimuli"]))]}
    return {"judgement": ["real", "fake"][int(rng.integers(0, 2))]}


class Participant:
    """A scripted participant over one keep-alive connection."""

    def __init__(self, port: int, seed: int = 0, timeout: float = 30.0):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.rng = np.random.default_rng(seed)
        self.token = self.session = self.pid = None
        self.acked: list[dict[str, Any]] = []     # responses the server acknowledged (200)
        self.latencies: list[float] = []

    def req(self, method, path, body=None):
        """One request on the keep-alive connection. If the server had already closed it as idle (uvicorn's
        keep-alive timeout is 5 s; a participant can wait longer, e.g. at a barrier on a loaded machine) the
        request was never read: reconnect and send it once more, as browsers do. Other errors propagate."""
        for attempt in (0, 1):
            try:
                return request(self.port, method, path, body, token=self.token, conn=self.conn)
            except (http.client.HTTPException, OSError) as e:
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30.0)
                stale = isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                if attempt or not stale:
                    raise

    def start(self) -> None:
        st, r = self.req("POST", "/api/session", {"consent": True, "client": {"screen_w": 360, "input": "script"}})
        assert st == 200, (st, r)
        self.token, self.session, self.pid = r["token"], r["session_id"], r["participant_id"]

    def resume(self) -> dict[str, Any]:
        st, r = self.req("POST", "/api/resume", {})
        assert st == 200, (st, r)
        self.session = r["session_id"]
        return r

    def step(self) -> bool:
        """Fetch the next trial and answer it; False when done."""
        st, r = self.req("GET", "/api/next")
        assert st == 200, (st, r)
        if r["done"]:
            self.code = r["completion_code"]
            return False
        t = r["trial"]
        ans = answer_for(t, self.rng)
        body = {"session_id": self.session, "trial_index": t["index"], "trial_id": t["trial_id"],
                "response": ans, "rt_ms": 1500, "played": [True] * len(t["stimuli"])}
        t0 = time.perf_counter()
        st, res = self.req("POST", "/api/response", body)
        self.latencies.append(time.perf_counter() - t0)
        assert st == 200, (st, res)
        self.acked.append({"trial_index": t["index"], "trial_id": t["trial_id"], "response": ans,
                           "response_id": res["response_id"]})
        return True

    def close(self) -> None:
        self.conn.close()
