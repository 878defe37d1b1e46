"""Sample pictures: image_grid values, save_samples PNGs for every modality."""
import numpy as np
import pytest
import torch
from PIL import Image

import genlab as gl
from genlab.data import DataError, DataInfo
from genlab.data.plot import decode_text, image_grid, save_samples


def test_image_grid_places_scaled_tiles():
    ds = gl.load_dataset("digits", "val")
    x = ds.x[:5]
    g = image_grid(x, ds.info, nrow=3, pad=1)
    assert g.shape == (2 * 9 + 1, 3 * 9 + 1, 3) and g.min() >= 0 and g.max() <= 1
    for i in range(5):
        r, q = divmod(i, 3)
        tile = g[1 + 9 * r: 9 + 9 * r, 1 + 9 * q: 9 + 9 * q]
        assert np.allclose(tile[..., 0], x[i, 0].numpy() / 16) and np.allclose(tile[..., 0], tile[..., 2])
    assert np.all(g[:, 0] == 1) and np.all(g[2 * 9 + 1 - 1 - 8:, 2 * 9 + 1:] == 1)   # padding and the empty slot
    cont = image_grid(torch.full((1, 3, 2, 2), 4.0), DataInfo(shape=(3, 2, 2), modality="image"), value_range=(0, 8))
    assert np.allclose(cont[1:3, 1:3], 0.5)
    with pytest.raises(DataError, match="1 \\(grey\\) or 3"):
        image_grid(torch.zeros(2, 2, 4, 4), DataInfo(shape=(2, 4, 4), modality="image"))


def test_decode_text():
    ds = gl.load_dataset("names", "test")
    assert decode_text(ds.x[:3], ds.info, stop=".") == ds.extras["names"][:3]


@pytest.mark.parametrize("name", ["moons", "bishop", "digits", "mnist5k", "names"])
def test_save_samples_writes_png(tmp_path, name):
    ds = gl.load_dataset(name, "val")
    path = tmp_path / f"{name}.png"
    cond = ds.y[:300] if ds.info.cond == "continuous" else None
    assert save_samples(ds.x[:300], ds.info, path, cond=cond, title=name) == str(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= 200
        a = np.asarray(im.convert("L"))
    assert a.min() < 128 and a.max() > 200                 # something was drawn on a light background


def test_labelled_vectors_and_image_labels_are_accepted(tmp_path):
    # the engine passes class labels as cond=; they colour a scatter and are ignored by image grids
    x = torch.randn(100, 2)
    info = DataInfo(shape=(2,), cond="label", num_classes=3)
    from matplotlib.figure import Figure
    ax = Figure().add_subplot()
    from genlab.data.plot import plot_samples
    plot_samples(x, info, ax=ax, cond=torch.arange(100) % 3)
    offsets = ax.collections[0].get_offsets()
    assert np.allclose(np.asarray(offsets), x.numpy()) and len(set(ax.collections[0].get_array().tolist())) == 3
    ds = gl.load_dataset("digits", "test")
    save_samples(ds.x[:20], ds.info, tmp_path / "d.png", cond=ds.y[:20])
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_save_samples_sequence(tmp_path):
    info = DataInfo(shape=(30,), modality="sequence")
    save_samples(torch.sin(torch.linspace(0, 6, 30)).repeat(3, 1), info, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
