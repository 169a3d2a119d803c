"""The service's append-only event log: checksummed records in numbered segment files.

A record is one line ``<crc32 as 8 hex digits> <json>\\n``; the JSON holds ``seq`` (1, 2, ...
across all segments) and either ``event`` (the event as received) or ``reload`` (a newer run
swapped in at that point). A process killed mid-write leaves at most one incomplete or
checksum-failing record at the end of the newest segment: :meth:`EventLog.open` finds the last
good record, truncates the torn tail and appends after it. A bad record *followed* by good ones
is not a torn tail but damage, and is refused (:class:`LogCorrupt`) rather than skipped.

Segments (``events-000001.log``, ...) start anew at each checkpoint, so a restart replays only
the segments after it; older segments are kept for re-applying events on top of a newer run
(:mod:`graphkit.serve.service`) and removed once a run covers them.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import from_json, to_json

from graphkit.atomic import fsync_dir

SEGMENT_PATTERN = re.compile(r"^events-(\d{6,})\.log$")


class LogCorrupt(RuntimeError):
    """A segment damaged before its tail: not something a crash can leave; needs an operator."""


class LogUnwritable(OSError):
    """The log cannot be appended to (disk full, read-only or missing state directory).

    ``strerror`` is the system's reason without the path, so it may be shown to clients."""


@dataclass(frozen=True)
class Record:
    seq: int
    segment: int
    body: dict[str, Any]


def segment_name(number: int) -> str:
    return f"events-{number:06d}.log"


def encode(body: dict[str, Any]) -> bytes:
    """One record line: checksum, space, compact JSON (UTF-8; NaN and infinities as the
    ``NaN`` / ``Infinity`` constants the reader accepts, as :mod:`json` writes them), newline.

    pydantic-core's serialiser: about a third of the stdlib's CPU on the event path."""
    payload = to_json(body, inf_nan_mode="constants")
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


def encode_event(event: dict[str, Any]) -> bytes:
    """An event's JSON as :func:`encode` writes it inside a record (done once per event when
    its request is read, on the loop, so the committer's thread only writes and fsyncs)."""
    return to_json(event, inf_nan_mode="constants")


def event_record(seq: int, event_json: bytes) -> bytes:
    """The record line of an event serialised by :func:`encode_event`: the same bytes as
    ``encode({"seq": seq, "event": event})``."""
    payload = b'{"seq":%d,"event":%s}' % (seq, event_json)
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


def _decode(line: bytes) -> dict[str, Any] | None:
    """The record of a complete line, or None when its checksum or JSON is bad."""
    if len(line) < 10 or line[8:9] != b" " or not line.endswith(b"\n"):
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        body = from_json(payload)
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("seq"), int) else None


def scan_segment(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The good records of a segment and the byte length they span.

    Stops at the first bad record; raises :class:`LogCorrupt` when a good record follows it.
    Cost: O(segment bytes).
    """
    records: list[dict[str, Any]] = []
    good_end = 0
    data = path.read_bytes()
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        line = data[position:] if end < 0 else data[position : end + 1]
        body = _decode(line)
        if body is None:
            rest = data[position + len(line) :]
            if any(_decode(x + b"\n") for x in rest.split(b"\n") if x):
                raise LogCorrupt(
                    f"{path}: record at byte {position} is damaged but later records are "
                    "intact; this is not a torn tail from a crash (restore the state directory "
                    "from a backup or remove the segment deliberately)"
                )
            break
        records.append(body)
        position += len(line)
        good_end = position
    return records, good_end


class EventLog:
    """Segments in ``directory``; one writer (the service's committer) appends and fsyncs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.segment = 0
        self.last_seq = 0
        self._fd: int | None = None
        self._size = 0

    def segments(self) -> list[int]:
        """Segment numbers present, ascending."""
        if not self.directory.is_dir():
            return []
        found = (SEGMENT_PATTERN.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def records(self, first_segment: int = 1, after_seq: int = 0) -> Iterator[Record]:
        """Good records of segments ``>= first_segment`` with ``seq > after_seq``, in order."""
        for number in self.segments():
            if number < first_segment:
                continue
            bodies, _ = scan_segment(self.directory / segment_name(number))
            for body in bodies:
                if body["seq"] > after_seq:
                    yield Record(body["seq"], number, body)

    def open(self) -> int:
        """Make the newest segment appendable (torn tail cut off); returns the last seq.

        Raises :class:`LogUnwritable` when the directory or segment cannot be written: the
        caller keeps serving reads and refuses events.
        """
        numbers = self.segments()
        self.segment = numbers[-1] if numbers else 1
        path = self.directory / segment_name(self.segment)
        last = 0
        for number in numbers:
            bodies, good_end = scan_segment(self.directory / segment_name(number))
            if bodies:
                last = bodies[-1]["seq"]
            if number == self.segment and path.exists() and good_end < path.stat().st_size:
                try:
                    _truncate(path, good_end)
                except OSError as exc:
                    raise LogUnwritable(exc.errno, exc.strerror) from None
        self.last_seq = max(self.last_seq, last)
        self._reopen()
        return self.last_seq

    def _reopen(self) -> None:
        self.close()
        path = self.directory / segment_name(self.segment)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fsync_dir(self.directory)
        except OSError as exc:
            raise LogUnwritable(exc.errno, exc.strerror) from None
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def append(self, bodies: list[dict[str, Any]]) -> list[int]:
        """Write records for ``bodies`` (each given its seq) and fsync once; returns the seqs.

        All or nothing: on a failed write or fsync the segment is cut back to its previous
        length and :class:`LogUnwritable` is raised; the seqs are not consumed.
        """
        seqs = list(range(self.last_seq + 1, self.last_seq + 1 + len(bodies)))
        data = b"".join(encode({"seq": s, **b}) for s, b in zip(seqs, bodies, strict=True))
        self.write(data, seqs[-1])
        return seqs

    def write(self, data: bytes, last_seq: int) -> None:
        """Write encoded records (numbered on from ``last_seq`` of the log up to ``last_seq``)
        and fsync once, all or nothing as :meth:`append`. No Python work but the system calls,
        which release the GIL: run in a thread, it does not hold the event loop back."""
        if self._fd is None:
            self._reopen()
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError as exc:
            self._undo()
            raise LogUnwritable(exc.errno, exc.strerror) from None
        self._size += len(data)
        self.last_seq = last_seq

    def _undo(self) -> None:
        """Cut a failed write back off; if even that fails, reopen on the next append."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            self.close()

    def rotate(self) -> int:
        """Start the next segment; returns its number (records from now on go there)."""
        self.segment += 1
        self._reopen()
        return self.segment

    def remove_segments(self, numbers: list[int]) -> None:
        for number in numbers:
            (self.directory / segment_name(number)).unlink(missing_ok=True)
        fsync_dir(self.directory)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _truncate(path: Path, length: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(length)
        fh.flush()
        os.fsync(fh.fileno())
