"""The snapshot rows' keys and row digests, kept as columns for the duplicate check.

Every event is checked against the rows already applied (same key and same values: a repeat,
a no-op; same key, other values: rejected). For the snapshot's rows a dict of key string ->
digest cost about 127 bytes a row (the key string, an int, the dict's slot): 650 MB of the
1M-node state's 4.6 GB. :class:`SnapshotKeys` keeps, per table, the rows' keys in one polars
string column, their row digests in a uint64 array and a 32-bit CRC of each key in an
``array('I')``, all three sorted by the CRC: about 45 bytes a row.

A look-up first reads one bit of a bitmap indexed by the CRC's low bits (16 bits per row: a
new key finds its bit set with probability about 6%), then, only if set, binary-searches the
CRC (``bisect`` in C over the array: about 0.6 us at 1.4M rows) and compares the key itself for
each row with the same CRC (exact: a CRC match alone never counts as a hit). A new key costs
the CRC and the bit, about 0.15 us, against 30-100 ns for the dict; a new key meets a CRC
match with probability about rows / 2^32, so the string comparison is paid almost only by
real repeats.
"""

from __future__ import annotations

import zlib
from array import array
from bisect import bisect_left
from typing import Any

import numpy as np
import polars as pl

__all__ = ["SnapshotKeys", "crc"]


def crc(key: str) -> int:
    """The 32-bit CRC of a key's UTF-8 bytes (``zlib.crc32``: the same in every process, so
    a checkpoint's arrays stay valid)."""
    return zlib.crc32(key.encode())


class _Table:
    __slots__ = ("bits", "crcs", "digests", "keys", "mask", "prefix")

    def __init__(self, crcs: np.ndarray, digests: np.ndarray, keys: pl.Series, prefix: str) -> None:
        self.crcs, self.digests, self.keys = array("I", crcs.tobytes()), digests, keys
        self.prefix = prefix
        size = 1 << max(6, int(16 * len(crcs) - 1).bit_length())  # bits: 16+ per row
        self.mask = size - 1
        bits = np.zeros(size // 8, dtype=np.uint8)
        slots = crcs & np.uint32(self.mask)
        np.bitwise_or.at(bits, slots >> 3, (1 << (slots & 7)).astype(np.uint8))
        self.bits = bytearray(bits.tobytes())


class SnapshotKeys:
    """Per table, the snapshot rows' keys -> row digests (``polars.DataFrame.hash_rows``).

    Cost: :meth:`add` O(rows log rows) per table, once at start-up; :meth:`get` O(log rows)
    (a ``bisect`` over 32-bit ints) plus a string comparison per row sharing the key's CRC.
    """

    def __init__(self) -> None:
        self.tables: dict[str, _Table] = {}

    def __len__(self) -> int:
        return sum(len(t.crcs) for t in self.tables.values())

    def add(self, table: str, keys: list[str], digests: list[int], prefix: str = "") -> None:
        """Keep ``keys`` (distinct, not yet kept for ``table``) and their row ``digests``.

        ``prefix``: what every key of the table starts with (the event kind and a colon): kept
        once, not per row, so that most keys fit the 12 bytes a polars string view holds inline
        (16 bytes a key instead of 16 plus its length)."""
        if not keys:
            return
        if table in self.tables:  # one batch per table at start-up; a second one merges
            old = self.tables[table]
            keys = [*(old.prefix + k for k in old.keys.to_list()), *keys]
            digests = [*old.digests.tolist(), *digests]
        if not all(k.startswith(prefix) for k in keys):
            prefix = ""
        crcs = np.fromiter((crc(k) for k in keys), dtype=np.uint32, count=len(keys))
        order = np.argsort(crcs, kind="stable")
        cut = len(prefix)
        self.tables[table] = _Table(
            crcs[order],
            np.asarray(digests, dtype=np.uint64)[order],
            pl.Series([k[cut:] for k in keys], dtype=pl.String).gather(order),
            prefix,
        )

    def get(self, table: str, key: str) -> int | None:
        """The digest of the snapshot row of ``table`` with ``key``, else None."""
        found = self.tables.get(table)
        if found is None:
            return None
        h = crc(key)
        slot = h & found.mask
        if not found.bits[slot >> 3] >> (slot & 7) & 1:
            return None
        crcs = found.crcs
        at = bisect_left(crcs, h)
        prefix = found.prefix
        if not key.startswith(prefix):
            return None
        rest = key[len(prefix) :]
        while at < len(crcs) and crcs[at] == h:
            if found.keys[at] == rest:
                return int(found.digests[at])
            at += 1
        return None

    def items(self) -> Any:
        """(table, key, digest) of every row kept. O(rows)."""
        for table, found in self.tables.items():
            yield from (
                (table, found.prefix + k, int(d))
                for k, d in zip(found.keys.to_list(), found.digests.tolist(), strict=True)
            )
