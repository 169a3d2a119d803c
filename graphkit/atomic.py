"""Atomic publication of directories and files.

A run or export directory appears whole or not at all: it is written under a hidden temporary
sibling and renamed into place. A replaced directory is first renamed aside, so a crash at any
point leaves either the old or the new directory under the final name (plus, at worst, hidden
leftovers that the next run removes).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".graphkit-tmp-"
OLD_PREFIX = ".graphkit-old-"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new, renamed or removed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_leftovers(parent: Path, name: str) -> None:
    """Remove temporary and replaced siblings of ``parent/name`` left by a killed writer."""
    if not parent.is_dir():
        return
    target = parent / name
    if not target.exists():
        replaced = sorted(parent.glob(f"{OLD_PREFIX}{name}.*"))
        if replaced:
            replaced[0].rename(target)
    for entry in parent.iterdir():
        if entry.name.startswith((f"{TMP_PREFIX}{name}.", f"{OLD_PREFIX}{name}.")):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(
                missing_ok=True
            )


@contextlib.contextmanager
def atomic_directory(target: Path | str) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` when the block succeeds.

    On an exception the temporary directory is removed and ``target`` is untouched.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target.parent, target.name)
    tmp = target.parent / f"{TMP_PREFIX}{target.name}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        publish_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def publish_directory(tmp: Path, target: Path) -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing any previous one.

    Where the kernel can swap the two in one step there is no instant without ``target``;
    elsewhere the old one is renamed aside first and :func:`clean_leftovers` restores it if the
    writer dies between the two renames.
    """
    if target.is_dir() and not target.is_symlink() and _exchange(tmp, target):
        fsync_dir(target.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = None
    if target.exists() or target.is_symlink():
        old = target.parent / f"{OLD_PREFIX}{target.name}.{uuid.uuid4().hex[:8]}"
        target.rename(old)
    tmp.rename(target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(target: Path | str) -> Iterator[BinaryIO]:
    """A binary file that appears at ``target`` whole or not at all: written to a temporary
    sibling, flushed and fsynced when the block ends, then ``os.replace``d over ``target``.
    Streamed, so a large payload (a pickled multi-GB state) needs no second copy in memory.
    If the block raises, ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{TMP_PREFIX}{target.name}.{uuid.uuid4().hex[:8]}"
    try:
        with tmp.open("wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target: Path | str, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and ``os.replace``."""
    with atomic_file(target) as fh:
        fh.write(data)


def atomic_symlink(link: Path | str, points_to: str) -> None:
    """Point ``link`` at ``points_to`` atomically (a new symlink renamed over the old)."""
    link = Path(link)
    tmp = link.parent / f"{TMP_PREFIX}{link.name}.{uuid.uuid4().hex[:8]}"
    os.symlink(points_to, tmp)
    os.replace(tmp, link)
