"""genlab — a laboratory for deep generative models.

    import genlab as gl
    train = gl.load_dataset("moons", split="train")
    model = gl.create("realnvp", data=train)
    run = gl.train(model, train, steps=2000, seed=0, out="runs/realnvp-moons")
    x = model.sample(1000); lp = model.log_prob(x)
    scores = gl.evaluate(model, gl.load_dataset("moons", split="test"), metrics=["nll", "mmd"])

The public names are imported lazily (on first use), so ``import genlab`` is cheap and tools that
need no torch (``genlab rate serve``, ``genlab --help``) start fast.
"""
import importlib

__version__ = "0.1.0"

_LAZY = {
    "load_dataset": ".data", "list_datasets": ".data", "DataInfo": ".data", "Dataset": ".data",
    "create": ".models", "list_models": ".models", "load": ".models",
    "train": ".engine",
}


def list_metrics():
    """Registered metrics with a one-line description each."""
    from .metrics import list_metrics as _lm
    return _lm()


def evaluate(model, data, metrics=None, **kwargs):
    """Evaluate ``model`` on ``data`` (usually the test split); returns a record with its protocol."""
    from .evaluation import evaluate as _ev
    return _ev(model, data, metrics=metrics, **kwargs)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in ("metrics", "data", "models", "engine", "nn", "sampling"):
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["load_dataset", "list_datasets", "list_models", "list_metrics", "create", "train", "evaluate",
           "load", "DataInfo", "Dataset", "__version__"]
