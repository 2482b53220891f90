"""Typed dataclass configs: YAML presets, `--set a.b=v` overrides, errors that name the key.

Every config in dae is a (nested) dataclass. `from_dict` builds one from plain data and rejects
unknown keys, wrong types and out-of-range values with a `ConfigError` whose message starts with the
dotted key, so `train.stpes: 10` fails with "train.stpes: unknown key (did you mean 'steps'?)".
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from dae.errors import ConfigError, MissingFileError

T = TypeVar("T")


def check(condition: bool, key: str, message: str) -> None:
    """Raise `ConfigError(key, message)` unless `condition`; used in `__post_init__` validators."""
    if not condition:
        raise ConfigError(key, message)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting where it is lossless (int -> float)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(err.detail)
        raise ConfigError(key, "; ".join(errors))
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(key, f"expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(key, f"expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads `1e-4` as a string; users mean a number.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):  # `.inf` / `.nan` are YAML floats, never a sane setting
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(key, f"expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys and wrong types by name."""
    if not isinstance(data, Mapping):
        raise ConfigError(prefix, f"expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {sorted(fields)})"
            raise ConfigError(_join(prefix, str(key)), f"unknown key{hint}")
    kwargs = {k: _coerce(v, hints[k], _join(prefix, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if prefix and not err.key.startswith(prefix):
            raise ConfigError(_join(prefix, err.key), err.detail) from None
        raise


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config (dataclasses -> dicts, tuples -> lists), YAML/JSON friendly."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """`"train.steps=200"` -> (["train", "steps"], 200); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(text, "override must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(key, "override key must be a dotted path like train.steps")
    try:
        value = yaml.load(raw, Loader=StrictLoader) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(
            key, f"cannot parse the value {raw!r} as YAML ({_yaml_problem(err)})"
        ) from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides to nested plain data (unknown keys are caught later)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(".".join(path[: i + 1]), "is not a section, cannot set a subkey")
            node = child
        node[path[-1]] = value
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: the problem and where (PyYAML's own text spans several)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return problem + (f" at line {mark.line + 1}, column {mark.column + 1}" if mark else "")


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (plain YAML keeps the last,
    so a second `train:` section would silently replace the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _preset_hint(path: Path) -> str:
    """The hint `; did you mean configs/x.yaml?` for a preset named loosely (`cifar10-kl`,
    `toy_vae`), from the YAML files of `configs/` beside the path or under the working directory."""
    folders = {path.parent / "configs", path.parent, Path("configs")}
    presets = {p for folder in folders if folder.is_dir() for p in folder.glob("*.y*ml")}
    by_stem = {p.stem.replace("-", "_"): p for p in sorted(presets)}
    stem = path.name.removesuffix(path.suffix) if path.suffix in (".yaml", ".yml") else path.name
    close = difflib.get_close_matches(stem.replace("-", "_"), list(by_stem), n=3, cutoff=0.7)
    return f"; did you mean {', '.join(str(by_stem[c]) for c in close)}?" if close else ""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from `path`, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config file not found: {path}{_preset_hint(path)}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=StrictLoader) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(
            "", f"{path}: not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError("", f"{path}: invalid YAML: {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: top level must be a mapping")
    return data


def replace(cfg: T, overrides: Sequence[str]) -> T:
    """A copy of `cfg` with `key.path=value` overrides applied and re-validated."""
    return from_dict(type(cfg), apply_overrides(to_dict(cfg), overrides))


def explain(cfg: Any, indent: int = 0) -> str:
    """`cfg` as YAML, each key followed by its help text (`field(metadata={"help": ...})`)."""
    lines = []
    for f in dataclasses.fields(cfg):
        value, pad = getattr(cfg, f.name), "  " * indent
        note = f"  # {f.metadata['help']}" if "help" in f.metadata else ""
        if dataclasses.is_dataclass(value):
            lines += [f"{pad}{f.name}:{note}", explain(value, indent + 1)]
        else:  # JSON is YAML's flow style: one line per key
            lines.append(f"{pad}{f.name}: {json.dumps(to_dict(value))}{note}")
    return "\n".join(lines)


__all__ = [
    "ConfigError",
    "apply_overrides",
    "check",
    "explain",
    "from_dict",
    "parse_override",
    "read_yaml",
    "replace",
    "to_dict",
]
