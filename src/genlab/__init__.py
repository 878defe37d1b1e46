"""genlab — a laboratory for deep generative models.

    import genlab as gl
    train = gl.load_dataset("moons", split="train")
    model = gl.create("realnvp", data=train)
    run = gl.train(model, train, steps=2000, seed=0, out="runs/realnvp-moons")
    x = model.sample(1000); lp = model.log_prob(x)
    scores = gl.evaluate(model, gl.load_dataset("moons", split="test"), metrics=["nll", "mmd"])
"""
__version__ = "0.1.0"

from .data import DataInfo, Dataset, list_datasets, load_dataset  # noqa: E402
from .models import create, list_models, load  # noqa: E402
from .engine import train  # noqa: E402


def list_metrics():
    from .metrics import list_metrics as _lm
    return _lm()


def evaluate(model, data, metrics=None, **kwargs):
    """Evaluate ``model`` on ``data`` (usually the test split); returns a record with its protocol."""
    from .evaluation import evaluate as _ev
    return _ev(model, data, metrics=metrics, **kwargs)


def __getattr__(name):
    if name == "metrics":
        import importlib
        return importlib.import_module(".metrics", __name__)
    raise AttributeError(name)


__all__ = ["load_dataset", "list_datasets", "list_models", "list_metrics", "create", "train", "evaluate",
           "load", "DataInfo", "Dataset", "__version__"]
