"""Validation of the workflow's config against ``schemas/``, with one-line errors.

Snakemake's own ``validate`` reports a schema failure with the whole schema appended (hundreds of
lines) and says nothing about where a misspelt key should have gone. Here a failure is one
:class:`~ntpgeom.errors.UserError` line that names the key path (``datasets.grammar.tabel``), the
bad value, and the allowed values or the nearest valid key (``did you mean `table`?``).

The validator fills in the schema's defaults while it checks (as Snakemake's does), so a section
read after :func:`validate` has every key.

Each section then becomes a frozen dataclass (:func:`from_section`): ``TableConfig``,
``SvmConfig``, ``TrainConfig``, ``GeometryConfig``, ``LinearConfig``, and a grid's ``GridPoint``,
in the module of their stage. The dataclass states each default once; the CLI's options and the
package functions' keyword defaults read it, and the schema's ``default:`` documents the same
value (a test proves they agree: :func:`schema_defaults` against :func:`dataclass_defaults`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ntpgeom.errors import UserError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

# jsonschema is imported by the functions that validate, not here: the section dataclasses below
# are built where it is not installed (the GPU machine's bare environment, benchmarks/gpu_check).

__all__ = ["command_line_booleans", "config_key", "dataclass_defaults", "dataset_section",
           "format_error", "from_section", "key_path", "load_schema", "merge", "schema_defaults",
           "to_section", "validate"]

_MAX_VALUE = 60   # characters of a value's repr in a message (a whole section would be unreadable)
_MAX_LISTED = 24  # allowed values listed in full; beyond this only the nearest ones


@functools.cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_schema(path: str | Path) -> dict[str, Any]:
    """A schema file as a dict (cached: each file is parsed once per process)."""
    return _load(str(Path(path).resolve()))


@functools.cache
def _validator(set_default: bool = True) -> type:
    """Draft 2020-12, filling in defaults when ``set_default`` (:func:`_with_defaults`)."""
    from jsonschema import Draft202012Validator

    return _with_defaults(Draft202012Validator) if set_default else Draft202012Validator


def _with_defaults(validator_class: type) -> type:
    """A validator class that sets each property's schema default before checking it.

    The default is copied: schemas are cached, and a default dict shared between two datasets'
    sections would let one's defaults leak into the other.
    """
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):  # noqa: ANN001, ANN202 (jsonschema API)
        if isinstance(instance, dict):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    from jsonschema import validators

    return validators.extend(validator_class, {"properties": properties})


def key_path(where: str, path: Iterable[Any]) -> str:
    """``where`` and the path inside it as one dotted key path (list items as ``[i]``)."""
    out = where
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "config"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _choices(values: Sequence[Any], given: Any = None) -> str:
    """``allowed: a, b, c``, led by ``did you mean `b`?`` when one is close to ``given``."""
    names = [str(v) for v in values]
    hint = ""
    if isinstance(given, str):
        close = difflib.get_close_matches(given, names, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean `{close[0]}`? "
    if len(names) > _MAX_LISTED:
        names = difflib.get_close_matches(str(given), names, n=_MAX_LISTED, cutoff=0) + ["…"]
    return f"{hint}allowed: {', '.join(names)}"


_SIZES = {"minItems": "needs at least {} item(s)", "maxItems": "takes at most {} item(s)",
          "minProperties": "needs at least {} entry(ies)", "uniqueItems": "has repeated items"}
_BOUNDS = {"minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def _describe(schema: Mapping[str, Any]) -> str:
    """A short human form of one alternative of an anyOf: ``a number > 0``, ``'auto'``."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    kind = schema.get("type", "value")
    text = " or ".join(kind) if isinstance(kind, list) else _article(kind)
    bounds = [f"{sign} {schema[key]}" for key, sign in _BOUNDS.items() if key in schema]
    return " ".join([text, *bounds])


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _allowed_keys(schema: Mapping[str, Any]) -> list[str]:
    return sorted(schema.get("properties", {}))


def format_error(error: ValidationError, where: str = "") -> str:
    """One line for a schema failure: the key path, what is wrong, and what is allowed.

    Parameters
    ----------
    error
        A failure from a jsonschema validator (the most relevant one of a set, see
        :func:`jsonschema.exceptions.best_match`).
    where
        The key path of the validated instance inside the config (``""`` for the whole config,
        ``"datasets.ts.table"`` for a section), prefixed to the error's own path.
    """
    path = key_path(where, error.absolute_path)
    kind, value, schema = error.validator, error.instance, error.schema
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = _allowed_keys(schema)
        extra = [k for k in value if k not in allowed]
        key = extra[0] if extra else "?"
        return (f"{key_path(where, [*error.absolute_path, key])}: unknown key; "
                + _choices(allowed, key))
    if "propertyNames" in error.schema_path:  # a key checked against a list or pattern of names
        if kind == "enum":
            return f"{path}: unknown key {value!r}; " + _choices(error.validator_value, value)
        if kind == "pattern":
            return f"{path}: key {value!r} does not match the pattern {error.validator_value}"
        return f"{path}: key {value!r} is not allowed ({error.message})"
    if kind == "enum":
        return f"{path}: {_show(value)} is not allowed; " + _choices(error.validator_value, value)
    if kind == "const":
        return f"{path}: {_show(value)} is not allowed; allowed: {error.validator_value!r}"
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return f"{path}: missing key `{missing[0] if missing else '?'}`"
    if kind == "type":
        types = error.validator_value
        want = " or ".join(types) if isinstance(types, list) else types
        hint = ""
        if isinstance(value, str) and "number" in str(types):
            try:
                float(value)
                hint = f" (YAML reads {value} as a string: write it with a dot, e.g. 1.0e-4)"
            except ValueError:
                pass
        return f"{path}: {_show(value)} is not of type {want}{hint}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return (f"{path}: {_show(value)} is out of range; it must be {_BOUNDS[kind]} "
                f"{error.validator_value}")
    if kind in _SIZES:
        return f"{path}: {_show(value)} {_SIZES[kind].format(error.validator_value)}"
    if kind == "pattern":
        return f"{path}: {_show(value)} does not match the pattern {error.validator_value}"
    if kind in ("anyOf", "oneOf"):
        wanted = " or ".join(_describe(option) for option in error.validator_value)
        return f"{path}: {_show(value)} is not allowed; expected {wanted}"
    # Anything else: jsonschema's message, kept to one line (its value part can be a whole dict).
    message = " ".join(error.message.split())
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{path}: {message}"


def _best(errors: list[ValidationError]) -> ValidationError:
    """The error to report: jsonschema's best match (the shallowest, the most specific kind)."""
    from jsonschema.exceptions import best_match

    return best_match(errors)


def validate(instance: Any, schema: Mapping[str, Any] | str | Path, *, where: str = "",
             set_default: bool = True) -> Any:
    """Check ``instance`` against ``schema``; fill in defaults; raise one line on a failure.

    Parameters
    ----------
    instance
        The config (or one section of it), a dict; modified in place when ``set_default``.
    schema
        A schema dict, or the path of a YAML/JSON schema file (its ``$ref``s are local).
    where
        The key path of ``instance`` in the config, for the message (see :func:`format_error`).
    set_default
        Fill missing keys with the schema's defaults.

    Returns
    -------
    The instance (with its defaults).

    Raises
    ------
    UserError
        ``<key path>: <what is wrong>; <allowed values or the nearest key>``.
    """
    if not isinstance(schema, Mapping):
        schema = load_schema(schema)
    errors = list(_validator(set_default)(schema).iter_errors(instance))
    if errors:
        raise UserError(format_error(_best(errors), where))
    return instance


#: How ``snakemake --config key=value`` spells a boolean: it parses only ``True``/``False`` itself
#: and hands ``true``, ``false`` (the YAML spelling the README uses) over as strings.
_BOOLEAN_WORDS = {"true": True, "false": False}


def command_line_booleans(config: dict[str, Any], schema: Mapping[str, Any] | str | Path
                          ) -> dict[str, Any]:
    """Turn the top-level booleans that ``--config key=true|false`` gave as strings into bools.

    Only keys whose schema type is ``boolean`` and whose value is one of those two words (any
    case) change; anything else is left for :func:`validate` to refuse. Modifies ``config`` in
    place (Snakemake's config object) and returns it.
    """
    if not isinstance(schema, Mapping):
        schema = load_schema(schema)
    for key, sub in schema.get("properties", {}).items():
        value = config.get(key)
        if (isinstance(sub, Mapping) and sub.get("type") == "boolean" and isinstance(value, str)
                and value.lower() in _BOOLEAN_WORDS):
            config[key] = _BOOLEAN_WORDS[value.lower()]
    return config


def merge(base: Mapping[str, Any] | None, override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(dict(base or {}))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _has_path(tree: Any, path: Sequence[Any]) -> bool:
    for part in path:
        if isinstance(tree, Mapping) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and isinstance(part, int) and part < len(tree):
            tree = tree[part]
        else:
            return False
    return True


def dataset_section(config: Mapping[str, Any], dataset: str, section: str,
                    schema: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """``config[section]`` overridden by the dataset's own entry, validated, with defaults.

    A failure names the key where the bad value was written: ``datasets.<dataset>.<section>.…``
    when the dataset's entry set it, ``<section>.…`` (the global section) otherwise.

    Raises
    ------
    UserError
        One line (see :func:`validate`).
    """
    override = config["datasets"][dataset].get(section) or {}
    merged = merge(config.get(section), override)
    if not isinstance(schema, Mapping):
        schema = load_schema(schema)
    errors = list(_validator()(schema).iter_errors(merged))
    if not errors:
        return merged
    error = _best(errors)
    path = list(error.absolute_path)
    # An unknown key is reported at its parent's path: look for the key itself.
    probe = path + [k for k in (error.instance if error.validator == "additionalProperties"
                                and isinstance(error.instance, dict) else {})
                    if k not in _allowed_keys(error.schema)][:1]
    where = f"datasets.{dataset}.{section}" if override and _has_path(override, probe) else section
    raise UserError(format_error(error, where))



# -- sections as dataclasses ----------------------------------------------------------------------
def schema_defaults(schema: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The section the schema makes of an empty one: every key with a ``default:``, filled."""
    return validate({}, schema)


def config_key(f: dataclasses.Field) -> str:
    """The config key of a section dataclass's field: its name, or its ``metadata["key"]`` where
    the key is no Python name (a grid point's ``lambda`` is the field ``lambda_``)."""
    return f.metadata.get("key", f.name)


@functools.cache
def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Config key → (field, resolved type) of a section dataclass (cached: a grid resolves one
    point per job while the workflow is parsed)."""
    hints = typing.get_type_hints(cls)
    return {config_key(f): (f, hints[f.name]) for f in dataclasses.fields(cls)}


def from_section(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """A frozen section dataclass from a config mapping (a validated section, or part of one).

    Missing keys take the dataclass's defaults; a field whose type is itself a dataclass
    (``SvmConfig.admm``) is built from its sub-mapping, and so is each entry of a ``dict[str, E]``
    field of dataclasses ``E`` (``LinearConfig.embeddings``); a ``tuple`` field takes a list. Values
    are kept as given otherwise (``4`` stays an int), so that ``to_section`` gives back the
    mapping the store's provenance records. Keys are the fields' :func:`config_key`.

    Raises
    ------
    UserError
        An unknown key, named with its path and the nearest valid key.
    """
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise UserError(f"{where}: {_show(values)} is not a mapping of settings")
    fields = _fields(cls)
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise UserError(f"{where}.{key}: unknown key; " + _choices(sorted(fields), key))
        f, kind = fields[key]
        if dataclasses.is_dataclass(kind):
            value = from_section(kind, value or {}, f"{where}.{key}")
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)
        elif _entry_class(kind) is not None and isinstance(value, Mapping):
            value = {name: from_section(_entry_class(kind), entry or {}, f"{where}.{key}.{name}")
                     for name, entry in value.items()}
        out[f.name] = value
    return cls(**out)


def _entry_class(kind: Any) -> type | None:
    """``E`` of a ``dict[str, E]`` field whose entries are dataclasses (``linear.embeddings``:
    name → entry), else None."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return args[1]
    return None


def to_section(instance: Any) -> dict[str, Any]:
    """A section dataclass as the plain mapping of the config: its :func:`config_key`s, tuples
    as lists, nested dataclasses and mappings as dicts (copies: the result shares nothing)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {config_key(f): plain(getattr(value, f.name))
                    for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(instance)


def dataclass_defaults(cls: type) -> dict[str, Any]:
    """The defaults of a section dataclass as a config mapping (:func:`to_section` of ``cls()``)."""
    return to_section(cls())
