"""One loader for config dataclasses from ROS 2 params YAML files, with or without ROS.

A params file looks like::

    /**:                      # or the node name, e.g. executor:
      ros__parameters:
        control_rate_hz: 500.0
        limits:               # nested dataclass -> nested map (ROS flattens to limits.x)
          margin_rad: 0.1

Config classes are frozen dataclasses whose fields are bool, int, float, str, tuples of those
(ROS array parameters) or nested config dataclasses. `__post_init__` raises `ConfigValueError`
for a bad value; the loader turns it into a `ConfigError` naming the file, the key, the value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from vidplan_ros.core.errors import ConfigError, ConfigValueError

C = TypeVar('C')

_SCALARS = (bool, int, float, str)
_WILDCARDS = ('/**', '**')


def read_params_file(path: str | Path, node_name: str | None = None) -> dict[str, Any]:
    """Read the flat `{dotted.key: value}` parameters for `node_name` from a params YAML.

    Wildcard sections (`/**`) apply to every node; a section named after the node (with or
    without a leading `/`) overrides them. With `node_name=None` all sections are merged.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(str(path), '<file>', str(path),
                          'the file does not exist; pass an existing params YAML') from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), '<file>', '<unparsable>',
                          f'valid YAML ({exc})') from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(str(path), '<top level>', type(doc).__name__,
                          'a map of node names to {ros__parameters: {...}}')
    merged: dict[str, Any] = {}
    names = {node_name, f'/{node_name}'} if node_name else None
    for section in sorted(doc, key=lambda s: s not in _WILDCARDS):  # wildcards first
        body = doc[section]
        if not isinstance(body, dict) or 'ros__parameters' not in body:
            raise ConfigError(str(path), str(section), body,
                              "each top-level key is a node name (or '/**') holding "
                              "'ros__parameters:'")
        if names is None or section in _WILDCARDS or section in names:
            params = body['ros__parameters'] or {}
            if not isinstance(params, dict):
                raise ConfigError(str(path), f'{section}.ros__parameters', params,
                                  'a map of parameter names to values')
            merged.update(_flatten(params))
    return merged


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(_flatten(value, name + '.'))
        elif value != []:
            flat[name] = value
        # else: `[]` is read as ROS reads it: unset, so the field keeps its default
        # (rcl_yaml_param_parser parse.c gives an empty sequence no type; rclcpp#1955).
    return flat


def config_from_params(cls: type[C], params: Mapping[str, Any], source: str = '<params>',
                       prefix: str = '', strict: bool = True) -> C:
    """Build config dataclass `cls` from flat dotted `params`; missing keys keep defaults.

    With `strict`, a key under `prefix` that names no field is an error (it is almost always a
    typo that would otherwise be silently ignored).
    """
    if strict:
        check_known_params(cls, params, source, prefix)
    return _build(cls, params, source, prefix)


def check_known_params(cls: type, params: Mapping[str, Any], source: str,
                       prefix: str = '') -> None:
    """A `ConfigError` naming the first key under `prefix` that is no field of `cls` (a typo
    that would otherwise be silently ignored), with the allowed keys."""
    known = set(param_names(cls, prefix))
    unknown = sorted(k for k in params if k.startswith(prefix) and k not in known)
    if unknown:
        raise ConfigError(source, unknown[0], params[unknown[0]],
                          f'no such parameter (a typo?); allowed parameters: {sorted(known)}')


def _build(cls: type[C], params: Mapping[str, Any], source: str, prefix: str) -> C:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = prefix + f.name
        ftype = hints[f.name]
        if dataclasses.is_dataclass(ftype):
            kwargs[f.name] = _build(ftype, params, source, key + '.')
        elif key in params:
            kwargs[f.name] = _coerce(params[key], ftype, source, key)
    try:
        return cls(**kwargs)
    except ConfigValueError as exc:
        key = prefix + exc.field
        raise ConfigError(source, key, params.get(key, exc.value), exc.allowed) from None
    except TypeError as exc:  # a required field without a value
        raise ConfigError(source, prefix.rstrip('.') or cls.__name__, '<missing>',
                          f'all required fields set ({exc})') from None


def _coerce(value: Any, ftype: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(ftype)
    if origin is tuple:
        args = typing.get_args(ftype)
        elem = args[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, key, value, f'a list of {elem.__name__}')
        if len(args) != 2 or args[1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(source, key, value, f'a list of exactly {len(args)} values')
            return tuple(_coerce(v, a, source, key) for v, a in zip(value, args))
        return tuple(_coerce(v, elem, source, key) for v in value)
    if ftype is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, value, 'a number')
        if not math.isfinite(value):
            raise ConfigError(source, key, value, 'a finite number')
        return float(value)
    if ftype is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, value, 'an integer')
        return value
    if ftype is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, value, 'true or false')
        return value
    if ftype is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, value, 'a string')
        return value
    raise TypeError(f'{key}: unsupported config field type {ftype!r}')


def param_names(cls: type, prefix: str = '') -> list[str]:
    """All flat dotted parameter names of config dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    names: list[str] = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            names += param_names(hints[f.name], f'{prefix}{f.name}.')
        else:
            names.append(prefix + f.name)
    return names


def config_to_params(cfg: Any, prefix: str = '') -> dict[str, Any]:
    """Flat dotted parameters of a config object (tuples become lists, as ROS arrays)."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            flat.update(config_to_params(value, f'{prefix}{f.name}.'))
        else:
            flat[prefix + f.name] = list(value) if isinstance(value, tuple) else value
    return flat


def load_config(cls: type[C], path: str | Path | None = None, node_name: str | None = None,
                overrides: Mapping[str, Any] | None = None, prefix: str = '') -> C:
    """Load config `cls` from a params YAML (optional) plus `overrides` (e.g. `-p` args)."""
    params: dict[str, Any] = read_params_file(path, node_name) if path is not None else {}
    source = str(path) if path is not None else '<defaults>'
    if overrides:
        params.update(overrides)
        source += ' + overrides'
    return config_from_params(cls, params, source, prefix=prefix)


def dump_params_yaml(cfg: Any, node_name: str = '/**') -> str:
    """A ROS 2 params YAML string holding every field of `cfg` (nested maps).

    An empty list is left out (a params file cannot carry one: it would arrive unset), which
    reads back as the field's default; so an empty list where the default is not empty is an
    error, as no params file can say it."""
    try:
        defaults = config_to_params(type(cfg)())
    except (TypeError, ConfigValueError):  # required fields, or a default that is invalid
        defaults = {}
    tree: dict[str, Any] = {}
    for key, value in config_to_params(cfg).items():
        if value == []:
            if defaults.get(key, []) != []:
                raise ConfigError('<dump>', key, value, 'a non-empty list: a ROS 2 params file '
                                  'cannot carry an empty list (it reads back as the default '
                                  f'{defaults[key]!r})')
            continue
        *parents, leaf = key.split('.')
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return yaml.safe_dump({node_name: {'ros__parameters': tree}}, sort_keys=False)


# --- validation helpers for __post_init__ -------------------------------------------------

def require(ok: bool, field: str, value: Any, allowed: str) -> None:
    """Raise `ConfigValueError(field, value, allowed)` unless `ok`."""
    if not ok:
        raise ConfigValueError(field, value, allowed)


def require_positive(cfg: Any, *fields: str) -> None:
    """Every named scalar or tuple field is finite and > 0."""
    for name in fields:
        value = getattr(cfg, name)
        values = value if isinstance(value, tuple) else (value,)
        require(all(math.isfinite(v) and v > 0 for v in values), name, value,
                'every value must be a finite number > 0')


def require_one_of(cfg: Any, field: str, choices: typing.Iterable[str]) -> None:
    """The named string field is one of `choices`."""
    choices = tuple(choices)
    value = getattr(cfg, field)
    require(value in choices, field, value, f'one of {list(choices)}')


def require_len(cfg: Any, n: int, *fields: str, allow_empty: bool = False) -> None:
    """Every named tuple field has length `n` (or 0 when `allow_empty`)."""
    for name in fields:
        value = getattr(cfg, name)
        ok = len(value) == n or (allow_empty and len(value) == 0)
        require(ok, name, value, f'a list of {n} values (one per joint)'
                + (' or an empty list' if allow_empty else ''))
