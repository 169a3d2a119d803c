"""Atomic publication: a directory appears whole or not at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from graphkit.atomic import atomic_directory, atomic_symlink, clean_leftovers


def test_failed_block_leaves_previous_directory(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("new")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in target.iterdir()] == ["a.txt"]


def test_replacement_is_whole(tmp_path: Path) -> None:
    target = tmp_path / "run"
    for content in ("one", "two"):
        with atomic_directory(target) as tmp:
            (tmp / f"{content}.txt").write_text(content)
    assert [p.name for p in target.iterdir()] == ["two.txt"]


def test_killed_writer_leaves_old_and_next_run_cleans(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with atomic_directory(target) as tmp:
        (tmp / "old.txt").write_text("old")
    code = (
        "import sys, time\n"
        "from graphkit.atomic import atomic_directory\n"
        f"with atomic_directory({str(target)!r}) as tmp:\n"
        "    (tmp / 'partial.txt').write_text('x')\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert len(list(tmp_path.iterdir())) == 2
    clean_leftovers(tmp_path, "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_restores_replaced_directory_when_target_missing(tmp_path: Path) -> None:
    old = tmp_path / ".graphkit-old-run.abcd1234"
    old.mkdir()
    (old / "x").write_text("1")
    clean_leftovers(tmp_path, "run")
    assert (tmp_path / "run" / "x").read_text() == "1"


def test_symlink_replaced_atomically(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    atomic_symlink(tmp_path / "latest", "a")
    atomic_symlink(tmp_path / "latest", "b")
    assert os.readlink(tmp_path / "latest") == "b"
