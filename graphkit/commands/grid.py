"""Parameter grids on the command line: ``"0.2:2.0:0.2"`` ranges and ``"1,7,30"`` lists.

Shared by every ``graphkit sweep`` command so that grids are written the same way everywhere.
Parsing text is the command line's job: the sweeps in :mod:`graphkit.analytics` take lists of
floats and dicts of layer weights.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping


def parse_grid(spec: str) -> list[float]:
    """Values ``start, start + step, ...`` up to and including ``stop``: ``"0.2:2.0:0.2"``.

    ``"a:b"`` uses step 1. Floating-point drift is removed by rounding each value to 12
    significant decimals, so ``"0.1:0.3:0.1"`` gives exactly ``[0.1, 0.2, 0.3]``.
    Raises :class:`ValueError` naming the spec when it is malformed or the step does not move
    from start towards stop.
    """
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{spec!r}: a grid is start:stop or start:stop:step")
    try:
        start, stop = float(parts[0]), float(parts[1])
        step = float(parts[2]) if len(parts) == 3 else 1.0
    except ValueError as exc:
        raise ValueError(f"{spec!r}: grid bounds and step must be numbers") from exc
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise ValueError(f"{spec!r}: grid bounds and step must be finite")
    if step == 0 or (stop - start) * step < 0:
        raise ValueError(f"{spec!r}: step must be non-zero and move from start to stop")
    count = math.floor((stop - start) / step + 1e-9) + 1
    return [round(start + i * step, 12) for i in range(count)]


def parse_list(spec: str) -> list[float]:
    """Comma-separated numbers: ``"1,7,30"`` -> ``[1.0, 7.0, 30.0]``."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{spec!r}: expected one or more comma-separated numbers")
    try:
        return [float(item) for item in items]
    except ValueError as exc:
        raise ValueError(f"{spec!r}: expected comma-separated numbers") from exc


def parse_values(spec: str) -> list[float]:
    """A grid (``a:b[:step]``) when ``spec`` contains a colon, otherwise a list (``a,b,c``)."""
    return parse_grid(spec) if ":" in spec else parse_list(spec)


def parse_assignments(spec: str, known: tuple[str, ...] | None = None) -> dict[str, list[float]]:
    """``"guarantee=1,device=0:1:0.5"`` -> ``{"guarantee": [1.0], "device": [0.0, 0.5, 1.0]}``.

    Assignments are separated by commas; a value is a number, a grid ``a:b[:step]``, or several
    numbers joined by ``|``. ``known`` restricts the names (unknown ones raise ValueError).
    """
    result: dict[str, list[float]] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise ValueError(f"{spec!r}: expected name=value pairs, got {item!r}")
        if known is not None and name not in known:
            raise ValueError(f"{spec!r}: unknown name {name!r} (known: {', '.join(known)})")
        value = value.strip()
        result[name] = parse_grid(value) if ":" in value else parse_list(value.replace("|", ","))
    if not result:
        raise ValueError(f"{spec!r}: expected name=value pairs")
    return result


def expand_product(
    base: Mapping[str, float], assignments: Mapping[str, list[float]]
) -> list[dict[str, float]]:
    """Every combination of ``assignments`` over ``base`` (keys absent from it keep base values).

    The order is the row-major product in the order of ``assignments``' keys, so it is stable.
    """
    names = list(assignments)
    combos = itertools.product(*(assignments[n] for n in names))
    return [{**base, **dict(zip(names, values, strict=True))} for values in combos]
