"""Reads a hub config file and reports every problem in it as `FILE:LINE: message`."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from schemas.checks import semantic_problems
from schemas.config import (
    CONNECTOR_TYPES,
    Channel,
    EnvName,
    HubConfig,
    Identifier,
    KindExclusion,
)

Loc = tuple[str | int, ...]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Aliases let a few lines of YAML expand to billions of values; no real config comes near this.
MAX_VALUES = 200_000


@dataclass(frozen=True)
class ConfigError:
    """One problem, at a line of the file (1-based)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigInvalid(Exception):
    """The config file has problems; `errors` lists every one."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


def load_config(
    path: Path | str, *, check_env: bool = True, env: Mapping[str, str] | None = None
) -> tuple[HubConfig | None, list[ConfigError]]:
    """The config and every problem in the file, sorted by line.

    The config is None when the file does not even have the right structure. With `check_env`, the
    secrets it names must be set in `env` (default: this process's environment).
    """
    file = str(path)
    try:
        doc = _parse(Path(path))
    except _Unloadable as exc:
        return None, [ConfigError(file, exc.line, exc.message)]
    if doc is None:
        return None, [ConfigError(file, 1, "the file is empty: a hub config needs at least `hub: {id: ...}`")]
    try:
        data = _plain(doc, [0])
    except _TooLarge:
        return None, [
            ConfigError(file, 1, f"the document expands to more than {MAX_VALUES} values (anchors and aliases?)")
        ]
    try:
        config = HubConfig.model_validate(data)
    except ValidationError as exc:
        return None, _sorted(_validation_errors(file, doc, data, exc))
    if check_env:
        problems = semantic_problems(config, os.environ if env is None else env)
    else:
        problems = semantic_problems(config, None)
    return config, _sorted(ConfigError(file, _line(doc, p.loc), _located(doc, p.loc, p.message)) for p in problems)


def load_config_or_raise(path: Path | str) -> HubConfig:
    """The config, for commands that run it; secrets it names need not be set in this shell.

    Raises ConfigInvalid.
    """
    config, errors = load_config(path, check_env=False)
    if errors or config is None:
        raise ConfigInvalid(errors)
    return config


def check_file(path: Path | str, env: Mapping[str, str] | None = None) -> list[ConfigError]:
    """Every problem in the file, secrets included (default: this process's environment); [] when valid."""
    return load_config(path, check_env=True, env=env)[1]


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file."""
    schema = HubConfig.model_json_schema()
    return {"$schema": JSON_SCHEMA_DIALECT, **schema, "title": "Renkei hub configuration"}


def _sorted(errors: Iterable[ConfigError]) -> list[ConfigError]:
    return sorted(dict.fromkeys(errors), key=lambda error: error.line)


# --- reading the YAML --------------------------------------------------------------------------------


class _Unloadable(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _TooLarge(Exception):
    pass


def _parse(path: Path) -> Any:
    """The round-trip document, which keeps the line of every key and item. Raises _Unloadable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _Unloadable(1, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _Unloadable(line, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from exc
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        raise _Unloadable(*_yaml_problem(exc)) from exc
    except YAMLError as exc:
        raise _Unloadable(1, f"invalid YAML: {exc}") from exc


def _yaml_problem(exc: MarkedYAMLError) -> tuple[int, str]:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context:
        where = f" that starts on line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
        message += f" ({exc.context}{where})"
    return line, message


def _plain(node: Any, count: list[int]) -> Any:
    """Plain dicts, lists and scalars, so that the config holds no ruamel types. Raises _TooLarge."""
    count[0] += 1
    if count[0] > MAX_VALUES:
        raise _TooLarge
    if isinstance(node, dict):
        return {_plain(key, count): _plain(value, count) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item, count) for item in node]
    if isinstance(node, TaggedScalar):
        return node.value
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, ScalarBoolean):  # an anchored true/false, an int underneath
        return bool(node)
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


def _line(doc: Any, loc: Loc) -> int:
    """The 1-based line of the deepest node of `loc` that the document has."""
    line = doc.lc.line if isinstance(doc, CommentedMap | CommentedSeq) else 0
    node = doc
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            line = _key_line(node, key, line)
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line = node.lc.item(key)[0]
        else:
            break
        node = node[key]
    return int(line) + 1


def _key_line(node: CommentedMap, key: Any, default: int) -> int:
    try:
        return int(node.lc.key(key)[0])
    except (KeyError, TypeError):  # a key merged in from an anchor (`<<: *base`) has no line of its own
        return default


def _existing(doc: Any, loc: Loc) -> Loc:
    """The part of `loc` that the document has."""
    node = doc
    for depth, key in enumerate(loc):
        if not _has(node, key):
            return loc[:depth]
        node = node[key]
    return loc


def _has(node: Any, key: str | int) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)


def _where(loc: Loc) -> str:
    """`connectors[2].scope.share_with[1]`."""
    text = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in loc)
    return text.removeprefix(".")


def _located(doc: Any, loc: Loc, message: str) -> str:
    where = _where(_existing(doc, loc))
    return f"{where}: {message}" if where else message


# --- pydantic's errors, made readable ----------------------------------------------------------------

# Pydantic puts the member it tried into the loc of a union's errors, and reports every member that
# failed. Where the data shows which member was meant, only that member's errors are worth reading;
# where it fits none, one message says what the item may be.
_CHANNELS: dict[str, str] = {name: member.__name__ for member in get_args(Channel) for name in member.model_fields}


@dataclass(frozen=True)
class _Located:
    path: Loc  # keys and indexes of the document, the union members taken out
    choices: tuple[tuple[Loc, str], ...]  # (the path of a union, the member pydantic tried there)


def _union_site(path: Loc) -> str | None:
    if len(path) == 2 and path[0] == "connectors" and isinstance(path[1], int):
        return "connector"
    if len(path) == 4 and path[0] == "communities" and path[2] == "deliver" and isinstance(path[3], int):
        return "channel"
    if path[-2:] == ("scope", "share_with"):
        return "share_with"
    if path[-3:-1] == ("scope", "exclude") and isinstance(path[-1], int):
        return "exclusion"
    return None


def _locate(loc: tuple[str | int, ...], data: Any) -> _Located:
    path: list[str | int] = []
    choices: list[tuple[Loc, str]] = []
    node, member_taken = data, False
    for key in loc:
        site = None if member_taken else _union_site(tuple(path))
        is_tag = site is not None and (site != "connector" or (isinstance(node, dict) and key == node.get("type")))
        if is_tag:
            if site != "connector":
                choices.append((tuple(path), str(key)))
            member_taken = True
            continue
        path.append(key)
        member_taken = False
        node = _child(node, key)
    return _Located(tuple(path), tuple(choices))


def _child(node: Any, key: str | int) -> Any:
    return node[key] if _has(node, key) else None


def _value_at(data: Any, path: Loc) -> Any:
    for key in path:
        data = _child(data, key)
    return data


def _meant(site: str, value: Any, member: str) -> bool | None:
    """Whether `member` is what the data at a union means; None when the data fits no member."""
    if site == "channel":
        keys = [key for key in value if key in _CHANNELS] if isinstance(value, dict) else []
        return _CHANNELS[keys[0]] == member if len(keys) == 1 else None
    if site == "exclusion":
        if isinstance(value, dict):
            return member == KindExclusion.__name__
        return member != KindExclusion.__name__ if isinstance(value, str) else None
    if site == "share_with" and isinstance(value, list):
        return member.startswith("list")
    return None


def _union_message(site: str, value: Any) -> str:
    channels = ", ".join(_CHANNELS)
    if site == "channel":
        keys = list(value) if isinstance(value, dict) else []
        known = [key for key in keys if key in _CHANNELS]
        if len(known) > 1:
            return f"a channel has exactly one of {channels}, not {', '.join(known)}: make each its own item"
        if keys:
            return f"unknown channel {keys[0]!r}: a channel is one of {channels}"
        return f"a channel is one of {channels} (e.g. `- pull: {{}}`), not {_show(value)}"
    if site == "exclusion":
        return f"an exclude entry is a community id or {{kind: K}}, not {_show(value)}"
    hint = f"; for one community write [{value}]" if isinstance(value, str) else ""
    return f"share_with is `all` or a list of community ids, not {_show(value)}{hint}"


def _validation_errors(file: str, doc: Any, data: Any, exc: ValidationError) -> list[ConfigError]:
    errors: list[ConfigError] = []
    for error in exc.errors(include_url=False):
        located = _locate(error["loc"], data)
        keep, misfit = _judge(data, located)
        if not keep:
            continue
        if misfit is not None:
            text = _union_message(_union_site(misfit) or "", _value_at(data, misfit))
            errors.append(ConfigError(file, _line(doc, misfit), _located(doc, misfit, text)))
            continue
        where, line_loc, text = _readable(error, located)
        errors.append(ConfigError(file, _line(doc, line_loc), _located(doc, where, text)))
    return errors


def _judge(data: Any, located: _Located) -> tuple[bool, Loc | None]:
    """Whether to report the error, and the union (if any) that the data fits no member of."""
    for site_path, member in located.choices:
        meant = _meant(_union_site(site_path) or "", _value_at(data, site_path), member)
        if meant is None:
            return True, site_path
        if not meant:
            return False, None  # another member of the union than the one the data means
    return True, None


def _readable(error: ErrorDetails, located: _Located) -> tuple[Loc, Loc, str]:
    """(the path to name, the path whose line to give, the message) for one of pydantic's errors."""
    kind, path, value = error["type"], located.path, error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return path[:-1], path, f"unknown field {path[-1]!r}{_allowed_fields(error['loc'][:-1], path[-1])}"
    if kind == "missing":
        return path[:-1], path[:-1], f"missing required field {path[-1]!r}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return path, path, _connector_type_message(value)
    # The item of a list has no name of its own: naming the list would read as if the item were it.
    name = path[-1] if path and isinstance(path[-1], str) else ""
    return path, path, _value_message(kind, name, value, ctx, error["msg"])


def _connector_type_message(connector: Any) -> str:
    given = connector.get("type") if isinstance(connector, dict) else None
    if given is None:
        return f"a connector needs a type: {', '.join(CONNECTOR_TYPES)}"
    return f"unknown connector type {_show(given)} ({', '.join(CONNECTOR_TYPES)})"


def _value_message(kind: str, name: str, value: Any, ctx: dict[str, Any], pydantic_message: str) -> str:
    if kind == "literal_error":
        return _literal_message(name, value, ctx)
    if kind == "string_pattern_mismatch":
        return f"{_show(value)} is not {_pattern_meaning(str(ctx.get('pattern', '')))}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping (key: value), not {_show(value)}"
    if kind == "list_type":
        return f"expected a list, not {_show(value)}"
    if kind == "string_type":
        return f"expected text, not {_show(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length', 1)} item(s)"
    if kind == "value_error":
        return pydantic_message.removeprefix("Value error, ")
    return f"{pydantic_message.replace('Input should', 'should', 1)}, not {_show(value)}"


def _literal_message(name: str, value: Any, ctx: dict[str, Any]) -> str:
    choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
    message = f"unknown {name} {_show(value)} ({', '.join(choices)})"
    if not name:
        message = f"{_show(value)} is not one of {', '.join(choices)}"
    if not isinstance(value, str) and str(value) in choices:
        message += f': write it in quotes, "{value}"'
    return message


def _pattern_meaning(pattern: str) -> str:
    if pattern == _pattern_of(Identifier):
        return "an id: a letter or digit, then letters, digits, '.', '_' or '-' (128 at most)"
    if pattern == _pattern_of(EnvName):
        return "an environment variable name: letters, digits and '_', not starting with a digit"
    if pattern.startswith("^https?"):
        return "an http:// or https:// URL"
    if "@" in pattern:
        return "an e-mail address"
    return f"of the form {pattern}"


def _pattern_of(annotated: Any) -> str | None:
    for info in get_args(annotated)[1:]:
        for constraint in getattr(info, "metadata", []):
            if getattr(constraint, "pattern", None):
                return str(constraint.pattern)
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


# --- which fields a model has, from a pydantic loc (union members included) ---------------------------


def _allowed_fields(model_loc: tuple[str | int, ...], unknown: str | int) -> str:
    model = _model_at(model_loc)
    if model is None:
        return ""
    fields = list(model.model_fields)
    close = difflib.get_close_matches(str(unknown), fields, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f" ({hint}allowed: {', '.join(fields)})"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    annotation: Any = HubConfig
    for key in loc:
        annotation = _step(annotation, key)
        if annotation is None:
            return None
    annotation = _unwrap(annotation)
    return annotation if _is_model(annotation) else None


def _step(annotation: Any, key: str | int) -> Any:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        members = [_unwrap(member) for member in get_args(annotation)]
        return next((m for m in members if _is_model(m) and key in _member_tags(m)), None)
    if origin is list:
        return get_args(annotation)[0] if isinstance(key, int) else None
    if _is_model(annotation) and isinstance(key, str) and key in annotation.model_fields:
        return annotation.model_fields[key].annotation
    return None


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, ...]` and `X | None` to X."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, UnionType):
            members = [member for member in get_args(annotation) if member is not NoneType]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _member_tags(model: type[BaseModel]) -> set[Any]:
    """How pydantic names a union member in a loc: its class name, or its `type` in a tagged union."""
    tags: set[Any] = {model.__name__}
    type_field = model.model_fields.get("type")
    if type_field is not None:
        tags.update(get_args(type_field.annotation))
    return tags


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
