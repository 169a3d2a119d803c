"""Exports: full and --since exports list exactly what changed; publication is atomic (a killed
export leaves the previous ``latest`` whole); exit codes a scheduler can act on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from graphkit.export import (
    EXPORT_MANIFEST,
    ExportInputError,
    changes,
    export_run,
    latest_export,
    parse_formats,
)

REPO = Path(__file__).resolve().parents[1]


def make_run(
    path: Path,
    run_id: str,
    clusters: dict[int, tuple[str, float]],
    customers: dict[str, tuple[str, float | None]],
    score_tiers: dict[str, str] | None = None,
) -> Path:
    """A run directory with manifest, cluster_risk, scores, customer_alerts and alerts.csv.

    ``customers`` maps id -> (final alert tier, risk score); ``score_tiers`` overrides the
    score-only tier in scores.parquet (default: the final tier).
    """
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"run_id": run_id}))
    pl.DataFrame(
        {
            "cluster_id": list(clusters),
            "size": [3] * len(clusters),
            "risk_score": [r for _, r in clusters.values()],
            "tier": [t for t, _ in clusters.values()],
        },
        schema_overrides={"cluster_id": pl.Int64},
    ).write_parquet(path / "cluster_risk.parquet")
    ids = list(customers)
    risks = [r for _, r in customers.values()]
    tiers = [t for t, _ in customers.values()]
    pl.DataFrame(
        {
            "customer_id": ids,
            "contagion_score": risks,
            "gnn_score": risks,
            "risk_score": risks,
            "tier": [(score_tiers or {}).get(c, t) for c, t in zip(ids, tiers, strict=True)],
        },
        schema_overrides={
            "risk_score": pl.Float64,
            "contagion_score": pl.Float64,
            "gnn_score": pl.Float64,
        },
    ).write_parquet(path / "scores.parquet")
    pl.DataFrame(
        {"customer_id": ids, "tier": tiers, "risk_score": risks},
        schema_overrides={"risk_score": pl.Float64},
    ).write_parquet(path / "customer_alerts.parquet")
    alerted = [c for c, t in zip(ids, tiers, strict=True) if t != "green"]
    pl.DataFrame(
        {
            "customer_id": alerted,
            "line_id": [f"{c}-L1" for c in alerted],
            "tier": [customers[c][0] for c in alerted],
            "response": ["x"] * len(alerted),
            "reasons": ["r; s"] * len(alerted),
            "recommended_limit": [100.0] * len(alerted),
        },
        schema_overrides={"customer_id": pl.String, "line_id": pl.String, "tier": pl.String},
    ).write_csv(path / "alerts.csv")
    return path


PREV_CLUSTERS = {
    1: ("orange", 0.70),
    2: ("red", 0.90),
    3: ("green", 0.10),
    4: ("yellow", 0.40),
    5: ("yellow", 0.40),
}
CUR_CLUSTERS = {
    1: ("orange", 0.70),  # unchanged
    2: ("orange", 0.90),  # tier changed
    4: ("yellow", 0.42),  # risk moved 0.02 > epsilon
    5: ("yellow", 0.405),  # risk moved 0.005 <= epsilon: not a change
    6: ("red", 0.95),  # new
}  # 3 removed
PREV_CUSTOMERS = {
    "a": ("green", 0.1),
    "b": ("yellow", 0.35),
    "c": ("orange", 0.5),
    "d": ("red", 0.9),
    "e": ("green", None),
    "f": ("orange", 0.2),
}
CUR_CUSTOMERS = {
    "a": ("green", 0.1),  # unchanged
    "b": ("green", 0.35),  # tier changed (rule stopped firing; same score)
    "c": ("orange", 0.52),  # risk moved 0.02
    "e": ("green", 0.05),  # a score appeared
    "f": ("orange", 0.205),  # 0.005: not a change
    "g": ("yellow", 0.3),  # new
}  # d removed


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    prev = make_run(tmp_path / "run1", "run-1", PREV_CLUSTERS, PREV_CUSTOMERS)
    cur = make_run(tmp_path / "run2", "run-2", CUR_CLUSTERS, CUR_CUSTOMERS)
    return prev, cur


def test_full_export_in_every_format(tmp_path: Path, two_runs: tuple[Path, Path]) -> None:
    _, cur = two_runs
    result = export_run(cur, tmp_path / "out", "parquet,csv,json")
    assert result.directory == tmp_path / "out" / "run-2"
    assert os.readlink(tmp_path / "out" / "latest") == "run-2"
    assert latest_export(tmp_path / "out") == (tmp_path / "out" / "run-2").resolve()
    for name in ("cluster_risk", "scores", "customer_alerts", "alerts"):
        for fmt in ("parquet", "csv", "json"):
            assert (result.directory / f"{name}.{fmt}").is_file()
    original = pl.read_parquet(cur / "cluster_risk.parquet")
    assert pl.read_parquet(result.directory / "cluster_risk.parquet").equals(original)
    assert pl.read_json(result.directory / "cluster_risk.json").equals(original)
    assert sorted(pl.read_csv(result.directory / "alerts.csv").get_column("customer_id")) == [
        "c",
        "f",
        "g",
    ]
    summary = json.loads((result.directory / EXPORT_MANIFEST).read_text())
    assert summary["since_run_id"] is None and summary["rows"]["scores"] == 6
    assert result.changed is None


def test_since_lists_exactly_the_changed_clusters_and_customers(
    tmp_path: Path, two_runs: tuple[Path, Path]
) -> None:
    prev, cur = two_runs
    result = export_run(cur, tmp_path / "out", ("parquet", "csv"), since=prev)
    clusters = pl.read_parquet(result.directory / "cluster_risk.parquet")
    assert dict(clusters.select("cluster_id", "change").iter_rows()) == {
        2: "tier",
        3: "removed",
        4: "risk",
        6: "new",
    }
    removed = clusters.filter(pl.col("cluster_id") == 3).row(0, named=True)
    assert (removed["previous_tier"], removed["previous_risk_score"], removed["tier"]) == (
        "green",
        0.1,
        None,
    )
    expected = {"b": "tier", "c": "risk", "d": "removed", "e": "risk", "g": "new"}
    for table in ("scores", "customer_alerts"):
        frame = pl.read_parquet(result.directory / f"{table}.parquet")
        assert dict(frame.select("customer_id", "change").iter_rows()) == expected
    alerts = pl.read_csv(result.directory / "alerts.csv")
    # Alert rows of changed customers that still have alerts (b went green, d is gone).
    assert sorted(alerts.get_column("customer_id")) == ["c", "g"]
    assert (result.changed_clusters, result.changed_customers, result.changed) == (4, 5, 9)
    summary = json.loads((result.directory / EXPORT_MANIFEST).read_text())
    assert summary["changed"] == {"customers": 5, "clusters": 4}
    assert summary["since_run_id"] == "run-1"


def test_since_uses_the_final_alert_tier_not_the_score_tier(tmp_path: Path) -> None:
    prev = make_run(tmp_path / "p", "p", {}, {"a": ("orange", 0.2)}, {"a": "green"})
    cur = make_run(tmp_path / "c", "c", {}, {"a": ("green", 0.2)}, {"a": "green"})
    result = export_run(cur, tmp_path / "out", "parquet", since=prev)
    assert pl.read_parquet(result.directory / "scores.parquet").get_column("change").to_list() == [
        "tier"
    ]


def test_since_nothing_changed_is_an_empty_export(
    tmp_path: Path, two_runs: tuple[Path, Path]
) -> None:
    _, cur = two_runs
    again = make_run(tmp_path / "run3", "run-3", CUR_CLUSTERS, CUR_CUSTOMERS)
    result = export_run(again, tmp_path / "out", "csv", since=cur)
    assert result.changed == 0
    assert all(rows == 0 for rows in result.rows.values())
    assert os.readlink(tmp_path / "out" / "latest") == "run-3"


STATES = st.dictionaries(
    st.integers(0, 12),
    st.tuples(
        st.sampled_from(["green", "yellow", "orange", "red"]),
        st.one_of(st.none(), st.sampled_from([0.0, 0.1, 0.105, 0.12, 0.5, 0.511, 0.52])),
    ),
    max_size=10,
)


@given(STATES, STATES)
def test_changes_agree_with_brute_force(
    previous: dict[int, tuple[str, float | None]], current: dict[int, tuple[str, float | None]]
) -> None:
    def frame(states: dict[int, tuple[str, float | None]]) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "cluster_id": list(states),
                "tier": [t for t, _ in states.values()],
                "risk_score": [r for _, r in states.values()],
            },
            schema={"cluster_id": pl.Int64, "tier": pl.String, "risk_score": pl.Float64},
        )

    expected = {}
    for key in set(previous) | set(current):
        if key not in previous:
            expected[key] = "new"
        elif key not in current:
            expected[key] = "removed"
        elif previous[key][0] != current[key][0]:
            expected[key] = "tier"
        else:
            a, b = previous[key][1], current[key][1]
            if (a is None) != (b is None) or (a is not None and abs(a - b) > 0.01):
                expected[key] = "risk"
    got = changes(frame(current), frame(previous), "cluster_id", epsilon=0.01)
    assert dict(got.select("cluster_id", "change").iter_rows()) == expected


def test_bad_input_is_refused_before_writing(tmp_path: Path, two_runs: tuple[Path, Path]) -> None:
    prev, cur = two_runs
    out = tmp_path / "out"
    with pytest.raises(ExportInputError, match="does not exist"):
        export_run(tmp_path / "nope", out)
    with pytest.raises(ExportInputError, match=r"no manifest\.json"):
        export_run(tmp_path, out)
    with pytest.raises(ExportInputError, match="does not exist"):
        export_run(cur, out, since=tmp_path / "nope")
    with pytest.raises(ExportInputError, match="--format: xml"):
        export_run(cur, out, "parquet,xml")
    hostile = make_run(tmp_path / "evil", "../../etc", {}, {})
    with pytest.raises(ExportInputError, match="not a safe directory name"):
        export_run(hostile, out)
    (prev / "manifest.json").write_text("{not json")
    with pytest.raises(ExportInputError, match="unreadable manifest"):
        export_run(cur, out, since=prev)
    assert not out.exists()
    assert parse_formats(" CSV, parquet,csv") == ("csv", "parquet")


def test_export_command_exit_codes(tmp_path: Path, two_runs: tuple[Path, Path]) -> None:
    from cli import app

    prev, cur = two_runs
    runner = CliRunner()
    out = tmp_path / "out"
    ok = runner.invoke(app, ["export", str(cur), "--to", str(out), "--since", str(prev)])
    assert ok.exit_code == 0, ok.output
    assert "changed clusters" in ok.stdout
    quiet = runner.invoke(app, ["export", str(cur), "--to", str(out), "--quiet"])
    assert (quiet.exit_code, quiet.stdout) == (0, "")
    missing = runner.invoke(app, ["export", str(tmp_path / "nope"), "--to", str(out), "-q"])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    bad_format = runner.invoke(app, ["export", str(cur), "--to", str(out), "--format", "xls"])
    assert bad_format.exit_code == 2
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    unwritable = runner.invoke(app, ["export", str(cur), "--to", str(blocker), "-q"])
    assert unwritable.exit_code == 1
    assert "previous export is still latest" in unwritable.stderr


# -- a killed export leaves the previous latest whole --------------------------------------------

HOOKED_EXPORT = """
import sys, time
import graphkit.export as ex
import graphkit.atomic

where = sys.argv[3]
if where == "write":
    original = ex._write_frame
    def stalled(*args):
        original(*args)
        print("stalled", flush=True)
        time.sleep(120)
    ex._write_frame = stalled
else:
    original_link = ex.atomic_symlink
    def stalled_link(*args):
        print("stalled", flush=True)
        time.sleep(120)
        original_link(*args)
    ex.atomic_symlink = stalled_link
ex.export_run(sys.argv[1], sys.argv[2], ("parquet", "csv", "json"))
"""


def assert_latest_complete(out: Path, run_id: str) -> None:
    assert os.readlink(out / "latest") == run_id
    target = out / "latest"
    summary = json.loads((target / EXPORT_MANIFEST).read_text())
    assert summary["run_id"] == run_id
    for name, rows in summary["rows"].items():
        for fmt in summary["formats"]:
            assert (target / f"{name}.{fmt}").is_file()
        assert pl.read_parquet(target / f"{name}.parquet").height == rows


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.mark.parametrize("where", ["write", "link"])
def test_killed_export_leaves_previous_latest_intact(
    tmp_path: Path, two_runs: tuple[Path, Path], where: str
) -> None:
    prev, cur = two_runs
    out = tmp_path / "out"
    export_run(prev, out, ("parquet", "csv", "json"))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOOKED_EXPORT, str(cur), str(out), where],
        stdout=subprocess.PIPE,
        env=_env(),
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "stalled"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert_latest_complete(out, "run-1")
    if where == "write":
        assert not (out / "run-2").exists()
        assert any(p.name.startswith(".graphkit-tmp-run-2") for p in out.iterdir())
    result = export_run(cur, out, ("parquet", "csv", "json"))
    assert_latest_complete(out, "run-2")
    assert result.directory == out / "run-2"
    assert sorted(p.name for p in out.iterdir()) == ["latest", "run-1", "run-2"]


def test_export_killed_at_arbitrary_moments(tmp_path: Path, two_runs: tuple[Path, Path]) -> None:
    """Kills spread over the export's life (interpreter start to publish); the hooked test above
    pins the two critical moments, this one catches whatever lies between them."""
    prev, cur = two_runs
    out = tmp_path / "out"
    for delay in (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0):
        export_run(prev, out, ("parquet", "csv", "json"))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from graphkit.export import export_run; "
                "export_run(sys.argv[1], sys.argv[2], ('parquet', 'csv', 'json'))",
                str(cur),
                str(out),
            ],
            env=_env(),
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        latest = os.readlink(out / "latest")
        assert latest in ("run-1", "run-2")
        assert_latest_complete(out, latest)
    export_run(cur, out, ("parquet", "csv", "json"))
    assert_latest_complete(out, "run-2")


def _with_clusters(
    run: Path, groups: dict[int, str], previous_run_id: str | None = None, lineage=None
) -> None:
    """Add clusters.parquet ({cluster_id: "abc"}: customers a, b, c) and, optionally, a
    lineage and the manifest's previous_run_id, as `graphkit run --previous` writes them."""
    rows = [(c, k) for k, members in groups.items() for c in members]
    membership = pl.DataFrame(
        rows, schema={"customer_id": pl.String, "cluster_id": pl.Int64}, orient="row"
    )
    membership.write_parquet(run / "clusters.parquet")
    if lineage is not None:
        lineage.write_parquet(run / "cluster_lineage.parquet")
    if previous_run_id is not None:
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["previous_run_id"] = previous_run_id
        (run / "manifest.json").write_text(json.dumps(manifest))


def test_cluster_changes_follow_the_lineage(tmp_path: Path) -> None:
    """Ids carried by graphkit's own rule (carry_cluster_ids): a cluster that kept its id,
    members and tier is not exported even with new ids around it; one that kept its id but
    gained a member is `members`; a merged and a split cluster are `removed` with where their
    members went, the split's pieces `new` with where they came from."""
    from graphkit.analytics.cluster_lineage import carry_cluster_ids

    before = {1: "abcd", 2: "efg", 3: "hij", 4: "kl", 5: "mnop"}
    # Raw ids as a fresh clustering numbers them; carry_cluster_ids makes them stable.
    after_raw = {10: "abcd", 11: "efgx", 12: "hijkl", 13: "mn", 14: "op"}

    def frame(groups: dict[int, str]) -> pl.DataFrame:
        rows = [(c, k) for k, members in groups.items() for c in members]
        return pl.DataFrame(
            rows, schema={"customer_id": pl.String, "cluster_id": pl.Int64}, orient="row"
        )

    membership, lineage = carry_cluster_ids(frame(before), frame(after_raw))
    after = {
        k: "".join(sorted(g.get_column("customer_id")))
        for (k,), g in membership.group_by("cluster_id")
    }
    assert after == {1: "abcd", 2: "efgx", 3: "hijkl", 6: "mn", 7: "op"}
    risk = {1: ("orange", 0.7), 2: ("red", 0.9), 3: ("green", 0.1), 4: ("yellow", 0.4)}
    customers = {"a": ("green", 0.1)}
    prev = make_run(tmp_path / "r1", "r1", {**risk, 5: ("yellow", 0.4)}, customers)
    cur = make_run(
        tmp_path / "r2",
        "r2",
        {
            1: ("orange", 0.705),
            2: ("red", 0.9),
            3: ("green", 0.1),
            6: ("red", 0.8),
            7: ("green", 0.2),
        },
        customers,
    )
    _with_clusters(prev, before)
    _with_clusters(cur, after, previous_run_id="r1", lineage=lineage)
    result = export_run(cur, tmp_path / "out", ("parquet", "csv"), since=prev)
    clusters = pl.read_parquet(result.directory / "cluster_risk.parquet")
    got = {
        row["cluster_id"]: (row["change"], row["lineage"], row["lineage_cluster_ids"])
        for row in clusters.iter_rows(named=True)
    }
    assert got == {
        2: ("members", "same", [2]),
        3: ("members", "same", [3, 4]),
        4: ("removed", "merge", [3]),
        5: ("removed", "split", [6, 7]),
        6: ("new", "split", [5]),
        7: ("new", "split", [5]),
    }
    assert result.changed_clusters == 6
    csv = pl.read_csv(result.directory / "cluster_risk.csv")
    assert csv.filter(pl.col("cluster_id") == 5).get_column("lineage_cluster_ids").to_list() == [
        "6;7"
    ]
    # A lineage made from another run does not describe this comparison: ids and members only.
    other = make_run(tmp_path / "r0", "r0", {**risk, 5: ("yellow", 0.4)}, customers)
    _with_clusters(other, before)
    plain = export_run(cur, tmp_path / "out2", "parquet", since=other)
    frame_plain = pl.read_parquet(plain.directory / "cluster_risk.parquet")
    assert "lineage" not in frame_plain.columns
    assert dict(frame_plain.select("cluster_id", "change").iter_rows()) == {
        2: "members",
        3: "members",
        4: "removed",
        5: "removed",
        6: "new",
        7: "new",
    }


SAMPLE = REPO / "data" / "sample"


def test_scheduled_rerun_exports_no_cluster_change(tmp_path: Path) -> None:
    """The nightly script on unchanged input: `run --previous EXPORTS` warm-starts from the run
    of the latest export, and `export --since EXPORTS` compares with it: no cluster changed."""
    import cli

    runner = CliRunner()
    exports = tmp_path / "exports"
    stages = ["--stage", "clusters", "--stage", "cluster_risk", "-q"]
    first, second = tmp_path / "day1", tmp_path / "day2"
    result = runner.invoke(cli.app, ["run", str(SAMPLE), "--out", str(first), *stages])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli.app, ["export", str(first), "--to", str(exports), "-q"])
    assert result.exit_code == 0, result.output
    again = ["run", str(SAMPLE), "--out", str(second), "--previous", str(exports), *stages]
    result = runner.invoke(cli.app, again)
    assert result.exit_code == 0, result.output
    first_id = json.loads((first / "manifest.json").read_text())["run_id"]
    assert json.loads((second / "manifest.json").read_text())["previous_run_id"] == first_id
    export = ["export", str(second), "--to", str(exports), "--since", str(exports), "-q"]
    result = runner.invoke(cli.app, export)
    assert result.exit_code == 0, result.output
    summary = json.loads((exports / "latest" / EXPORT_MANIFEST).read_text())
    assert summary["since_run_id"] == first_id
    assert summary["changed"]["clusters"] == 0
    delta = pl.read_parquet(exports / "latest" / "cluster_risk.parquet")
    assert delta.height == 0
    assert "lineage" in delta.columns  # compared through day 2's lineage from day 1
    assert pl.read_parquet(first / "cluster_risk.parquet").height > 10


def test_exported_run_dir_resolves_an_export_root_to_its_latest_run(
    tmp_path: Path, two_runs: tuple[Path, Path]
) -> None:
    from graphkit.export import exported_run_dir

    prev, cur = two_runs
    assert exported_run_dir(prev) is None  # a run directory is used as it is
    assert exported_run_dir(tmp_path / "nothing") is None  # reading it as a run says why
    root = tmp_path / "out"
    export_run(prev, root, "parquet")
    result = export_run(cur, root, "parquet", since=root)  # --since EXPORTS: the latest's run
    assert result.since_run_id == "run-1"
    assert exported_run_dir(root) == cur.absolute()
    assert exported_run_dir(root / "run-1") == prev.absolute()
    (root / "run-1" / EXPORT_MANIFEST).write_text("{")
    with pytest.raises(ExportInputError, match="unreadable"):
        exported_run_dir(root / "run-1")
