"""Model registry: every architecture is built by name, so training, Tune sweeps and
inference never import a model class (a sweep's choices are strings).

A variant is a small function decorated with ``@register_model("name")`` that takes
keyword overrides and returns an ``nn.Module`` whose ``config`` attribute is the frozen
config dataclass it was built from; ``create_model`` records the registered name on
the module so a bundle can rebuild it (``create_model(model.model_name,
**asdict(model.config))``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

ModelFn = Callable[..., nn.Module]

_MODELS: dict[str, ModelFn] = {}


def register_model(name: str) -> Callable[[ModelFn], ModelFn]:
    """Register a model variant under ``name`` (decorator)."""

    def wrap(fn: ModelFn) -> ModelFn:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Names accepted by ``create_model``, sorted."""
    return sorted(_MODELS)


def create_model(name: str, **config: Any) -> nn.Module:
    """Build model ``name`` with config overrides (``num_classes=``, ``attention=``, ...)."""
    try:
        fn = _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None
    model = fn(**config)
    model.model_name = name
    return model


def build_config(cls: type, overrides: dict[str, Any], defaults: dict[str, Any] | None = None):
    """``cls(**defaults | overrides)`` with a clear error for unknown options.

    JSON (bundles, Tune configs) turns tuples into lists: list values are turned back
    into tuples where the field is a tuple, so a config survives a JSON round trip.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = dict(defaults or {})
    values.update(overrides)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TypeError(
            f"{cls.__name__} has no option(s) {', '.join(map(repr, unknown))}; "
            f"options: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if isinstance(value, list) and _is_tuple_type(hints.get(key)):
            values[key] = tuple(value)
    return cls(**values)


def _is_tuple_type(hint: Any) -> bool:
    if hint is None:
        return False
    origin = typing.get_origin(hint)
    if origin is tuple:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_tuple_type(arg) for arg in typing.get_args(hint))
    return False


def config_dict(model: nn.Module) -> dict[str, Any]:
    """The JSON-ready config a model was built from (what a bundle stores)."""
    return dataclasses.asdict(model.config)
