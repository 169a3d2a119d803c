"""The investigators' Cypher library: one parameterised query per ``investigate/*.cypher`` file.

Each file opens with a header comment block::

    // name: guarantee_chain
    // purpose: Customers guaranteed by $customer_id directly or through a chain ...
    //   (a line without a "key:" continues the previous key)
    // params: customer_id (string, C000001), max_hops (int, 3), start_from (date?, 2024-01-01)
    // columns: customer_id, hops, ...
    // example: graphkit cypher run guarantee_chain --param customer_id=C000001 ...

Parameter types are ``string``, ``int``, ``float``, ``bool``, ``date``, ``datetime``; a trailing
``?`` marks a parameter that may be left out (it is passed as null). The files are package data,
read with :mod:`importlib.resources`, so the library works from a wheel and from a checkout.
``schema.cypher`` is the generated constraint script
(see :func:`graphkit.store.neo4j.schema_cypher`).
"""

from __future__ import annotations

import re
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
    "list_queries",
    "load_query",
    "schema_text",
]

_HEADER_LINE = re.compile(r"^//\s?(?:(\w+):\s*)?(.*)$")
_PARAM = re.compile(r"(\w+)\s*\(\s*(\w+)(\?)?\s*,\s*([^)]*)\)")
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
    """One ``$parameter`` of a query: its type (a key of :data:`PARAM_TYPES`) and an example."""

    name: str
    type: str
    example: str
    optional: bool = False


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
        QueryParam(m.group(1), m.group(2), m.group(4).strip(), bool(m.group(3)))
        for m in _PARAM.finditer(header["params"])
    )
    for param in params:
        if param.type not in PARAM_TYPES:
            raise QueryError(f"{name}.cypher: parameter {param.name} has unknown type {param.type}")
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


def schema_text() -> str:
    """The committed ``schema.cypher``."""
    return (files(__name__) / "schema.cypher").read_text(encoding="utf-8")
