"""``genlab rate create DESIGN --out TEST_DIR``: build a self-contained test folder.

The folder holds ``stimuli/`` (every file copied under a blind name: a keyed hash that reveals
neither the system nor the item), ``manifest.json`` (design, SHA-256 of every stimulus, the trial
pool, the trap trials) and later ``responses.sqlite``. Anchors (MUSHRA) and trap stimuli are made
here from the reference, so a test folder can be served and analysed without the original runs.

Per-participant randomisation (:func:`participant_plan`) is a pure function of the manifest, the
participant's sequential number and their recorded seed:
- trial subset: a fixed permutation of the pool, read in a window that rotates with the participant
  number, so every trial is seen equally often;
- presentation order: a permutation drawn from the participant's seed;
- slot placement: a fixed random permutation per trial, cyclically shifted by the participant number
  (a Latin square: over ``k`` consecutive participants every condition of a ``k``-slot trial sits in
  every slot exactly once; for A/B trials left/right alternate);
- trap trials: inserted at seeded positions.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from .design import EXTENSIONS, MODALITY_OF, Anchor, Design, DesignError, load_design

MANIFEST = "manifest.json"
STIMULI = "stimuli"
TEXT_EXT = ".txt"


# ----------------------------------------------------------------------------- discovery
class Blob:
    """A stimulus made in memory (e.g. one image of a run's ``samples/*.npy``)."""

    def __init__(self, data: bytes, ext: str):
        self.data, self.suffix = data, ext


GRID_RE = re.compile(r"^(step_\d+|cli_n\d+.*|samples?|final)$")


def _split_text(text: str) -> list[str]:
    """Texts separated by blank lines (as ``genlab sample --out x.txt`` writes them), else one per line."""
    parts = re.split(r"\n\s*\n", text) if re.search(r"\n\s*\n", text.strip()) else text.splitlines()
    return [t.strip() for t in parts if t.strip()]


def _numbered(items: list) -> list[tuple[str, Any]]:
    width = len(str(max(len(items) - 1, 0)))
    return [(f"{i:0{width}d}", x) for i, x in enumerate(items)]


def _npy_images(f: Path, run_dir: Path) -> list[tuple[str, Blob]]:
    """A run's ``samples/*.npy`` as PNGs (levels from the run's ``config.json`` when it says)."""
    levels = None
    cfg = run_dir / "config.json"
    if cfg.is_file():
        try:
            levels = json.loads(cfg.read_text()).get("info", {}).get("num_levels")
        except (ValueError, AttributeError):
            levels = None
    return _array_images(np.load(f, allow_pickle=False), levels, str(f))


def _array_images(x: np.ndarray, levels: int | None, what: str) -> list[tuple[str, Blob]]:
    """Split an array of images (N, H, W), (N, C, H, W) or (N, H, W, C) into PNGs.

    Discrete data (integers) are scaled by ``num_levels`` (else by the largest value); real-valued
    data are clipped to [0, 1] (or mapped from [-1, 1] when negative values occur)."""
    from PIL import Image
    f = what
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 1, -1)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (3, 4):
        raise DesignError(f"{f}: expected image samples shaped (N, H, W) or (N, C, H, W), got {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        top = (levels - 1) if levels else max(int(x.max()), 1)
        x = x.astype(np.float64) / top
    else:
        x = x.astype(np.float64)
        if x.min() < 0:
            x = (x + 1) / 2
    x = np.clip(x, 0, 1)
    out = []
    for i, im in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray((im * 255).round().astype(np.uint8)).save(buf, format="PNG")
        out.append(Blob(buf.getvalue(), ".png"))
    return _numbered(out)


def dataset_stimuli(name: str, split: str = "test", n: int = 200) -> list[tuple[str, Any]]:
    """The first ``n`` examples of a genlab dataset as stimuli: images as PNGs, text as strings."""
    import genlab as gl
    try:
        ds = gl.load_dataset(name, split=split)
    except Exception as e:  # noqa: BLE001 - re-raised as a design error naming the field
        raise DesignError(f"reference dataset {name!r} (split {split!r}) cannot be loaded: {e}") from None
    x = ds.x[:n]
    x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    if ds.info.modality == "image":
        return _array_images(x, ds.info.num_levels, f"dataset {name}")
    if ds.info.vocab:
        from genlab.data.plot import decode_text
        return _numbered(decode_text(x, ds.info, n=len(x)))
    raise DesignError(f"dataset {name!r} holds {ds.info.modality} data; a rating test needs images or text "
                      "(export audio as .wav files into a folder)")


def source_stimuli(src) -> list[tuple[str, Any]]:
    """The stimuli of a design source: a genlab dataset or a path (see :func:`list_stimuli`)."""
    if getattr(src, "dataset", None):
        return dataset_stimuli(src.dataset, src.split, src.n)
    return list_stimuli(src.path)


def list_stimuli(path: Path) -> list[tuple[str, Any]]:
    """The stimuli of one source as (stem, file) pairs, sorted by stem.

    ``path`` may be
    - a folder of files (.png/.jpg/.gif/.webp, .wav, .txt): one stimulus per file;
    - one .txt file: texts separated by blank lines, or one per line;
    - a genlab run directory (it has a ``samples/`` folder): the newest ``samples/*.npy`` (image
      samples from ``genlab sample RUN --out RUN/samples/x.npy``) split into images, else the newest
      ``samples/*.txt`` split into texts, else the individual files of ``samples/`` other than the
      sample grids the trainer draws (``step_*.png``, ``cli_*.png``).
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != TEXT_EXT:
            raise DesignError(f"{path}: a single-file source must be a .txt file (texts separated by blank "
                              "lines, or one per line)")
        return _numbered(_split_text(path.read_text(encoding="utf-8")))
    if (path / "samples").is_dir():
        run, sdir = path, path / "samples"
        newest = lambda ext: sorted(sdir.glob(f"*{ext}"), key=lambda f: f.stat().st_mtime)  # noqa: E731
        if newest(".npy"):
            return _npy_images(newest(".npy")[-1], run)
        if newest(".txt"):
            return _numbered(_split_text(newest(".txt")[-1].read_text(encoding="utf-8")))
        files = sorted(f for f in sdir.iterdir() if f.is_file() and f.suffix.lower() in MODALITY_OF
                       and not GRID_RE.match(f.stem))
        if not files:
            raise DesignError(f"run directory {run} has no per-sample files in samples/ (the step_*.png "
                              "pictures are grids); export samples first, e.g. "
                              f"`genlab sample {run} --n 20 --out {sdir}/rate.npy`")
        return [(f.stem, f) for f in files]
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in MODALITY_OF)
    return [(f.stem, f) for f in files]


def _read_bytes(obj) -> bytes:
    if isinstance(obj, Blob):
        return obj.data
    return obj.read_bytes() if isinstance(obj, Path) else obj.encode("utf-8")


def _ext(obj) -> str:
    if isinstance(obj, (Blob, Path)):
        return obj.suffix.lower()
    return TEXT_EXT


# ----------------------------------------------------------------------------- media helpers
def _read_wav(data: bytes) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile
    sr, x = wavfile.read(io.BytesIO(data))
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    elif x.dtype == np.int32:
        x = x.astype(np.float64) / 2147483648.0
    elif x.dtype == np.uint8:
        x = (x.astype(np.float64) - 128.0) / 128.0
    else:
        x = x.astype(np.float64)
    return sr, x


def _write_wav(sr: int, x: np.ndarray) -> bytes:
    from scipy.io import wavfile
    buf = io.BytesIO()
    wavfile.write(buf, sr, (np.clip(x, -1, 1) * 32767).astype(np.int16))
    return buf.getvalue()


def _read_image(data: bytes):
    from PIL import Image
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def _png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def make_anchor(anchor: Anchor, modality: str, data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A degraded copy of a reference stimulus (MUSHRA anchor). Returns (bytes, extension).

    audio ``lowpass``: 8th-order Butterworth low-pass, zero phase (BS.1534-3's anchors are the
    reference low-passed at 3.5 kHz and 7 kHz); image ``blur``: Gaussian blur of ``radius`` pixels;
    image ``noise``: additive Gaussian noise of ``sigma`` (fraction of full scale); text ``shuffle``:
    the words in random order.
    """
    if modality == "audio":
        from scipy.signal import butter, sosfiltfilt
        sr, x = _read_wav(data)
        if anchor.cutoff_hz >= sr / 2:
            raise DesignError(f"anchor {anchor.name}: cutoff_hz {anchor.cutoff_hz} must be below half the "
                              f"sample rate ({sr / 2} Hz)")
        sos = butter(8, anchor.cutoff_hz, btype="low", fs=sr, output="sos")
        padlen = min(3 * (2 * len(sos) + 1), x.shape[0] - 1)
        y = sosfiltfilt(sos, x, axis=0, padlen=max(padlen, 0))
        return _write_wav(sr, y), ".wav"
    if modality == "image":
        from PIL import Image, ImageFilter
        im = _read_image(data)
        if anchor.kind == "blur":
            return _png(im.filter(ImageFilter.GaussianBlur(anchor.radius))), ".png"
        a = np.asarray(im, dtype=np.float64) + rng.normal(0, anchor.sigma * 255, size=np.asarray(im).shape)
        return _png(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))), ".png"
    words = data.decode("utf-8").split()
    rng.shuffle(words)
    return " ".join(words).encode("utf-8"), TEXT_EXT


def make_broken(modality: str, data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """An obviously broken stimulus for trap trials: uniform noise of the same size (image), white
    noise of the same length at moderate level (audio), random letters of the same length (text)."""
    if modality == "image":
        from PIL import Image
        w, h = _read_image(data).size
        return _png(Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))), ".png"
    if modality == "audio":
        sr, x = _read_wav(data)
        return _write_wav(sr, rng.uniform(-0.3, 0.3, size=x.shape)), ".wav"
    n = max(len(data.decode("utf-8")), 20)
    letters = np.array(list("qxzjkvwfgh bcdmnplrst"))
    return "".join(rng.choice(letters, n)).encode("utf-8"), TEXT_EXT


def _check(modality: str, data: bytes, text_max: int, what: str) -> None:
    try:
        if modality == "image":
            _read_image(data)
        elif modality == "audio":
            _read_wav(data)
        else:
            t = data.decode("utf-8")
            if len(t) > text_max:
                raise DesignError(f"{what}: text has {len(t)} characters, more than text_max_chars={text_max}")
    except DesignError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DesignError(f"{what}: cannot read it as {modality}: {e}") from None


# ----------------------------------------------------------------------------- create
class _Writer:
    def __init__(self, out: Path, salt: str):
        self.dir = out / STIMULI
        self.salt = salt
        self.files: dict[str, dict[str, Any]] = {}

    def add(self, data: bytes, ext: str, role: str, source: str, item: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        blind = hashlib.sha256(f"{self.salt}|{role}|{source}|{item}|{sha}".encode()).hexdigest()[:20]
        name = blind + ext
        if name not in self.files:
            (self.dir / name).write_bytes(data)
            self.files[name] = {"sha256": sha, "bytes": len(data), "role": role, "source": source, "item": item}
        return name


def create(design_path: str | Path | Design, out: str | Path, *, overwrite: bool = False) -> Path:
    """Build the test folder ``out`` from a design file (or a parsed :class:`Design`)."""
    design = design_path if isinstance(design_path, Design) else load_design(design_path)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DesignError(f"output folder {out} exists and is not empty; choose a new --out "
                              "(or pass overwrite=True)")
        if (out / "responses.sqlite").exists():
            raise DesignError(f"{out} already holds responses; refusing to overwrite it")
        shutil.rmtree(out)
    (out / STIMULI).mkdir(parents=True)
    rng = np.random.default_rng([design.seed, 1])
    salt = os.urandom(16).hex()
    w = _Writer(out, salt)
    mod = design.modality

    def load(src) -> list[tuple[str, Path | str]]:
        items = source_stimuli(src)
        bad = [str(f) for _s, f in items if (MODALITY_OF.get(_ext(f)) != mod)]
        if bad:
            raise DesignError(f"source {src.name}: {len(bad)} file(s) are not {mod} "
                              f"({', '.join(EXTENSIONS[mod])}), e.g. {bad[0]}")
        if not items:
            raise DesignError(f"source {src.name}: no {mod} files found in {src.path or src.dataset} "
                              f"(or in its samples/ folder)")
        return items

    sources = {s.name: load(s) for s in design.systems}
    if design.reference is not None:
        sources["reference"] = load(design.reference)
    path_anchors = {a.name: load(a) for a in design.anchors if a.path is not None}
    all_lists = list(sources.values()) + list(path_anchors.values())

    needs_match = design.type in ("pairwise", "mushra")
    common = set.intersection(*[{s for s, _ in lst} for lst in all_lists])
    match = design.match
    if match == "auto":
        match = "name" if (needs_match and common) else "order"
    if match == "name":
        if not common:
            raise DesignError("match: name but the sources share no file names; rename the files to match "
                              "(e.g. 0001.wav in every folder) or set match: order")
        keys = sorted(common)
        table = {n: dict(lst) for n, lst in list(sources.items()) + list(path_anchors.items())}
        n_avail = len(keys)
    else:
        n_avail = min(len(lst) for lst in all_lists) if needs_match else None
    # items per source (random subset, fixed by the design seed, when capped)
    def pick(n_have: int) -> list[int]:
        k = n_have if design.items is None else min(design.items, n_have)
        return sorted(rng.choice(n_have, size=k, replace=False).tolist()) if k < n_have else list(range(n_have))

    trials: list[dict[str, Any]] = []

    def tid() -> str:
        return f"t{len(trials):05d}"

    def stim(src_name: str, role: str, item_idx: int | str) -> str:
        if match == "name":
            key = item_idx if isinstance(item_idx, str) else keys[item_idx]
            obj = table[src_name][key]
            item = key
        else:
            item, obj = (sources.get(src_name) or path_anchors[src_name])[item_idx]
        data = _read_bytes(obj)
        _check(mod, data, design.text_max_chars, f"{src_name}/{item}")
        return w.add(data, _ext(obj), role, src_name, item)

    if design.type in ("mos", "hype"):
        names = list(sources)
        for n in names:
            if design.type == "hype" and n == "reference":
                role = "real"
            else:
                role = "reference" if n == "reference" else "system"
            n_have = len(keys) if match == "name" else len(sources[n])
            for i in pick(n_have):
                trials.append({"id": tid(), "kind": design.type, "item": i, "stimuli": [stim(n, role, i)]})
    elif design.type == "pairwise":
        names = list(sources)
        for i in pick(n_avail):
            files = {n: stim(n, "reference" if n == "reference" else "system", i) for n in names}
            for a in range(len(names)):
                for b in range(a + 1, len(names)):
                    trials.append({"id": tid(), "kind": "pairwise", "item": i,
                                   "stimuli": [files[names[a]], files[names[b]]]})
    else:  # mushra
        for i in pick(n_avail):
            ref_data = _read_bytes((table["reference"][keys[i]]) if match == "name" else sources["reference"][i][1])
            ref_item = keys[i] if match == "name" else sources["reference"][i][0]
            _check(mod, ref_data, design.text_max_chars, f"reference/{ref_item}")
            open_ref = w.add(ref_data, _ext(sources["reference"][0][1]), "open_reference", "reference", ref_item)
            conds = [stim(s.name, "system", i) for s in design.systems]
            conds.append(w.add(ref_data, _ext(sources["reference"][0][1]), "hidden_reference", "reference", ref_item))
            for a in design.anchors:
                if a.path is not None:
                    conds.append(stim(a.name, "anchor", i))
                else:
                    data, ext = make_anchor(a, mod, ref_data, rng)
                    conds.append(w.add(data, ext, "anchor", a.name, ref_item))
            trials.append({"id": tid(), "kind": "mushra", "item": i, "reference": open_ref, "stimuli": conds})

    # trap (attention) trials: an obvious good stimulus against an obviously broken one
    traps: list[dict[str, Any]] = []
    if design.attention_checks:
        good_src = "reference" if "reference" in sources else design.systems[0].name
        lst = sources[good_src]
        for j in rng.choice(len(lst), size=min(len(lst), max(design.attention_checks, 4)), replace=False):
            item, obj = lst[int(j)]
            data = _read_bytes(obj)
            broken, ext = make_broken(mod, data, rng)
            bname = w.add(broken, ext, "trap_broken", "trap", item)
            if design.type == "pairwise":
                gname = w.add(data, _ext(obj), "trap_good", good_src, item)
                traps.append({"id": f"x{len(traps):03d}", "kind": "pairwise", "trap": True,
                              "stimuli": [gname, bname], "expect": {"choice_of": 0}})
            elif design.type == "mos":
                traps.append({"id": f"x{len(traps):03d}", "kind": "mos", "trap": True, "stimuli": [bname],
                              "expect": {"rating_max": 2}})
            else:
                traps.append({"id": f"x{len(traps):03d}", "kind": "hype", "trap": True, "stimuli": [bname],
                              "expect": {"judgement": "fake"}})

    if not trials:
        raise DesignError("the design produced no trials; check the sources and 'items'")
    manifest = {
        "format": "genlab-rate/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "design": design.to_json(),
        "match": match,
        "salt": salt,
        "files": w.files,
        "trials": trials,
        "traps": traps,
        "n_trials": trials_per_participant(design.to_json(), len(trials)) + min(design.attention_checks, len(traps)),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return out


# ----------------------------------------------------------------------------- manifest and plans
def trials_per_participant(design: dict[str, Any], n_pool: int) -> int:
    t = design.get("trials_per_participant")
    return n_pool if t is None else min(t, n_pool)


def load_manifest(test_dir: str | Path, verify: bool = False) -> dict[str, Any]:
    """Read ``manifest.json``; with ``verify`` check every stimulus against its SHA-256."""
    test_dir = Path(test_dir)
    p = test_dir / MANIFEST
    if not p.is_file():
        raise DesignError(f"{test_dir} is not a genlab rate test folder (no {MANIFEST}); "
                          "build one with `genlab rate create DESIGN --out DIR`")
    m = json.loads(p.read_text())
    if verify:
        for name, meta in m["files"].items():
            f = test_dir / STIMULI / name
            if not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != meta["sha256"]:
                raise DesignError(f"stimulus {name} is missing or changed since the test was created")
    return m


def participant_plan(manifest: dict[str, Any], number: int, seed: int) -> list[dict[str, Any]]:
    """The trials of participant ``number`` (0, 1, 2, … in order of arrival) with recorded ``seed``.

    Each entry: ``index`` (presentation position), ``base`` (pool trial id), ``kind``, ``trap``,
    ``stimuli`` (file names in display order), ``positions`` (for each slot, the index of that
    stimulus in the pool trial's canonical order) and ``reference`` (MUSHRA open reference).
    """
    design = manifest["design"]
    pool = manifest["trials"]
    n_pool = len(pool)
    k = trials_per_participant(design, n_pool)
    test_seed = int(design.get("seed", 0))
    fixed = np.random.default_rng([test_seed, 2])
    pool_perm = fixed.permutation(n_pool)
    start = (number * k) % n_pool
    chosen = [int(pool_perm[(start + j) % n_pool]) for j in range(k)]
    base_perms = [fixed.permutation(len(t["stimuli"])) for t in pool]
    rng = np.random.default_rng([test_seed, 3, int(seed)])
    order = rng.permutation(chosen).tolist()
    entries = []
    for ti in order:
        t = pool[ti]
        n = len(t["stimuli"])
        perm = np.roll(base_perms[ti], number % n) if n > 1 else np.zeros(1, dtype=int)
        e = {"base": t["id"], "kind": t["kind"], "trap": False, "positions": [int(p) for p in perm],
             "stimuli": [t["stimuli"][int(p)] for p in perm]}
        if "reference" in t:
            e["reference"] = t["reference"]
        entries.append(e)
    traps = manifest.get("traps", [])
    n_traps = min(int(design.get("attention_checks", 0)), len(traps))
    if n_traps:
        picks = rng.choice(len(traps), size=n_traps, replace=False)
        for j in picks:
            t = traps[int(j)]
            n = len(t["stimuli"])
            perm = rng.permutation(n) if n > 1 else np.zeros(1, dtype=int)
            e = {"base": t["id"], "kind": t["kind"], "trap": True, "positions": [int(p) for p in perm],
                 "stimuli": [t["stimuli"][int(p)] for p in perm]}
            pos = int(rng.integers(1, len(entries) + 1)) if entries else 0
            entries.insert(pos, e)
    for i, e in enumerate(entries):
        e["index"] = i
    return entries
