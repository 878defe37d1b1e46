"""Model registry: ``gl.create(name, data=..., **overrides)`` and ``gl.list_models()``."""
from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from typing import Any

from ..data.base import DataInfo, Dataset
from .base import GenerativeModel, ModelError

_MODELS: dict[str, type[GenerativeModel]] = {}


def register(name: str):
    """Class decorator: make a GenerativeModel subclass available as ``gl.create(name)``."""
    def deco(cls):
        if name in _MODELS and _MODELS[name] is not cls:
            raise RuntimeError(f"model {name!r} registered twice")
        cls.name = name
        _MODELS[name] = cls
        return cls
    return deco


def _ensure_loaded():
    from . import _families  # noqa: F401  (imports every family module, which registers itself)


def model_class(name: str) -> type[GenerativeModel]:
    _ensure_loaded()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ModelError(f"unknown model {name!r}.{hint} Known: {', '.join(k for k in sorted(_MODELS) if not k.startswith('_'))}")
    return _MODELS[name]


def list_models() -> dict[str, str]:
    """Registered model names with the first line of each family's docstring and its likelihood kind."""
    _ensure_loaded()
    out = {}
    for k, cls in sorted(_MODELS.items()):
        if k.startswith("_"):  # test-only models
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        out[k] = f"{doc[0] if doc else cls.__name__} [log_prob: {cls.likelihood}]"
    return out


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turn a CLI string (``"128"``, ``"true"``, ``"64,64"``) into the field's type."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing), {})  # dataclass annotations under `from __future__ import annotations`
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, key)
            except (ValueError, TypeError) as e:
                errors.append(str(e))
        raise ValueError(f"{key}={value!r}: {'; '.join(errors)}")
    if not isinstance(value, str):
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if origin in (tuple, list) and isinstance(value, (list, tuple)):
            inner = args[0] if args else str
            return (tuple if origin is tuple else list)(coerce(v, inner, key) for v in value)
        return value
    if annotation is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}={value!r}: expected true or false")
    if annotation in (int, float, str):
        try:
            return annotation(value)
        except ValueError:
            raise ValueError(f"{key}={value!r}: expected {annotation.__name__}") from None
    if origin in (tuple, list):
        inner = args[0] if args else str
        items = [v for v in value.strip("()[]").split(",") if v.strip()]
        return (tuple if origin is tuple else list)(coerce(v.strip(), inner, key) for v in items)
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{key}={value!r}: expected one of {', '.join(map(str, args))}")
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def build_config(cls: type[GenerativeModel], info: DataInfo, overrides: dict[str, Any]):
    cfg = cls.default_config(info)
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, list(fields), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ModelError(f"unknown option(s) for {cls.name}: {', '.join(hints)}. "
                         f"Options: {', '.join(sorted(fields))}")
    values = {}
    for k, v in overrides.items():
        try:
            values[k] = coerce(v, fields[k].type, k)
        except ValueError as e:
            raise ModelError(f"{cls.name}: {e}") from None
    return dataclasses.replace(cfg, **values)


def create(name: str, data: Dataset | DataInfo | None = None, **overrides) -> GenerativeModel:
    """Build model ``name`` with defaults fitted to ``data`` (a Dataset or its DataInfo).

    Any field of the family's ``Config`` can be overridden by keyword (``hidden=256``); strings
    are converted to the field's type, so CLI ``key=value`` pairs pass straight through.
    """
    cls = model_class(name)
    if data is None:
        raise ModelError(f"create({name!r}) needs data= (a dataset or its .info) to fit its shapes")
    info = data.info if isinstance(data, Dataset) else data
    if not isinstance(info, DataInfo):
        raise ModelError(f"data= must be a genlab Dataset or DataInfo, got {type(data).__name__}")
    cls.check_data(info)
    cfg = build_config(cls, info, overrides)
    return cls(info, cfg)
