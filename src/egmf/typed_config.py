"""Typed configs from plain dicts: nested dataclasses built and checked before anything runs.

Every config in EGMF is a dataclass whose fields carry ``metadata={"help": ...}``. :func:`from_dict` turns a
YAML mapping into that dataclass, refusing an unknown key (with the valid keys) or a value of the wrong type
or outside a ``Literal`` (with the valid choices), and naming the dotted path of the field. A choice field
is always typed ``Literal[...]``; :func:`check_choices`, called from ``__post_init__``, gives a config built in
code the same check. Components add their own range checks in ``__post_init__``. :func:`apply_overrides` applies ``key=value`` strings from the
command line (torchtune style), and :func:`to_dict` gives back what a run saves beside its results.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from egmf.errors import ConfigError

_NONE = type(None)


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from mapping ``data``; missing keys keep their defaults."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping of {cls.__name__} fields, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        path = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"{path}: unknown key; valid keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        path = f"{where}.{name}" if where else name
        kwargs[name] = _convert(hints[name], value, path)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if where and not str(e).startswith(where) else str(e)) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        errors = []
        for arg in (a for a in args if a is not _NONE):
            try:
                return _convert(arg, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{path}: invalid value {value!r}; valid choices: {', '.join(map(str, args))}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def _has_literal(tp: Any) -> bool:
    return typing.get_origin(tp) is Literal or any(_has_literal(a) for a in typing.get_args(tp))


def check_choices(cfg: Any, where: str = "") -> None:
    """Check every choice field of dataclass instance ``cfg`` (a ``Literal``, also inside ``| None`` or a tuple).

    :func:`from_dict` already checks them while building; a ``__post_init__`` calls this so that a config
    built in code (``FusionConfig(missing_modality="zero")``) fails with the same message. Lists given for
    tuple fields become tuples.
    """
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if _has_literal(hints[f.name]):
            path = f"{where}.{f.name}" if where else f.name
            setattr(cfg, f.name, _convert(hints[f.name], getattr(cfg, f.name), path))


def _describe(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not _NONE]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args)


def to_dict(cfg: Any) -> Any:
    """A plain, YAML-safe copy of a config (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``a.b.c=value`` strings to a nested dict (values parsed as YAML: ``0.5``, ``true``, ``[1, 2]``).

    A list element is addressed by its index (``data.datasets.0.path=...``). Keys are checked later, by
    :func:`from_dict`, so a typo gets the list of valid keys.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=3")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--set {item!r}: empty key part in {key!r}")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: i + 1]), create=True)
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, key)] = value
        else:
            node[last] = value
    return data


def _child(node: Any, part: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise ConfigError(f"--set {path}: {path.rsplit('.', 1)[0]} is a value, not a section")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _index(node: list, part: str, path: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {path}: expected a list index below {len(node)}, got {part!r}")
    return int(part)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def write_yaml(data: dict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def help_table(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(dotted key, default, help)`` for every leaf field: what ``egmf config keys`` prints."""
    rows = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            rows += help_table(hint, key + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        rows.append((key, repr(to_dict(default)), f.metadata.get("help", "")))
    return rows
