"""``graphkit serve`` as a real process: every endpoint, the error paths, the token, TLS.

Durability (kill -9, disk full) and reload are in test_serve_durability.py.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import threading
import time
import weakref
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphkit.config import from_mapping
from graphkit.serve import Service
from tests.serve_fixtures import ServeData, Server, build_serve_data, write_config

TOKEN = "s3cret-token-7f3a9c51d0"


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory: pytest.TempPathFactory) -> ServeData:
    return build_serve_data(tmp_path_factory.mktemp("serve-data"))


@pytest.fixture(scope="module")
def server(serve_data: ServeData, tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = tmp_path_factory.mktemp("serve-open")
    config = write_config(root / "serve.toml", max_batch_events=50)
    with Server(serve_data.run_1, root / "state", config).start() as running:
        yield running


def drawdown_request(serve_data: ServeData, **change) -> dict:
    first = next(e for e in serve_data.events if e["type"] == "drawdown")
    request = {k: first[k] for k in ("line_id", "account_id", "amount", "ts")}
    return request | change


def test_health_ready_and_metrics(server: Server) -> None:
    with server.client() as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["run_id"]
        assert health["events_accepted"] is True
        assert client.get("/readyz").json() == {"ready": True}
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "graphkit_ready 1.0" in metrics.text
        assert "graphkit_event_log_writable 1.0" in metrics.text
        spec = client.get("/openapi.json").json()
        assert {"/v1/decisions/drawdown", "/v1/events", "/v1/alerts"} <= set(spec["paths"])
        assert "swagger" in client.get("/docs").text.lower()


def test_a_decision_changes_nothing(server: Server, serve_data: ServeData) -> None:
    with server.client() as client:
        before = client.get("/healthz").json()
        answer = client.post("/v1/decisions/drawdown", json=drawdown_request(serve_data))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["decision"] in ("ACCEPT", "REVIEW", "BLOCK")
        assert body["tier"] in ("green", "yellow", "orange", "red")
        assert {"reasons", "recommended_limit", "decision_id", "customer_id"} <= set(body)
        again = client.post("/v1/decisions/drawdown", json=drawdown_request(serve_data)).json()
        assert again["decision_id"] != body["decision_id"]
        assert client.get("/healthz").json()["events_applied"] == before["events_applied"]


def test_events_are_applied_once_with_reasons_for_rejections(
    server: Server, serve_data: ServeData
) -> None:
    events = serve_data.events[:40]
    with server.client() as client:
        single = client.post("/v1/events", json=events[0]).json()
        assert single["applied"] == 1 and single["results"][0]["key"]
        batch = client.post("/v1/events", json={"events": events}).json()
        assert batch["duplicate"] == 1 and batch["applied"] == len(events) - 1
        assert [r["index"] for r in batch["results"]] == list(range(len(events)))
        repeat = client.post("/v1/events", json={"events": events}).json()
        assert repeat["duplicate"] == len(events) and repeat["alerts"] == []
        bad = [
            {
                "type": "transfer",
                "transfer_id": "TX1",
                "src_account": "NOPE",
                "dst_account": events[0].get("account_id", "A000001"),
                "amount": 5.0,
                "ts": "2025-06-30T00:00:00Z",
            },
            {
                "type": "drawdown",
                "drawdown_id": "DX1",
                "line_id": "L000001",
                "account_id": "A000001",
                "amount": -5,
                "ts": "2025-06-30T00:00:00Z",
            },
            {"type": "spaceship", "id": "S1"},
        ]
        answer = client.post("/v1/events", json={"events": bad}).json()
        assert answer["rejected"] == 3 and answer["applied"] == 0
        first, second, third = answer["results"]
        assert first["issues"][0]["field"] == "src_account"
        assert "dangling reference 'NOPE'" in first["issues"][0]["message"]
        assert second["issues"][0]["field"] == "amount"
        assert "spaceship" in third["issues"][0]["message"]
        health = client.get("/healthz").json()
        assert health["events_applied"] == len(events)


def test_alert_feed_pages_in_order_and_customer_view(server: Server, serve_data: ServeData) -> None:
    with server.client() as client:
        posted = client.post("/v1/events", json={"events": serve_data.events[:50]}).json()
        raised = posted["alerts"]
        feed = []
        while page := client.get("/v1/alerts", params={"after": len(feed), "limit": 3}).json():
            if not page["alerts"]:
                break
            assert page["next_cursor"] == page["alerts"][-1]["seq"]
            feed += page["alerts"]
        assert [a["seq"] for a in feed] == list(range(1, len(feed) + 1))
        assert all(a in feed for a in raised)
        customer = feed[0]["customer_id"] if feed else serve_data.events[0].get("customer_id")
        view = client.get(f"/v1/customers/{customer}")
        assert view.status_code == 200
        assert view.json()["customer_id"] == customer and "open_traces" in view.json()
        missing = client.get("/v1/customers/NO-SUCH-CUSTOMER")
        assert missing.status_code == 404 and "NO-SUCH-CUSTOMER" in missing.json()["error"]


def test_validation_errors_name_the_field_and_hide_internals(
    server: Server, serve_data: ServeData
) -> None:
    with server.client() as client:
        answer = client.post("/v1/decisions/drawdown", json=drawdown_request(serve_data, amount=0))
        assert answer.status_code == 422
        assert [f["field"] for f in answer.json()["fields"]] == ["amount"]
        answer = client.post(
            "/v1/decisions/drawdown", json=drawdown_request(serve_data, line_id="L-UNKNOWN")
        )
        assert answer.status_code == 422 and answer.json()["fields"][0]["field"] == "line_id"
        answer = client.post("/v1/decisions/drawdown", json=drawdown_request(serve_data, ts="soon"))
        assert answer.status_code == 422 and answer.json()["fields"][0]["field"] == "ts"
        answer = client.post(
            "/v1/decisions/drawdown",
            content=b'{"line_id": "L1", "amount": ',
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 422
        assert client.get("/v1/alerts", params={"limit": 0}).status_code == 422
        assert client.get("/v1/nowhere").status_code == 404
        for response in (answer, client.get("/v1/nowhere")):
            assert "Traceback" not in response.text and str(Path.cwd()) not in response.text
            assert "/graphkit/" not in response.text


def test_malformed_event_bodies_are_422_naming_the_field_and_apply_nothing(
    server: Server, serve_data: ServeData
) -> None:
    """POST /v1/events is answered in front of the framework (FastRoutes): the shapes the
    Event / EventBatch models declare are still enforced, with the same error shape."""
    event = serve_data.events[0]
    cases = [
        (b'{"events": [', None),  # not JSON
        (b"[1, 2]", None),  # not an object
        (b'{"events": []}', "events"),
        (b'{"events": {"type": "transfer"}}', "events"),
        (b'{"events": [{"type": "transfer"}], "extra": 1}', "extra"),
        (b'{"events": [{"type": "transfer"}, 7]}', "events.1"),
        (b'{"events": [{"type": "transfer"}, {"type": ""}]}', "events.1.type"),
        (b'{"transfer_id": "T1"}', "type"),
    ]
    with server.client() as client:
        before = client.get("/healthz").json()["events_applied"]
        for body, field in cases:
            answer = client.post(
                "/v1/events", content=body, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 422, body
            problem = answer.json()
            assert problem["error"].startswith("invalid request"), body
            assert [f["field"] for f in problem["fields"]] == [field], body
            assert "Traceback" not in answer.text and "/graphkit/" not in answer.text
        # a well-formed batch right after is answered per event, in the documented shape
        answer = client.post("/v1/events", json={"events": [event]}).json()
        assert set(answer) == {"applied", "duplicate", "rejected", "results", "alerts"}
        assert set(answer["results"][0]) == {
            "index",
            "status",
            "key",
            "issues",
            "alerts",
            "decision",
        }
        assert client.get("/healthz").json()["events_applied"] >= before


def test_batch_and_body_limits_are_413(server: Server, serve_data: ServeData) -> None:
    with server.client() as client:
        too_many = client.post("/v1/events", json={"events": serve_data.events[:51]})
        assert too_many.status_code == 413 and "limit of 50" in too_many.json()["error"]
        huge = b'{"events": [' + b" " * (5 * 1024 * 1024) + b"]}"
        answer = client.post(
            "/v1/events", content=huge, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 413
        # The decision route answers outside the framework (DecisionRoute): same limits, both
        # for a declared length and for a body streamed without one.
        padded = b'{"line_id": "' + b"L" * (5 * 1024 * 1024) + b'"}'
        declared = client.post(
            "/v1/decisions/drawdown", content=padded, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413 and "larger than the limit" in declared.json()["error"]
        streamed = client.post(
            "/v1/decisions/drawdown",
            content=iter([padded[i : i + 65536] for i in range(0, len(padded), 65536)]),
            headers={"content-type": "application/json"},
        )
        assert streamed.status_code == 413
        broken = client.post(
            "/v1/decisions/drawdown", content=b'{"line_id": ', headers={"content-type": "x"}
        )
        assert broken.status_code == 422 and broken.json()["error"].startswith("invalid request")


def test_admin_reload_swaps_the_state_while_decisions_keep_coming(
    server: Server, serve_data: ServeData
) -> None:
    """The same run again (a newer one, kill -9 after it and SIGHUP: the slow test in
    test_serve_durability.py): every decision sent during the reload is answered."""
    statuses: list[int] = []
    stop = threading.Event()

    def decide() -> None:
        with server.client() as client:
            while not stop.is_set():
                answer = client.post("/v1/decisions/drawdown", json=drawdown_request(serve_data))
                statuses.append(answer.status_code)

    with server.client() as client:
        before = client.get("/healthz").json()
        sender = threading.Thread(target=decide)
        sender.start()
        while not statuses and sender.is_alive():  # decisions flow before the reload
            time.sleep(0.005)
        reloaded = client.post("/v1/admin/reload")
        stop.set()
        sender.join()
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["run_id"] == before["run_id"]
        assert statuses and set(statuses) == {200}
        after = client.get("/healthz").json()
        assert after["last_event_ts"] == before["last_event_ts"]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_token_and_tls_guard_everything_but_healthz(
    serve_data: ServeData, tmp_path: Path, tls_files: tuple[Path, Path]
) -> None:
    config = write_config(tmp_path / "serve.toml")
    with Server(serve_data.run_1, tmp_path / "state", config, token=TOKEN, tls=tls_files) as srv:
        srv.start()
        with srv.client(token="") as anonymous, srv.client(token="wrong") as wrong:
            assert anonymous.get("/healthz").status_code == 200
            for path in (
                "/readyz",
                "/metrics",
                "/docs",
                "/openapi.json",
                "/v1/alerts",
                "/v1/customers/C0000001",
            ):
                assert anonymous.get(path).status_code == 401, path
                assert wrong.get(path).status_code == 401, path
            refused = anonymous.post("/v1/decisions/drawdown", json=drawdown_request(serve_data))
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            refused = wrong.post("/v1/events", json={"events": serve_data.events[:2]})
            assert refused.status_code == 401
        with srv.client() as client:
            assert client.get("/readyz").status_code == 200
            answer = client.post("/v1/decisions/drawdown", json=drawdown_request(serve_data))
            assert answer.status_code == 200
            assert client.post("/v1/events", json=serve_data.events[0]).status_code == 200
    log = srv.stderr()
    assert "Started server process" in log or "Uvicorn running" in log
    assert TOKEN not in log and "s3cret" not in log
    # a first start says each step of building the state, in order, with its time (minutes
    # at millions of nodes: an operator must see where it is)
    steps = [
        "live state: read the run done in",
        "live state: snapshot rows: 12 to do",
        "live state: snapshot rows done in",
        "live state: circles and rings done in",
        "live state: transfer log and closed windows done in",
        "live state: re-trace open windows done in",
        "live state: batch scores, clusters and tiers done in",
        "replay the event log done in",
        # written by a child, as every checkpoint, which says what memory it took
        "checkpoint: writer forked in",
        "checkpoint: writer's peak RSS",
        "write the first checkpoint done in",
        "ready:",
    ]
    places = [log.find(step) for step in steps]
    assert -1 not in places and places == sorted(places), dict(zip(steps, places, strict=True))


def test_a_non_loopback_bind_needs_a_token(
    serve_data: ServeData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import app

    monkeypatch.delenv("GRAPHKIT_API_TOKEN", raising=False)
    args = ["serve", str(serve_data.run_1), "--state", str(tmp_path / "state")]
    done = CliRunner().invoke(app, [*args, "--host", "0.0.0.0"])
    assert done.exit_code == 2
    assert "needs a bearer token" in done.output and "GRAPHKIT_API_TOKEN" in done.output
    assert not (tmp_path / "state").exists()


def test_a_group_is_applied_in_slices_and_requests_between_them_see_a_logged_prefix(
    serve_data: ServeData, tmp_path: Path
) -> None:
    """``[serve] apply_slice_us``: between two slices of a logged group the loop answers other
    requests; they see the state after a prefix of the group, every event of which is already
    in the fsynced log; the answers and the alert feed equal those of one slice per group."""
    events = serve_data.events[:300]

    def run(slice_us: int) -> tuple[list, list, list[tuple[int, int, int]]]:
        config = from_mapping(
            {"live": {"max_lateness_seconds": 31536000.0}, "serve": {"apply_slice_us": slice_us}}
        )
        service = Service(serve_data.run_1, tmp_path / f"state-{slice_us}", config)
        seen: list[tuple[int, int, int]] = []  # (events applied, record applied, last logged)

        async def main() -> tuple[list, list]:
            await service.start()
            start = service.current().events_applied
            group = asyncio.create_task(service.submit(events))
            while not group.done():  # another task on the loop, as a request would be
                applied = service.current().events_applied - start
                seen.append((applied, service.applied_seq, service.log.last_seq))
                await asyncio.sleep(0)
            answers = await group
            feed = service.alerts_after(0, 10_000)
            await service.stop()
            return answers, feed

        answers, feed = asyncio.run(main())
        return answers, feed, seen

    whole_answers, whole_feed, whole_seen = run(10**9)
    sliced_answers, sliced_feed, sliced_seen = run(1)
    applied = sum(1 for a in whole_answers if a["status"] == "applied")
    assert applied > 100
    # one slice: nobody saw the group half applied; one event per slice: many prefixes seen
    assert {n for n, _, _ in whole_seen} <= {0, applied}
    prefixes = {n for n, _, _ in sliced_seen if 0 < n < applied}
    assert len(prefixes) > applied // 2
    # nothing applied that is not logged yet
    assert all(seq <= logged for _, seq, logged in sliced_seen)
    assert sliced_answers == whole_answers
    assert sliced_feed == whole_feed


class _Cycle:
    """A reference cycle, as an asyncio transport and its socket make one."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize("full_every", [0.0, 1e-9])
def test_cyclic_garbage_a_freeze_kept_is_reclaimed_by_the_full_collection(
    serve_data: ServeData, tmp_path: Path, full_every: float
) -> None:
    """``[serve] gc_freeze_events`` freezes the heap; a cycle alive at a freeze and dropped
    later is kept by every later freeze (the leak), until a full collection, at most every
    ``gc_full_collect_seconds`` (0 = never), reclaims it."""
    config = from_mapping(
        {
            "live": {"max_lateness_seconds": 31536000.0},
            "serve": {"gc_freeze_events": 10, "gc_full_collect_seconds": full_every},
        }
    )
    service = Service(serve_data.run_1, tmp_path / "state", config)

    async def main() -> bool:
        await service.start()
        cycle = _Cycle()
        gone = weakref.ref(cycle)
        first = await service.submit(serve_data.events[:40])  # a freeze while it is alive
        del cycle
        second = await service.submit(serve_data.events[40:80])  # a freeze after it died
        await service.stop()
        for answers in (first, second):
            assert sum(a["status"] == "applied" for a in answers) >= 10
        return gone() is None

    try:
        reclaimed = asyncio.run(main())
    finally:
        gc.unfreeze()
    assert reclaimed == (full_every > 0)


def _row(account: str, amount: float) -> tuple[str, float]:
    return (account, amount)  # built at run time: a constant tuple would be untracked already


def test_a_freeze_keeps_an_index_of_atomic_values_tracked_so_it_is_never_rescanned() -> None:
    """The engine's key index is a dict of atomic values (snapshot digests) that an event's
    tuple makes tracked again. A freeze whose collection covered the oldest generation
    untracked it, so the next event tracked it again as a young object and every collection
    rescanned it; the freeze must leave it tracked and frozen, out of every generation."""
    from graphkit.serve.service import _freeze_heap

    index: dict[str, object] = {f"key{i}": i for i in range(1000)}
    assert not gc.is_tracked(index)  # nothing in it can form a cycle
    try:
        index["event"] = _row("A1", 1.5)  # an event's row: the dict becomes tracked, and young
        assert gc.is_tracked(index)
        _freeze_heap()
        assert gc.is_tracked(index)
        index["next"] = _row("A2", 2.5)
        young = gc.get_objects()  # the generations the collector scans (frozen ones are not)
        assert not any(obj is index for obj in young)
    finally:
        gc.unfreeze()
