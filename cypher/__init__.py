"""The investigators' Cypher library: one parameterised query per ``investigate/*.cypher`` file.

Each file opens with a header comment block::

    // name: guarantee_chain
    // purpose: Customers guaranteed by $customer_id directly or through a chain ...
    //   (a line without a "key:" continues the previous key)
    // params: customer_id (string, C000001), max_hops (int, 3, default 3),
    //   start_from (date?, 2024-01-01)
    // columns: customer_id, hops, ...
    // example: graphkit cypher run guarantee_chain --param customer_id=C000001 ...

A parameter is ``name (type, example)``, with ``, default VALUE`` before the closing parenthesis
when it has one. Types are ``string``, ``int``, ``float``, ``bool``, ``date``, ``datetime``; a
trailing ``?`` marks a parameter that may be left out (it is passed as null, which
``default null`` says explicitly). Every query takes ``as_of (date?, ..., default null)``: null
reads the current graph, a date the graph as it stood at the end of that date (the history
``graphkit load`` keeps, :mod:`graphkit.store.neo4j_history`). A default is a
literal (``default 10``) or a key of graphkit's run configuration (``default flows.max_hops``),
so the query uses the same window and limits as the analysis: :func:`default_values` resolves
them against a configuration mapping (``Config().to_dict()``, or a run's), and only parameters
without a default are required from the caller. The files are package data,
read with :mod:`importlib.resources`, so the library works from a wheel and from a checkout.
``draw/<name>.cypher`` holds, for some queries, a companion with the same header that returns
paths for Neo4j Browser to draw (:func:`load_drawing`). ``schema.cypher`` is the generated
constraint script
(see :func:`graphkit.store.neo4j.schema_cypher`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.resources import files
from typing import Any

__all__ = [
    "PARAM_TYPES",
    "QueryError",
    "QueryInfo",
    "QueryParam",
    "convert_params",
    "default_values",
    "list_queries",
    "load_drawing",
    "load_query",
    "schema_text",
]

_HEADER_LINE = re.compile(r"^//\s?(?:(\w+):\s*)?(.*)$")
_PARAM = re.compile(r"(\w+)\s*\(\s*(\w+)(\?)?\s*,\s*([^,)]*?)\s*(?:,\s*default\s+([^,)]*?)\s*)?\)")
_CONFIG_KEY = re.compile(r"^([a-z_]+)\.([a-z_]+)$")
_HEADER_KEYS = ("name", "purpose", "params", "columns", "example")


class QueryError(ValueError):
    """An unknown query, a malformed header, or parameters that do not fit the header."""


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


PARAM_TYPES: dict[str, Any] = {
    "string": str,
    "int": int,
    "float": float,
    "bool": _parse_bool,
    "date": lambda text: date.fromisoformat(text.strip()),
    "datetime": _parse_datetime,
}


@dataclass(frozen=True)
class QueryParam:
    """One ``$parameter`` of a query: its type (a key of :data:`PARAM_TYPES`), an example and,
    when it has one, its default (a literal, or a ``section.key`` of the run configuration)."""

    name: str
    type: str
    example: str
    optional: bool = False
    default: str | None = None


@dataclass(frozen=True)
class QueryInfo:
    """A library query: its Cypher text and the header describing it."""

    name: str
    text: str
    purpose: str
    params: tuple[QueryParam, ...]
    columns: tuple[str, ...]
    example: str


def _directory() -> Any:
    return files(__name__) / "investigate"


def _parse(name: str, text: str) -> QueryInfo:
    header: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        match = _HEADER_LINE.match(line)
        assert match is not None
        key, value = match.group(1), match.group(2).strip()
        if key in _HEADER_KEYS:
            current = key
            header[key] = value
        elif current is not None and (value or key):
            header[current] += " " + (f"{key}: {value}" if key else value)
    missing = [k for k in _HEADER_KEYS if k not in header]
    if missing:
        raise QueryError(f"{name}.cypher: header lacks {', '.join(missing)}")
    if header["name"] != name:
        raise QueryError(f"{name}.cypher: header names it {header['name']!r}")
    params = tuple(
        QueryParam(m.group(1), m.group(2), m.group(4).strip(), bool(m.group(3)), m.group(5))
        for m in _PARAM.finditer(header["params"])
    )
    for param in params:
        if param.type not in PARAM_TYPES:
            raise QueryError(f"{name}.cypher: parameter {param.name} has unknown type {param.type}")
        if param.default == "null" and not param.optional:
            raise QueryError(f"{name}.cypher: {param.name} defaults to null but is not optional")
    columns = tuple(c.strip() for c in header["columns"].split(",") if c.strip())
    return QueryInfo(name, text, header["purpose"], params, columns, header["example"])


def list_queries() -> list[QueryInfo]:
    """Every query of the library, by name."""
    names = sorted(
        entry.name.removesuffix(".cypher")
        for entry in _directory().iterdir()
        if entry.name.endswith(".cypher")
    )
    return [load_query(name) for name in names]


def load_query(name: str) -> QueryInfo:
    """The query ``name`` (file ``investigate/<name>.cypher``); raises :class:`QueryError`."""
    if not re.fullmatch(r"\w+", name):
        raise QueryError(f"no query named {name!r}")
    resource = _directory() / f"{name}.cypher"
    if not resource.is_file():
        known = ", ".join(q.name for q in list_queries())
        raise QueryError(f"no query named {name!r} (known: {known})")
    return _parse(name, resource.read_text(encoding="utf-8"))


def load_drawing(name: str) -> QueryInfo | None:
    """The drawing companion of query ``name`` (file ``draw/<name>.cypher``), or ``None``."""
    if not re.fullmatch(r"\w+", name):
        raise QueryError(f"no query named {name!r}")
    resource = files(__name__) / "draw" / f"{name}.cypher"
    if not resource.is_file():
        return None
    return _parse(name, resource.read_text(encoding="utf-8"))


def convert_params(query: QueryInfo, raw: dict[str, str]) -> dict[str, Any]:
    """Typed parameters for ``query`` from ``key=value`` text, by the header's types.

    Unknown names and missing required parameters are errors; optional ones default to null.
    """
    declared = {p.name: p for p in query.params}
    unknown = sorted(set(raw) - set(declared))
    if unknown:
        raise QueryError(
            f"{query.name} has no parameter {', '.join(unknown)} "
            f"(parameters: {', '.join(declared) or 'none'})"
        )
    missing = sorted(n for n, p in declared.items() if n not in raw and not p.optional)
    if missing:
        raise QueryError(f"{query.name} needs --param {', '.join(f'{n}=...' for n in missing)}")
    values: dict[str, Any] = {}
    for name, param in declared.items():
        if name not in raw:
            values[name] = None
            continue
        try:
            values[name] = PARAM_TYPES[param.type](raw[name])
        except ValueError as exc:
            raise QueryError(f"--param {name}: expected {param.type}, got {raw[name]!r}") from exc
    return values


def default_values(query: QueryInfo, config: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The defaults of ``query``'s parameters as ``key=value`` text, for :func:`convert_params`.

    Args:
        query: A library query.
        config: The run configuration as a mapping of sections (``Config().to_dict()`` for
            graphkit's defaults, or the ``parameters`` of a run's manifest); a default written as
            ``section.key`` is read from it.

    Raises:
        QueryError: A default names a configuration key that ``config`` lacks.
    """
    values: dict[str, str] = {}
    for param in query.params:
        if param.default is None or param.default == "null":
            continue
        key = _CONFIG_KEY.match(param.default)
        if key is None:
            values[param.name] = param.default
            continue
        section, name = key.groups()
        try:
            value = config[section][name]
        except (KeyError, TypeError):
            raise QueryError(
                f"{query.name}.cypher: the default of {param.name} is the configuration key "
                f"{param.default}, which the configuration lacks"
            ) from None
        values[param.name] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def schema_text() -> str:
    """The committed ``schema.cypher``."""
    return (files(__name__) / "schema.cypher").read_text(encoding="utf-8")
