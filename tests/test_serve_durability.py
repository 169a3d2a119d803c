"""Durability of ``graphkit serve``: kill -9 mid-stream, a full disk, reload under load.

The oracle is the same service never killed (or never reloaded): after any number of SIGKILLs
and restarts, with the client resending whatever was not acknowledged, the state, the counts and
the alert feed are those of the uninterrupted run.
"""

from __future__ import annotations

import random
import resource
import signal
import threading
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from graphkit.live import parse_event
from graphkit.live.events import datetime_to_us
from graphkit.serve.log import (
    EventLog,
    LogCorrupt,
    encode,
    encode_event,
    event_record,
    segment_name,
)
from tests.serve_fixtures import (
    CUT_2,
    ServeData,
    Server,
    batches,
    build_serve_data,
    snapshot,
    write_config,
)

BATCH = 20


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory: pytest.TempPathFactory) -> ServeData:
    return build_serve_data(tmp_path_factory.mktemp("serve-data"))


# -- the log itself -------------------------------------------------------------------------


def test_a_torn_tail_is_cut_off_and_appends_continue_after_it(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.open()
    log.append([{"event": {"n": 1}}, {"event": {"n": 2}}])
    path = tmp_path / segment_name(1)
    whole = path.read_bytes()
    torn = encode({"seq": 3, "event": {"n": 3}})
    for cut in (1, len(torn) // 2, len(torn) - 1):
        path.write_bytes(whole + torn[:cut])
        again = EventLog(tmp_path)
        assert again.open() == 2
        assert path.read_bytes() == whole
        again.close()
    flipped = bytearray(whole + torn)
    flipped[-3] ^= 0x01  # checksum no longer matches: a torn final record
    path.write_bytes(bytes(flipped))
    again = EventLog(tmp_path)
    assert again.open() == 2
    again.append([{"event": {"n": 3}}])
    assert [r.body["event"]["n"] for r in again.records()] == [1, 2, 3]


def test_an_event_serialised_ahead_makes_the_same_record_and_reads_back(
    serve_data: ServeData, tmp_path: Path
) -> None:
    """The committer numbers events serialised when their request was read (encode_event,
    event_record) and writes them with EventLog.write: byte for byte the records append
    writes, read back as the same events."""
    events = [*serve_data.events[:50], {"type": "x", "v": float("nan"), "s": 'é"\n'}]
    for seq, event in enumerate(events, start=7):
        assert event_record(seq, encode_event(event)) == encode({"seq": seq, "event": event})
    log = EventLog(tmp_path)
    log.open()
    log.append([{"event": {"n": 0}}])
    lines = [event_record(2 + k, encode_event(e)) for k, e in enumerate(events[:50])]
    log.write(b"".join(lines), 1 + len(lines))
    assert log.last_seq == 51
    back = [r.body["event"] for r in EventLog(tmp_path).records() if r.seq > 1]
    assert back == events[:50]


def test_damage_before_the_tail_is_refused_not_skipped(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.open()
    log.append([{"event": {"n": n}} for n in range(3)])
    path = tmp_path / segment_name(1)
    data = bytearray(path.read_bytes())
    data[12] ^= 0x01  # inside the first record
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorrupt, match="not a torn tail"):
        EventLog(tmp_path).open()


# -- kill -9 ----------------------------------------------------------------------------------


def post_all(client: httpx.Client, parts: list[list[dict]], start: int = 0) -> None:
    for part in parts[start:]:
        answer = client.post("/v1/events", json={"events": part})
        assert answer.status_code == 200, answer.text


def observed_customers(serve_data: ServeData) -> list[str]:
    """The customers whose lines the stream draws on (their views change)."""
    lines = {e["line_id"] for e in serve_data.events if e["type"] == "drawdown"}
    owners = pl.read_parquet(serve_data.input_dir / "credit_lines.parquet")
    return sorted(owners.filter(pl.col("line_id").is_in(lines))["customer_id"].unique())[:40]


@pytest.mark.parametrize("stream_kills", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_kill_9_at_any_point_loses_nothing_acknowledged(
    serve_data: ServeData, tmp_path: Path, stream_kills: int
) -> None:
    parts = batches(serve_data.events, BATCH)
    customers = observed_customers(serve_data)
    # Checkpoints every 100 events: kills land before, during and after them too.
    config = write_config(tmp_path / "serve.toml", checkpoint_events=100)
    reference = Server(serve_data.run_1, tmp_path / "reference", config)
    with reference.start(), reference.client() as client:
        post_all(client, parts)
        expected = snapshot(client, customers)
        metrics = client.get("/metrics").text.splitlines()
    assert expected["alerts"], "the stream should raise alerts"
    # the checkpoints' fork, the one stall they put on the loop, is timed for the operator
    fork = [line for line in metrics if line.startswith("graphkit_checkpoint_fork_seconds ")]
    assert len(fork) == 1 and float(fork[0].split()[1]) > 0
    assert "checkpoint: writer forked in" in reference.stderr()

    state = tmp_path / "killed"
    acknowledged = 0
    rng = random.Random(15 + stream_kills)
    server = Server(serve_data.run_1, state, config).start()
    try:
        # 1: right after an acknowledged batch (and, at batch 5, right after a checkpoint began)
        with server.client() as client:
            post_all(client, parts[:5])
        acknowledged = 5
        server.kill()
        # then during a stream of posts, at random instants
        for _ in range(stream_kills):
            server = Server(serve_data.run_1, state, config).start()
            acked: list[int] = []

            def stream(first: int, server: Server = server, acked: list[int] = acked) -> None:
                with server.client() as client:
                    for i in range(first, len(parts)):
                        try:
                            answer = client.post("/v1/events", json={"events": parts[i]})
                        except httpx.TransportError:
                            return
                        if answer.status_code != 200:
                            return
                        acked.append(i)

            sender = threading.Thread(target=stream, args=(acknowledged,))
            sender.start()
            # Kill once a random number of batches is acknowledged (a sleep let a fast machine
            # finish the stream first), while the next batch is in flight.
            target = rng.randint(1, max(1, (len(parts) - acknowledged) // (stream_kills + 1)))
            while len(acked) < target and sender.is_alive():
                time.sleep(0.0005)
            server.kill()
            sender.join()
            acknowledged = max([acknowledged - 1, *acked]) + 1
        server = Server(serve_data.run_1, state, config).start()
        with server.client() as client:
            post_all(client, parts, acknowledged)  # the client resends what was not acked
            got = snapshot(client, customers)
    finally:
        server.stop()
    assert acknowledged < len(parts), "every kill should land inside the stream"
    assert got == expected


# -- disk full, unwritable state --------------------------------------------------------------


def test_a_full_disk_refuses_events_with_503_and_keeps_deciding(
    serve_data: ServeData, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "serve.toml")
    events = serve_data.events
    decision = {k: events[0][k] for k in ("line_id", "account_id", "amount", "ts")}
    with Server(serve_data.run_1, state, config).start() as server:
        with server.client() as client:
            post_all(client, batches(events[:40], BATCH))
            segment = max(state.glob("events-*.log"))
            # The process may not grow a file past its current size: the next append fails
            # exactly as on a full disk, half-written.
            limit = segment.stat().st_size + 100
            _, hard = resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (limit, hard))
            refused = client.post("/v1/events", json={"events": events[40:60]})
            assert refused.status_code == 503
            assert "event log cannot be written" in refused.json()["error"]
            assert "File too large" in refused.json()["error"]
            assert str(state) not in refused.text
            health = client.get("/healthz").json()
            assert health["status"] == "degraded" and not health["events_accepted"]
            assert health["events_applied"] == 40
            assert client.post("/v1/decisions/drawdown", json=decision).status_code == 200
            assert "graphkit_event_log_writable 0.0" in client.get("/metrics").text
            resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (hard, hard))
            accepted = client.post("/v1/events", json={"events": events[40:60]}).json()
            assert accepted["applied"] == 20
            assert client.get("/healthz").json()["status"] == "ok"
        server.kill()
    with Server(serve_data.run_1, state, config).start() as server, server.client() as client:
        assert client.get("/healthz").json()["events_applied"] == 60


def test_an_unwritable_state_directory_still_serves_decisions(
    serve_data: ServeData, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be")
    events = serve_data.events
    decision = {k: events[0][k] for k in ("line_id", "account_id", "amount", "ts")}
    server = Server(serve_data.run_1, blocker / "state", log_dir=tmp_path)
    with server.start(), server.client() as client:
        refused = client.post("/v1/events", json=events[0])
        assert refused.status_code == 503
        assert "events are refused" in refused.json()["error"]
        assert client.post("/v1/decisions/drawdown", json=decision).status_code == 200
        assert client.get("/healthz").json()["status"] == "degraded"


# -- reload -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_reload_under_load_drops_no_request_and_survives_kill_9(
    serve_data: ServeData, tmp_path: Path
) -> None:
    latest = tmp_path / "latest"
    latest.symlink_to(serve_data.run_1)
    state = tmp_path / "state"
    config = write_config(tmp_path / "serve.toml", checkpoint_events=200)
    parts = batches(serve_data.events, 50)
    customers = observed_customers(serve_data)
    events = serve_data.events
    decision = {k: events[0][k] for k in ("line_id", "account_id", "amount", "ts")}
    cut_2 = datetime_to_us(CUT_2)
    later = sum(1 for e in events if parse_event(e).ts >= cut_2)

    server = Server(latest, state, config).start()
    try:
        with server.client() as client:
            post_all(client, parts[: len(parts) // 2])
            run_1 = client.get("/healthz").json()["run_id"]
            feed_before = snapshot(client, [])["alerts"]
        statuses: list[int] = []
        stop = threading.Event()
        streaming = threading.Event()

        def hammer(kind: str) -> None:
            with server.client() as client:
                rest = parts[len(parts) // 2 :]
                i = 0
                while not stop.is_set():
                    if kind == "events":
                        answer = client.post("/v1/events", json={"events": rest[i % len(rest)]})
                        i += 1
                        streaming.set()
                    else:
                        answer = client.post("/v1/decisions/drawdown", json=decision)
                    statuses.append(answer.status_code)

        load = [threading.Thread(target=hammer, args=(k,)) for k in ("decide", "decide", "events")]
        for thread in load:
            thread.start()
        # Reload as soon as the first new batch is in: the rest of the stream arrives while the
        # new run loads, so some events must be re-applied on top of it. (A fixed sleep here
        # let a fast event path post the whole stream before the reload started.)
        assert streaming.wait(120)
        latest.unlink()
        latest.symlink_to(serve_data.run_2)
        with server.client() as client:
            reloaded = client.post("/v1/admin/reload")
        time.sleep(0.5)
        stop.set()
        for thread in load:
            thread.join()
        assert reloaded.status_code == 200, reloaded.text
        answer = reloaded.json()
        assert answer["previous_run_id"] == run_1 and answer["run_id"] != run_1
        assert 0 < answer["events_reapplied"] <= later
        assert statuses and set(statuses) == {200}
        with server.client() as client:
            post_all(client, parts)
            health = client.get("/healthz").json()
            assert health["run_id"] == answer["run_id"]
            after = snapshot(client, customers)
            assert after["alerts"][: len(feed_before)] == feed_before
            # Going back to an older run is refused, and says so without a path.
            latest.unlink()
            latest.symlink_to(serve_data.run_1)
            older = client.post("/v1/admin/reload")
            assert older.status_code == 409 and "only moves forward" in older.json()["error"]
            assert str(tmp_path) not in older.text
            latest.unlink()
            latest.symlink_to(serve_data.run_2)
        server.kill()
        server = Server(latest, state, config).start()
        with server.client() as client:
            assert snapshot(client, customers) == after
        # SIGHUP reloads too (the same run again here: the feed and the state stay).
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 120
        while server.stderr().count("reloaded run") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "reloaded run" in server.stderr()
        with server.client() as client:
            assert snapshot(client, customers)["customers"] == after["customers"]
    finally:
        server.stop()


def test_a_checkpoint_of_another_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """A state directory written by an older graphkit (another live-state shape) is not
    misread: start-up stops with a message naming both formats and the way out, and an old
    state that no longer unpickles gets the same way out instead of a pickle error."""
    import asyncio
    import pickle
    import sys
    import types

    from graphkit.live import LiveError
    from graphkit.serve import Service
    from graphkit.serve.service import CHECKPOINT_FORMAT, CHECKPOINT_NAME

    def refusal(content: bytes) -> str:
        state_dir = tmp_path / f"state-{len(content)}"
        state_dir.mkdir()
        (state_dir / CHECKPOINT_NAME).write_bytes(content)
        service = Service(tmp_path / "no-run-needed", state_dir)
        with pytest.raises(LiveError) as refused:
            asyncio.run(service.start())
        return str(refused.value)

    # format 2 was one pickle with the state inside; a header of another format is refused
    message = refusal(pickle.dumps({"format": CHECKPOINT_FORMAT - 1, "state": None}))
    assert f"format {CHECKPOINT_FORMAT - 1}" in message and f"format {CHECKPOINT_FORMAT}" in message
    assert "new --state directory" in message
    # an old state whose class is gone: pickled from a module that then disappears
    retired = types.ModuleType("graphkit_retired_live_shape")

    class OldShape:
        pass

    OldShape.__module__ = "graphkit_retired_live_shape"
    OldShape.__qualname__ = "OldShape"
    retired.OldShape = OldShape
    sys.modules[retired.__name__] = retired
    try:
        gone = pickle.dumps({"format": 2, "state": OldShape()})
    finally:
        del sys.modules[retired.__name__]
    message = refusal(gone)
    assert f"not a checkpoint format {CHECKPOINT_FORMAT} can read" in message
    assert "new --state directory" in message
    # a header of this format whose state was cut off
    message = refusal(pickle.dumps({"format": CHECKPOINT_FORMAT, "seq": 0}))
    assert "ends before its state" in message
