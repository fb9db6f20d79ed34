"""The one parser of imface's settings: YAML mappings and command-line strings to dataclasses.

Every config dataclass (model, loss, data, train, fit, benchmark) is read through :func:`from_dict`
and written through :func:`to_plain` + :func:`save_yaml`; YAML is read with ``yaml.safe_load``.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from imface.errors import ImfaceError
from imface.io.atomic import write_text

_T = TypeVar("_T")


def load_yaml(path: str | Path) -> Any:
    """A YAML file's content (``yaml.safe_load``); ImfaceError naming the file when it is missing or bad."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImfaceError(path, "no such config file") from None
    except yaml.YAMLError as err:
        raise ImfaceError(path, f"not valid YAML ({' '.join(str(err).split())})") from None


def save_yaml(path: str | Path, values: Any) -> None:
    """Write plain values as YAML, atomically, in field order."""
    write_text(path, yaml.safe_dump(to_plain(values), sort_keys=False))


def to_plain(value: Any) -> Any:
    """Nested dicts/lists of plain values; tuples become lists so yaml.safe_dump writes plain sequences."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def coerce(value: Any, hint: Any, current: Any, where: str) -> Any:
    """Convert a YAML or command-line value to the type a dataclass field declares."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(value, args[0], current, where)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ImfaceError(None, f"{where} must be one of {typing.get_args(hint)}, got {value!r}")
        return value
    if hint is bool or (hint is None and isinstance(current, bool)):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ImfaceError(None, f"{where} must be true or false, got {value!r}")
    try:
        if hint is int or (hint is None and isinstance(current, int)):
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, bool) or float(number) != int(float(number)):
                raise ValueError
            return int(number)
        if hint is float or (hint is None and isinstance(current, float)):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (TypeError, ValueError):
        raise ImfaceError(None, f"{where} must be a number of type {getattr(hint, '__name__', hint)}, got {value!r}") from None
    if hint is str or (hint is None and isinstance(current, str)):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ImfaceError(None, f"{where} must be a string, got {value!r}")
        return str(value)
    if origin is tuple or isinstance(current, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value if value.strip().startswith("[") else f"[{value}]")
        if not isinstance(value, (list, tuple)):
            raise ImfaceError(None, f"{where} must be a list, got {value!r}")
        args = typing.get_args(hint)
        elem = args[0] if args else None
        sample = current[0] if isinstance(current, tuple) and current else None
        return tuple(coerce(v, elem if elem is not Ellipsis else None, sample, f"{where}[]") for v in value)
    return value


def from_dict(cls: type[_T], raw: Any, where: str = "") -> _T:
    """An instance of the dataclass ``cls`` from a (YAML) mapping: missing fields take their defaults,
    unknown ones are refused, values are coerced to the declared types, nested dataclasses recurse.
    ``where``: the dotted path of ``raw`` in error messages."""
    if not isinstance(raw, dict):
        raise ImfaceError(None, f"{where or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ImfaceError(None, f"unknown config field(s) {', '.join(f'{where}.{u}'.lstrip('.') for u in unknown)}")
    kwargs = {}
    for name, value in raw.items():
        hint, current = hints.get(name), getattr(defaults, name)
        path = f"{where}.{name}".lstrip(".")
        if dataclasses.is_dataclass(current):
            kwargs[name] = from_dict(type(current), value, path)
        else:
            kwargs[name] = coerce(value, hint, current, path)
    return cls(**kwargs)
