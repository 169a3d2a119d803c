"""Control totals of an input directory: its ``_control.csv`` (or ``.json``) against the tables.

The file format and the comparison are :mod:`graphkit.control`'s; this module applies them to an
input directory as :func:`loaders.sources.read_input` reads it. The control file must list every
table file of the directory, each with its data rows, the sum of its amount column when it has
one, and optionally its SHA-256; any difference is an issue of the control file, naming the table
file and both figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from graphkit.control import (
    CONTROL_CSV,
    CONTROL_JSON,
    ControlProblem,
    Figures,
    amount_sum,
    compare,
    control_files,
    file_sha256,
    read_control,
)
from loaders.issues import IssueLog
from loaders.readers import ReadTable

# check: verify a control file when one is present; require: also refuse a directory without
# one; ignore: do not look (to write one).
ControlPolicy = Literal["check", "require", "ignore"]


def check_control(
    directory: Path,
    found: dict[str, Path],
    read: dict[str, ReadTable],
    log: IssueLog,
    policy: ControlPolicy = "check",
) -> None:
    """Compare ``directory``'s control file with the table files ``found`` there, as ``read``.

    A table that was found but could not be read (too large, unreadable) is not compared: its own
    issue says why. Reports: both control forms present, a missing control file under
    ``require``, problems of the control file itself, a listed file that is absent or not a table
    file, a table file that is not listed, and every mismatch of rows, amount sum or sha256.
    """
    if policy == "ignore":
        return
    paths = control_files(directory)
    if len(paths) > 1:
        log.add(CONTROL_CSV, None, None, f"both {CONTROL_CSV} and {CONTROL_JSON} exist; keep one")
        return
    if not paths:
        if policy == "require":
            log.add(
                CONTROL_CSV,
                None,
                None,
                f"a control file is required (--require-control) but neither {CONTROL_CSV} nor "
                f"{CONTROL_JSON} exists",
            )
        return
    path = paths[0]
    entries, problems = read_control(path)
    by_file = {p.name: name for name, p in found.items()}
    for entry in entries:
        name = by_file.get(entry.file)
        if name is None:
            what = "is not in the directory"
            if (directory / entry.file).is_file():
                what = "is not a table file of the input contract (NAME.csv or NAME.parquet)"
            problems.append(ControlProblem(entry.row, "file", f"{entry.file} {what}"))
            continue
        if name not in read:
            continue
        table = read[name]
        sha = file_sha256(found[name]) if entry.sha256 is not None else None
        problems += compare(entry, Figures(table.records, amount_sum(table.frame), sha))
    # A control file that could not be read as a whole lists nothing; saying so per table would
    # only repeat its own problem.
    if not any(p.row is None for p in problems):
        listed = {entry.file for entry in entries}
        problems += [
            ControlProblem(
                None, "file", f"{file} is not listed; the control file must list every table file"
            )
            for file in by_file
            if file not in listed
        ]
    for row, column, message in problems:
        log.add(path.name, row, column, message)
