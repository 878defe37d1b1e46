"""User data loaders on small files the tests write, and every bad-input case."""
import gzip
import hashlib
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import genlab as gl
from genlab.data import DataError
from genlab.data import user


def _rows(ds):
    return set(map(tuple, ds.x.reshape(len(ds), -1).tolist()))


# ------------------------------------------------------------------------------------------ arrays

def test_from_array_seeded_split_disjoint_and_complete():
    a = np.arange(300, dtype=np.float64).reshape(100, 3)
    parts = {s: gl.load_dataset(a, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [80, 10, 10]
    sets = {s: _rows(d) for s, d in parts.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    assert sets["train"] | sets["val"] | sets["test"] == set(map(tuple, a.tolist()))
    assert parts["train"].x.dtype == torch.float32 and parts["train"].info.kind == "continuous"
    assert torch.equal(gl.load_dataset(a, "val").x, parts["val"].x)              # seeded
    assert not torch.equal(gl.load_dataset(a, "val", seed=1).x, parts["val"].x)


def test_from_array_discrete_labels_and_layouts():
    x = torch.randint(0, 4, (50, 6))
    y = torch.arange(50) % 5
    ds = gl.load_dataset(x, "train", num_levels=4, labels=y)
    assert ds.info.kind == "discrete" and ds.info.num_levels == 4 and ds.x.dtype == torch.int64
    assert ds.info.cond == "label" and ds.info.num_classes == 5
    idx = user.split_indices(50, "train")
    assert torch.equal(ds.x, x[idx]) and torch.equal(ds.y, y[idx])
    cont = gl.load_dataset(np.random.rand(40, 2), "train", labels=np.random.rand(40))
    assert cont.info.cond == "continuous" and cont.y.shape == (32, 1)
    img = gl.load_dataset(np.zeros((20, 7, 5, 3), np.uint8), "test", num_levels=256)   # channels-last
    assert img.info.shape == (3, 7, 5) and img.info.modality == "image"
    grey = gl.load_dataset(np.zeros((20, 7, 5)), "test")
    assert grey.info.shape == (1, 7, 5)
    assert gl.load_dataset(np.zeros(30), "train").info.shape == (1,)
    seq = gl.load_dataset(np.zeros((20, 9)), "train", modality="sequence")
    assert seq.info.modality == "sequence" and seq.info.shape == (9,)


@pytest.mark.parametrize("arr,kw,msg", [
    (np.array([[0, 1], [2, 5]] * 10), {"num_levels": 4}, "wrong num_levels=4.*0..3"),
    (np.array([[-1, 1]] * 10), {"num_levels": 4}, "wrong num_levels"),
    (np.array([[0.5, 1.0]] * 10), {"num_levels": 4}, "fractional"),
    (np.array([[0, 1]] * 10), {"num_levels": 1}, "at least 2 levels"),
    (np.array([[np.nan, 1.0]] + [[0.0, 1.0]] * 9), {}, "NaN"),
    (np.array([[np.inf, 1.0]] * 10), {}, "NaN or infinite"),
    (np.array([["a", "b"]] * 10), {}, "numeric"),
    (np.zeros((0, 3)), {}, "no examples"),
    (np.zeros((10, 2, 2, 2, 2)), {}, "pass modality"),
    (np.zeros((10, 2)), {"labels": np.zeros(9, np.int64)}, "labels have shape"),
    (np.zeros((10, 2)), {"labels": np.array([0, 1] * 5), "num_classes": 1}, "out of range"),
    (np.zeros((10, 2)), {"split_fractions": (0.5, 0.6, 0.1)}, "split_fractions"),
    (np.zeros((10, 2)), {"modality": "audio"}, "modality must be"),
])
def test_from_array_bad_input(arr, kw, msg):
    with pytest.raises(DataError, match=msg):
        gl.load_dataset(arr, "train", **kw)


def test_not_an_array_and_missing_paths(tmp_path):
    with pytest.raises(DataError, match="numpy array or torch tensor"):
        user.from_array({"x": 1})
    with pytest.raises(DataError, match="unknown dataset .*no such file"):
        gl.load_dataset(str(tmp_path / "nothing.npy"))
    with pytest.raises(DataError, match="no such file"):
        user.from_path(tmp_path / "nothing.npy")


# ------------------------------------------------------------------------------------------ files

def test_npy_npz_csv(tmp_path):
    a = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.save(tmp_path / "a.npy", a)
    ds = gl.load_dataset(str(tmp_path / "a.npy"), "train")
    assert torch.equal(ds.x, torch.from_numpy(a[user.split_indices(20, "train")]))
    np.savez(tmp_path / "b.npz", x=a.astype(np.int64) % 7, y=np.arange(20) % 3)
    dz = gl.load_dataset(str(tmp_path / "b.npz"), "val", num_levels=7)
    idx = user.split_indices(20, "val")
    assert torch.equal(dz.x, torch.from_numpy(a[idx].astype(np.int64) % 7)) and dz.y.tolist() == (idx % 3).tolist()
    np.savez(tmp_path / "bad.npz", a=a, b=a)
    with pytest.raises(DataError, match="needs a key 'x'"):
        gl.load_dataset(str(tmp_path / "bad.npz"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy.*object arrays are refused"):
        gl.load_dataset(str(tmp_path / "obj.npy"))
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="corrupt.npy"):
        gl.load_dataset(str(tmp_path / "corrupt.npy"))

    lines = ["f1,f2,label"] + [f"{i}.5,{-i},{i % 2}" for i in range(20)]
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    dc = gl.load_dataset(str(tmp_path / "c.csv"), "test", label_column="label")
    assert dc.source == {"name": str(tmp_path / "c.csv"), "split": "test", "label_column": "label"}
    idx = user.split_indices(20, "test")
    assert dc.info.shape == (2,) and dc.info.cond == "label" and dc.info.num_classes == 2
    assert dc.x[:, 0].tolist() == [i + 0.5 for i in idx] and dc.y.tolist() == [i % 2 for i in idx]
    nolab = gl.load_dataset(str(tmp_path / "c.csv"), "test")
    assert nolab.info.shape == (3,) and nolab.y is None
    (tmp_path / "d.csv").write_text("1,2\n3,x\n")
    with pytest.raises(DataError, match=r"d.csv: non-numeric value 'x' in row 2, column 2"):
        gl.load_dataset(str(tmp_path / "d.csv"))
    (tmp_path / "e.csv").write_text("1,2\n3\n")
    with pytest.raises(DataError, match="e.csv: row 2 has 1 columns"):
        gl.load_dataset(str(tmp_path / "e.csv"))
    with pytest.raises(DataError, match="no column named 'lab'"):
        gl.load_dataset(str(tmp_path / "c.csv"), label_column="lab")


def test_text_file(tmp_path):
    txt = "to be or not to be, that is the question\n" * 20
    (tmp_path / "t.txt").write_text(txt)
    tr = gl.load_dataset(str(tmp_path / "t.txt"), "train", block_size=8)
    va = gl.load_dataset(str(tmp_path / "t.txt"), "val", block_size=8)
    v = tr.extras["vocab"]
    assert v.decode(torch.cat([tr.extras["stream"], va.extras["stream"]])) == txt
    assert len(tr.extras["stream"]) == int(0.9 * len(txt)) and tr.x.shape[1] == 9
    assert tr.info.modality == "text" and tr.info.num_levels == len(set(txt))
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x81abc")
    with pytest.raises(DataError, match="bin.txt"):
        gl.load_dataset(str(tmp_path / "bin.txt"))
    with pytest.raises(DataError, match="fewer than block_size"):
        gl.load_dataset(str(tmp_path / "t.txt"), "val", block_size=500)


# ------------------------------------------------------------------------------------------ images

def _png(path, arr):
    from PIL import Image
    Image.fromarray(arr).save(path)


def test_image_folder_classes_grey_rgb_resize(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for k, cls in enumerate(("cat", "dog")):
        (tmp_path / "grey" / cls).mkdir(parents=True)
        for i in range(10):
            a = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            _png(tmp_path / "grey" / cls / f"{i:02d}.png", a)
            expected[a.tobytes()] = k
    parts = [gl.load_dataset(str(tmp_path / "grey"), s) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [16, 2, 2]
    ds = parts[0]
    assert ds.info.shape == (1, 6, 5) and ds.info.num_levels == 256 and ds.info.num_classes == 2
    assert ds.extras["classes"] == ["cat", "dog"]
    for img, lab in zip(ds.x, ds.y):                    # pixels and labels survive exactly
        assert expected[img[0].numpy().astype(np.uint8).tobytes()] == int(lab)

    (tmp_path / "rgb").mkdir()
    for i in range(10):
        a = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        _png(tmp_path / "rgb" / f"{i}.png", a)
    rgb = gl.load_dataset(str(tmp_path / "rgb"), "train", size=8)
    assert rgb.info.shape == (3, 8, 8) and rgb.y is None and rgb.info.cond is None
    assert gl.load_dataset(str(tmp_path / "rgb"), "train", mode="L").info.shape == (1, 4, 4)

    _png(tmp_path / "rgb" / "big.png", np.zeros((9, 9, 3), np.uint8))
    with pytest.raises(DataError, match="big.png has size .*pass size="):
        gl.load_dataset(str(tmp_path / "rgb"))
    (tmp_path / "rgb" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        gl.load_dataset(str(tmp_path / "rgb"), size=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        gl.load_dataset(str(tmp_path / "empty"))


# ------------------------------------------------------------------------------------------ IDX

def _write_idx(path, arr, gz=False):
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    body = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + \
        arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(body)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder(tmp_path, gz):
    rng = np.random.default_rng(1)
    xtr = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    ytr = (np.arange(40) % 10).astype(np.uint8)
    xte = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    yte = np.arange(10, dtype=np.uint8)
    sfx = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", xtr, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", ytr, gz)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", xte, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", yte, gz)
    te = gl.load_dataset(str(tmp_path), "test")
    assert te.info.shape == (1, 28, 28) and te.info.num_levels == 256 and te.info.num_classes == 10
    assert np.array_equal(te.x[:, 0].numpy(), xte) and np.array_equal(te.y.numpy(), yte)
    tr, va = gl.load_dataset(str(tmp_path), "train"), gl.load_dataset(str(tmp_path), "val")
    assert len(tr) == 36 and len(va) == 4 and not (_rows(tr) & _rows(va))
    assert _rows(tr) | _rows(va) == set(map(tuple, xtr.reshape(40, -1).astype(np.int64).tolist()))
    b = gl.load_dataset(str(tmp_path), "test", binarize=True)
    assert b.info.num_levels == 2 and np.array_equal(b.x[:, 0].numpy(), (xte >= 128).astype(np.int64))
    assert np.array_equal(user.read_idx(str(tmp_path / f"t10k-images-idx3-ubyte{sfx}")), xte)


def test_idx_corrupt_and_missing(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(DataError, match="missing file .*train-labels-idx1-ubyte"):
        gl.load_dataset(str(tmp_path), "train")
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:-10])            # truncated
    with pytest.raises(DataError, match="corrupt IDX file .*train-images-idx3-ubyte.*bytes"):
        gl.load_dataset(str(tmp_path), "train")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04" + data[4:])
    with pytest.raises(DataError, match="bad magic"):
        gl.load_dataset(str(tmp_path), "train")
    with pytest.raises(DataError, match="missing file .*t10k-images"):
        gl.load_dataset(str(tmp_path), "test")


# ------------------------------------------------------------------------------------------ CIFAR

def _cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    with open(path, "wb") as fh:   # bytes keys, protocol 2: the layout of the real python batches
        pickle.dump({b"batch_label": b"test", b"labels": labels, b"data": data, b"filenames": [b"a.png"] * n}, fh,
                    protocol=2)
    return data, labels


def test_cifar_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    d1, l1 = _cifar_batch(root / "data_batch_1", 12, 0)
    d2, l2 = _cifar_batch(root / "data_batch_2", 8, 1)
    dt, lt = _cifar_batch(root / "test_batch", 5, 2)
    te = gl.load_dataset(str(tmp_path), "test")
    assert te.info.shape == (3, 32, 32) and te.info.num_levels == 256 and te.extras["classes"][0] == "airplane"
    assert np.array_equal(te.x.numpy(), dt.reshape(5, 3, 32, 32)) and te.y.tolist() == lt
    assert np.array_equal(te.x[0, 1].numpy().reshape(-1), dt[0, 1024:2048])      # channel-major layout
    tr, va = gl.load_dataset(str(root), "train"), gl.load_dataset(str(root), "val")
    assert len(tr) == 18 and len(va) == 2
    assert _rows(tr) | _rows(va) == set(map(tuple, np.concatenate([d1, d2]).astype(np.int64).tolist()))
    # protocol 5 (numpy's _frombuffer path) works too
    with open(root / "test_batch", "wb") as fh:
        pickle.dump({"data": dt, "labels": lt}, fh, protocol=5)
    assert np.array_equal(gl.load_dataset(str(root), "test").x.numpy(), dt.reshape(5, 3, 32, 32))


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_cifar_refuses_malicious_pickle(tmp_path):
    root = tmp_path / "cifar"
    root.mkdir()
    marker = tmp_path / "pwned"
    with open(root / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Evil(f"touch {marker}"), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DataError, match=r"refusing to load .*test_batch.*(posix|os|nt)\.system"):
        gl.load_dataset(str(root), "test")
    assert not marker.exists()
    with open(root / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": eval}, fh, protocol=4)
    with pytest.raises(DataError, match="builtins.eval"):
        gl.load_dataset(str(root), "test")
    (root / "test_batch").write_bytes(b"\x80\x02}q\x00(")                    # truncated pickle
    with pytest.raises(DataError, match="corrupt or unreadable pickle .*test_batch"):
        gl.load_dataset(str(root), "test")
    with open(root / "test_batch", "wb") as fh:
        pickle.dump({b"data": np.zeros((1, 100), np.uint8), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DataError, match="corrupt CIFAR batch .*3072"):
        gl.load_dataset(str(root), "test")


# ------------------------------------------------------------------------------------------ checksums

def test_verify_checksum(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"genlab" * 1000)
    sha, md5 = hashlib.sha256(p.read_bytes()).hexdigest(), hashlib.md5(p.read_bytes()).hexdigest()
    user.verify_checksum(str(p), sha256=sha)
    user.verify_checksum(str(p), md5=md5.upper())
    with pytest.raises(DataError, match="checksum mismatch .*f.bin"):
        user.verify_checksum(str(p), sha256="0" * 64)
    with pytest.raises(DataError, match="no checksum"):
        user.verify_checksum(str(p))
    with pytest.raises(DataError, match="missing file"):
        user.verify_checksum(str(tmp_path / "nope"), sha256=sha)
    with pytest.raises(DataError, match="unknown download"):
        user.download("imagenet", str(tmp_path))
    with pytest.raises(DataError, match="ships no checksum"):          # refuses before any network access
        user.download("cifar10", str(tmp_path))



def test_download_fetches_verifies_and_loads_local_files(tmp_path, monkeypatch):
    """``download=`` runs the real fetch path (urllib, a .part file renamed on success, checksum, load) on
    file:// URLs of files the test writes; without ``download`` nothing is fetched, and a mirror whose file
    does not match its checksum gives an error naming the file."""
    import urllib.request
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    rng = np.random.default_rng(2)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": (np.arange(20) % 10).astype(np.uint8),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": np.arange(5, dtype=np.uint8)}
    res = []
    for name, arr in arrays.items():
        _write_idx(mirror / name, arr, gz=True)
        res.append(((mirror / name).as_uri(), {"sha256": hashlib.sha256((mirror / name).read_bytes()).hexdigest()}))
    monkeypatch.setitem(user.RESOURCES, "mnist", res)
    root = tmp_path / "mnist"
    root.mkdir()
    (tmp_path / "other").mkdir()
    calls = []
    real = urllib.request.urlretrieve
    monkeypatch.setattr(urllib.request, "urlretrieve", lambda url, dest: calls.append(url) or real(url, dest))
    with pytest.raises(DataError):                                      # default: an empty folder, no fetch
        gl.load_dataset(str(root), "test")
    assert calls == []
    te = gl.load_dataset(str(root), "test", download=True)              # "mnist" from the folder's name
    assert len(calls) == 4 and sorted(os.listdir(root)) == sorted(arrays)
    assert np.array_equal(te.x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte.gz"])
    assert np.array_equal(te.y.numpy(), arrays["t10k-labels-idx1-ubyte.gz"])
    gl.load_dataset(str(root), "test", download=True)                   # present and verified: not fetched again
    assert len(calls) == 4
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the file")
    with pytest.raises(DataError, match="checksum mismatch .*t10k-labels-idx1-ubyte.gz"):
        gl.load_dataset(str(tmp_path / "other"), "test", download="mnist")


# ------------------------------------------------------------------------------------------ properties

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(n=st.integers(10, 500), seed=st.integers(0, 2**31 - 1), a=st.floats(0.2, 0.8), b=st.floats(0.1, 0.15))
def test_split_indices_partition(n, seed, a, b):
    fr = (a, b, 1 - a - b)
    parts = [user.split_indices(n, s, fr, seed) for s in ("train", "val", "test")]
    allidx = np.concatenate(parts)
    assert len(allidx) == n and len(np.unique(allidx)) == n          # disjoint and complete
    assert len(parts[0]) == int(a * n) and len(parts[1]) == int(b * n)


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_vocab_round_trip_any_text(s):
    from genlab.data.text import Vocab
    v = Vocab.from_text(s)
    assert v.decode(v.encode(s)) == s and int(v.encode(s).max()) < len(v)
