"""Built-in datasets: toys, bishop, digits, mnist5k, shakespeare, names."""
import gzip
import math

import numpy as np
import pytest
import torch

import genlab as gl
from genlab.data import DataError
from genlab.data import bishop, images, text, toy2d


# ------------------------------------------------------------------------------------------ toys

@pytest.mark.parametrize("name", sorted(toy2d.TOYS))
def test_toy_splits_deterministic_and_independent(name):
    a = gl.load_dataset(name, "train", n=2000)
    b = gl.load_dataset(name, "train", n=2000)
    assert torch.equal(a.x, b.x)
    assert a.x.dtype == torch.float32 and a.x.shape == (2000, 2)
    assert len(gl.load_dataset(name, "val")) == 5000 and len(gl.load_dataset(name, "test")) == 5000
    v = gl.load_dataset(name, "val", n=2000)
    t = gl.load_dataset(name, "test", n=2000)
    for p, q in ((a, v), (a, t), (v, t)):
        # independent draws: no shared points and not a permutation of each other
        shared = set(map(tuple, p.x.tolist())) & set(map(tuple, q.x.tolist()))
        assert not shared
        assert not torch.allclose(p.x.sort(0).values, q.x.sort(0).values)


def _grid_mass(log_prob, lo, hi, step):
    # midpoint rule; with a step of at most 0.4 sigma it is exact to ~1e-9 for Gaussian mixtures
    g = torch.arange(lo + step / 2, hi, step, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    mass = 0.0
    for chunk in pts.split(200_000):
        mass += log_prob(chunk).exp().sum().item()
    return mass * step * step


@pytest.mark.parametrize("name,lo,hi,step", [("8gaussians", -6.0, 6.0, 0.05), ("ring8", -1.1, 1.1, 0.004),
                                              ("grid25", -4.5, 4.5, 0.02), ("checkerboard", -4.5, 4.5, 0.01)])
def test_toy_exact_density_integrates_to_one_and_matches_samples(name, lo, hi, step):
    ds = gl.load_dataset(name, "test")
    assert abs(_grid_mass(ds.log_prob, lo, hi, step) - 1.0) < 2e-3
    lp = ds.log_prob(ds.x.double())
    assert torch.isfinite(lp).all()               # every sample lies in the density's support
    # −E log p over the samples estimates the true entropy stored with the dataset
    se = lp.std().item() / math.sqrt(len(lp))
    assert abs(-lp.mean().item() - ds.entropy) < 4 * se + 0.01


def test_checkerboard_mass_is_one_analytically():
    # 8 squares of side 2, density 1/32 each: 8 · 4 / 32 = 1
    ds = gl.load_dataset("checkerboard", "val", n=10)
    centres = torch.tensor([[a + 1.0, b + 1.0] for a in (-4, -2, 0, 2) for b in (-4, -2, 0, 2)])
    on = torch.isfinite(ds.log_prob(centres))
    assert int(on.sum()) == 8
    assert math.isclose(8 * 4 * math.exp(ds.log_prob(centres[on][:1]).item()), 1.0, rel_tol=1e-6)


# ------------------------------------------------------------------------------------------ bishop

def test_bishop_splits_and_values():
    sizes = {s: len(gl.load_dataset("bishop", s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 1000, "val": 1000, "test": 5000}
    ds = gl.load_dataset("bishop", "train")
    assert ds.x.shape == (1000, 1) and ds.y.shape == (1000, 1) and ds.x.dtype == ds.y.dtype == torch.float32
    assert ds.info.cond == "continuous" and ds.info.cond_shape == (1,) and ds.info.shape == (1,)
    x, t = ds.x.double(), ds.y.double()
    assert (x > 0).all() and (x < 1).all()
    resid = t - (x + 0.3 * torch.sin(2 * math.pi * x))
    assert resid.abs().max() < 0.1 + 1e-6 and resid.abs().max() > 0.09   # U(−0.1, 0.1) noise
    assert torch.equal(ds.x, gl.load_dataset("bishop", "train").x)
    assert len(gl.load_dataset("bishop", "train", n=300)) == 300
    assert not torch.equal(ds.x[:1000], gl.load_dataset("bishop", "test").x[:1000])


def test_bishop_oracle_entropy_and_density():
    ds = gl.load_dataset("bishop", "test")
    assert abs(ds.entropy - (-1.282)) < 2e-3                      # ANCHORS.md
    lp = ds.extras["cond_log_prob"](ds.x, ds.y)
    assert torch.isfinite(lp).all()
    se = lp.std().item() / math.sqrt(len(lp))
    assert abs(-lp.mean().item() - ds.entropy) < 4 * se
    # for fixed t the oracle p(x | t) integrates to one over x, and vanishes off the support
    xs = ((torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000)[:, None]
    for t0 in (0.1, 0.5, 0.62, 0.9):
        p = ds.extras["cond_log_prob"](xs, torch.full_like(xs, t0)).exp()
        assert abs(p.sum().item() / 100_000 - 1.0) < 2e-3
    far = ds.extras["cond_log_prob"](torch.tensor([[0.0], [0.9]]), torch.tensor([[0.5], [0.1]]))
    assert torch.isinf(far).all()


# ------------------------------------------------------------------------------------------ digits

def test_digits_row_order_split_matches_sklearn():
    from sklearn.datasets import load_digits
    d = load_digits()
    bounds = {"train": (0, 1000), "val": (1000, 1350), "test": (1350, 1797)}
    for split, (lo, hi) in bounds.items():
        ds = gl.load_dataset("digits", split)
        assert ds.x.dtype == torch.int64 and ds.x.shape == (hi - lo, 1, 8, 8)
        assert ds.info.num_levels == 17 and ds.info.modality == "image" and ds.info.num_classes == 10
        assert np.array_equal(ds.x.reshape(hi - lo, 64).numpy(), d.data[lo:hi].astype(np.int64))
        assert np.array_equal(ds.y.numpy(), d.target[lo:hi])
        assert int(ds.x.min()) >= 0 and int(ds.x.max()) == 16


# ------------------------------------------------------------------------------------------ mnist5k

def test_mnist5k_balanced_disjoint_split_and_pixels():
    with gzip.open(images.mnist5k_path(), "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    rows = {}
    for split, n, per in (("train", 4000, 400), ("val", 500, 50), ("test", 500, 50)):
        ds = gl.load_dataset("mnist5k", split)
        assert ds.x.shape == (n, 1, 28, 28) and ds.x.dtype == torch.int64 and ds.info.num_levels == 256
        assert ds.y.bincount(minlength=10).tolist() == [per] * 10
        assert ds.y[:30].tolist() == list(range(10)) * 3                    # round-robin: prefixes are balanced
        r = np.asarray(ds.extras["rows"])
        assert np.array_equal(ds.x.reshape(n, 784).numpy(), raw[r, :784])
        assert np.array_equal(ds.y.numpy(), raw[r, 784])
        rows[split] = set(r.tolist())
    assert not (rows["train"] & rows["val"]) and not (rows["train"] & rows["test"]) and not (rows["val"] & rows["test"])
    assert len(rows["train"] | rows["val"] | rows["test"]) == 5000
    b = gl.load_dataset("mnist5k", "val", binarize=True)
    assert b.info.num_levels == 2
    assert torch.equal(b.x, (gl.load_dataset("mnist5k", "val").x >= 128).long())
    with pytest.raises(DataError, match="threshold"):
        gl.load_dataset("mnist5k", "val", binarize=True, threshold=0)


# ------------------------------------------------------------------------------------------ text

def test_convert_play_format():
    md = ("# A Play\n\n## ACT I\n\n### SCENE I. A room.\n\n_Enter ALICE and BOB, with\nothers_\n\n"
          "**ALICE**  \nGood morrow, sir\\--how now?  \n_\\[Aside]_  \nA second line. _\\[To BOB]_  \n\n"
          "And a new verse paragraph.\n\n_Exit_\n\n**BOB**  \n[Within]_  \nAnon!\n\n### SCENE II. Outside.\n\n"
          "A song without a singer.\n\n**FIRST LORD**  \nFarewell.\n")
    assert text.convert_play(md) == ("ALICE:\nGood morrow, sir--how now?\nA second line.\nAnd a new verse paragraph.\n\n"
                                     "BOB:\nAnon!\n\nFIRST LORD:\nFarewell.\n\n")


def test_shakespeare_corpus_split_and_windows():
    tr = gl.load_dataset("shakespeare", "train")
    va = gl.load_dataset("shakespeare", "val")
    te = gl.load_dataset("shakespeare", "test")
    vocab = tr.extras["vocab"]
    corpus = text.shakespeare_text()
    assert len(corpus) == 1_115_394
    st, sv = tr.extras["stream"], va.extras["stream"]
    assert len(st) == int(0.9 * 1_115_394) and len(st) + len(sv) == 1_115_394
    assert vocab.decode(torch.cat([st, sv])) == corpus
    assert torch.equal(te.extras["stream"], sv)                       # test = val, documented
    assert tr.info.modality == "text" and tr.info.num_levels == len(vocab) == len(tr.info.vocab) == 70
    assert tr.x.shape == (len(st) - 64, 65) and tr.x.dtype == torch.int64
    assert tr.x.data_ptr() == st.data_ptr() and tr.x.stride() == (1, 1)   # a view, not a copy
    assert torch.equal(tr.x[12345], st[12345:12345 + 65])
    big = gl.load_dataset("shakespeare", "val", block_size=256)
    assert big.x.shape == (len(sv) - 256, 257)
    # NAME: format: speeches separated by blank lines, each opening with an upper-case NAME: line
    assert corpus.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")
    speeches = corpus.split("\n\n")[:-1]
    assert len(speeches) > 5_000
    for sp in speeches:
        head, *lines = sp.split("\n")
        assert head.endswith(":") and head[:-1].strip() and lines, sp[:80]
        assert head.upper() == head or head in ("Prologue:", "Epilogue:") or head[0].isupper()
    assert not set("*_[]\\#") & set(corpus)                           # no Markdown left


def test_vocab_round_trip_and_errors():
    v = text.Vocab.from_text("hello world\n")
    s = "hello\nworld low"
    ids = v.encode(s)
    assert ids.dtype == torch.int64 and v.decode(ids) == s and v.decode(ids.numpy()) == s
    assert v.decode(v.encode("hello.world"[:5])) == "hello"
    with pytest.raises(DataError, match="not in the vocabulary: 'xz'"):
        v.encode("xyz"[::2] + "o")
    with pytest.raises(DataError, match="token ids"):
        v.decode([0, 99])
    assert v.decode(v.encode("lol wow"), stop=" ") == "lol"


def test_names_dataset():
    parts = {s: gl.load_dataset("names", s) for s in ("train", "val", "test")}
    total = len(text.name_list("all"))
    n = {s: len(d) for s, d in parts.items()}
    assert n["train"] == int(0.8 * total) and n["val"] == int(0.1 * total) and sum(n.values()) == total
    sets = {s: set(d.extras["names"]) for s, d in parts.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    d = parts["val"]
    v = d.extras["vocab"]
    assert d.info.vocab[0] == "." and d.info.num_levels == 27 and d.x.shape[1] == 14 and d.x.dtype == torch.int64
    for row, name in zip(d.x[:200], d.extras["names"][:200]):
        assert v.decode(row, stop=".") == name
        assert v.decode(row) == name + "." * (14 - len(name))           # end token, then padding
    assert "smith" in text.name_list("last") and "mary" in text.name_list("first")
    assert torch.equal(gl.load_dataset("names", "val").x, d.x)


def test_unknown_dataset_suggests():
    with pytest.raises(DataError, match="Did you mean 'mnist5k'"):
        gl.load_dataset("mnist5")
    with pytest.raises(DataError, match="split must be"):
        gl.load_dataset("digits", "training")
    with pytest.raises(DataError, match="unknown option.*'blocksize'.*Did you mean 'block_size'"):
        gl.load_dataset("shakespeare", blocksize=32)
    with pytest.raises(DataError, match="unknown option"):
        gl.load_dataset("digits", binarize=True)


def test_every_toy_prefix_is_a_fair_sample():
    """Any prefix of a split must look like the whole split (2spirals used to list its arms in order)."""
    from genlab.metrics import energy_distance
    for name in ("2spirals", "pinwheel", "rings", "moons", "circles"):
        x = gl.load_dataset(name, split="val").x
        head, tail = x[:1000], x[-1000:]
        # two fair samples of 1000 points give about 0.06; 2spirals' arms in order gave 0.83
        assert energy_distance(head, tail) < 0.2, name
    x = gl.load_dataset("2spirals", split="val").x[:1000]  # point-symmetric: a prefix holds both arms
    assert energy_distance(x, -x) < 0.2
