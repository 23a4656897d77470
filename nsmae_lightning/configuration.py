"""Turn YAML-born dicts back into the typed config dataclasses.

LightningCLI records a task's init arguments as plain dicts (that is what lands in
``hparams`` and in checkpoints), so a task receives either a config dataclass
(from Python) or its dict form (from the CLI or ``load_from_checkpoint``).
``as_config`` accepts both and rebuilds nested dataclasses, including tuples of them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def as_config(cls: type[T], value: T | Mapping[str, Any]) -> T:
    """``value`` as an instance of the dataclass ``cls``.

    Raises:
        ValueError: a key that ``cls`` does not have (a typo in a YAML file).
    """
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"expected {cls.__name__} or a mapping of its fields, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; known: {sorted(names)}")
    return cls(**{key: _convert(hints[key], item) for key, item in value.items()})  # type: ignore[call-arg]


def _convert(hint: Any, value: Any) -> Any:
    """Rebuild dataclasses inside ``value`` according to the type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return as_config(hint, value)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
                return as_config(option, value)
            if typing.get_origin(option) in (tuple, list) and isinstance(value, (list, tuple)):
                return _convert(option, value)  # e.g. ``tuple[TaskGroup, ...] | None``
        return value
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        items = args[:1] * len(value) if (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else args
        if len(items) == len(value):
            converted = [_convert(item_hint, item) for item_hint, item in zip(items, value)]
            return origin(converted)
    return value
