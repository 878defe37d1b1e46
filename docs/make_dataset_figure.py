"""Draw docs/img/datasets.png: the 10 two-dimensional toys, digits and mnist5k (training splits).

Run from the repository root:  python docs/make_dataset_figure.py
"""
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import genlab as gl
from genlab.data import toy2d
from genlab.data.plot import plot_samples

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "img", "datasets.png")


def main(path: str = OUT) -> str:
    names = sorted(toy2d.TOYS) + ["digits", "mnist5k"]
    fig = Figure(figsize=(10, 7.6))
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(3, 4, i + 1)
        ds = gl.load_dataset(name, "train")
        if ds.info.modality == "image":
            plot_samples(ds.x[:64], ds.info, ax=ax, nrow=8)
        else:
            plot_samples(ds.x[:2000], ds.info, ax=ax, s=1.5, alpha=0.4, color="C0")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(name, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=80)
    return path


if __name__ == "__main__":
    print(main())
