"""The service core: a live state behind a write-ahead event log, checkpoints and reloads.

No HTTP here (that is :mod:`graphkit.serve.api`); everything runs on one asyncio loop, which
is what makes the state safe without locks: the live state is only touched from the loop, and
every mutation goes through one committer task, in the order of the log.

Write path (group commit): requests put their events on a queue; the committer takes whatever
has accumulated, writes it to the log and fsyncs once (in a thread, so decisions keep being
answered meanwhile), then applies the events in log order and answers each request. Events are
applied in slices of about ``[serve] apply_slice_us`` (1 ms); between two slices the requests
that arrived meanwhile are answered first, so a decision waits behind one slice, not a whole
group, and sees the state after a prefix of the log (never an event that is not on disk). An
event is acknowledged only after its record is on disk, and the state only ever holds logged
events, so whatever a client has seen (a decision, an alert) survives SIGKILL: restart = restore
the last checkpoint + apply the log after it, which reproduces the same state and the same alert
feed.

Checkpoints go through the committer too (so they sit exactly between two log records): the log
moves to a new segment, and a forked child pickles the state (copy-on-write: the parent keeps
serving) and writes ``checkpoint.pkl`` atomically. A restart replays only the segments after it.

Reload: a newer run is loaded in a thread while the old state keeps serving; the events logged
since the old run's start whose time is after the new run's cut (and untimed ones) are applied
on top of it; then the committer logs a ``reload`` record, catches up the last few events and
swaps the state in between two requests. The alert feed keeps its cursor across the swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphkit.atomic import atomic_file, fsync_dir
from graphkit.config import Config
from graphkit.live import Event, EventRejected, LiveError, LiveState, parse_event
from graphkit.progress import LoggingProgress, task
from graphkit.serve.log import EventLog, LogUnwritable, Record, encode_event, event_record

CHECKPOINT_NAME = "checkpoint.pkl"
# Bumped whenever the live state's shape changes (2: fund-flow reach kept as sets of trace
# numbers; 3: columnar start-up, closed windows as columns, snapshot rows as digests; 4: where
# each open trace's money is moved from per-trace dicts into per-account arrays, the
# ``Holdings`` tables, so a transfer moves every holder's money in one numpy step; 5: the
# reach, sets of trace numbers per (account, hop count), became per-account ``Reach`` tables;
# 6: the state's memory cut: the snapshot's duplicate-check keys as columns, holdings pointing
# into the transfer log, interned ids, closed flows as a polars column), so an older checkpoint
# is refused with a message instead of misread. From 3 on the file is two pickles, the header
# (format, log position) then the state, so the format is checked before any state is
# unpickled.
CHECKPOINT_FORMAT = 6

# Loop turns between two slices of event application (:meth:`_Slices.answer_waiting_requests`).
_TURNS = 3

logger = logging.getLogger("graphkit.serve")
_UNPARSABLE = {"field": None, "message": "not an event: expected an object of column values"}


class NotReady(RuntimeError):
    """The state is still being loaded or replayed."""


class EventsRefused(RuntimeError):
    """The event log cannot be written; the message is safe to show to clients."""


class Busy(RuntimeError):
    """Too many events are waiting to be applied; the sender should retry shortly."""


class ReloadFailed(RuntimeError):
    """A reload could not load the new run; the old state keeps serving."""


@dataclass
class Feed:
    """The alert feed across reloads: alerts of replaced states (``prefix``) then the current
    state's alerts after its first ``base`` (those raised while re-applying events on top of a
    new run repeat what the feed already said). Global cursor = position in that sequence."""

    prefix: list[dict[str, Any]] = field(default_factory=list)
    base: int = 0

    def to_global(self, alert: dict[str, Any]) -> dict[str, Any]:
        return {**alert, "seq": len(self.prefix) + alert["seq"] - self.base}

    def after(self, state: LiveState, cursor: int, limit: int) -> list[dict[str, Any]]:
        out = self.prefix[cursor : cursor + limit]
        if len(out) < limit:
            local = self.base + max(0, cursor - len(self.prefix))
            out += [
                self.to_global(a.to_dict()) for a in state.alerts_after(local, limit - len(out))
            ]
        return out

    def freeze(self, state: LiveState) -> None:
        """Move the current state's alerts into the prefix (before a swap)."""
        while True:
            more = self.after(state, len(self.prefix), 10_000)
            if not more:
                return
            self.prefix.extend(more)
            self.base += len(more)


@dataclass
class _Job:
    kind: str  # "events" | "reload" | "checkpoint"
    payload: Any
    future: asyncio.Future


class Service:
    """One live state, its event log and checkpoints in ``state_dir``."""

    def __init__(self, run_dir: Path, state_dir: Path, config: Config | None = None) -> None:
        self.run_path = Path(run_dir)
        self.state_dir = Path(state_dir)
        self.config = config
        self.serve = (config or Config()).serve
        self.log = EventLog(self.state_dir)
        # start-up and reloads take minutes at millions of nodes: say where they are
        self.progress = LoggingProgress(logger)
        self.state: LiveState | None = None
        self.feed = Feed()
        self.applied_seq = 0
        self.log_error: str | None = None
        self.replayed = 0
        self.last_fork_seconds = 0.0
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._committer: asyncio.Task | None = None
        self._maintenance = asyncio.Lock()
        self._intake = asyncio.Lock()
        self._since_checkpoint = 0
        self._since_freeze = 0
        self._next_full_collect = 0.0
        self._pending = 0
        self._background: set[asyncio.Task] = set()

    # -- start-up ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state is not None

    @property
    def busy(self) -> bool:
        """As many events are waiting to be applied as ``[serve] max_pending_events``."""
        return self._pending >= self.serve.max_pending_events

    async def start(self) -> None:
        """Load (checkpoint or run), replay the log tail, then accept events."""
        await asyncio.to_thread(self._load)
        self._committer = asyncio.create_task(self._commit_loop())

    def _load(self) -> None:
        started = time.perf_counter()
        checkpoint = self.state_dir / CHECKPOINT_NAME
        first_segment = 1
        if checkpoint.is_file():
            saved = _read_checkpoint(checkpoint)
            state, self.feed = saved["state"], Feed(saved["feed_prefix"], saved["feed_base"])
            self.applied_seq, first_segment = saved["seq"], saved["segment"]
            logger.info("restored checkpoint at log record %d (run %s)", saved["seq"], state.run_id)
        else:
            state = LiveState.from_run(self.run_path, self.config, self.progress)
            logger.info("loaded run %s", state.run_id)
        self.log.last_seq = self.applied_seq
        with task(self.progress, "replay the event log"):
            for record in self.log.records(first_segment, self.applied_seq):
                state = self._replay(state, record)
                self.replayed += 1
                self.progress.advance("replay the event log")
        try:
            self.log.open()
            if not checkpoint.is_file():
                self.log.rotate()
                with task(self.progress, "write the first checkpoint"):
                    # in a child, as every checkpoint: the pickler's memo (an entry per object
                    # written) is then never in this process (GBs at 5M nodes)
                    body = self._checkpoint_body(state, self.log.segment)
                    pid = self._fork_writer(body, background=False)
                    if not self._writer_done(pid, self.log.segment):
                        raise OSError("the first checkpoint's writer failed")
        except (LogUnwritable, OSError) as exc:
            self.log_error = _refusal(exc)
            logger.error("state directory %s is not writable: %s", self.state_dir, exc)
        self.state = state
        # the loaded state is long-lived: keep the cyclic GC from rescanning it on every full
        # collection (docs/live.md, "Garbage collection")
        gc.freeze()
        self._next_full_collect = time.monotonic() + self.serve.gc_full_collect_seconds
        logger.info(
            "ready: %d log records replayed in %.1f s", self.replayed, time.perf_counter() - started
        )

    def _replay(self, state: LiveState, record: Record) -> LiveState:
        body = record.body
        self.applied_seq = record.seq
        if "event" in body:
            self._apply_logged(state, body["event"])
            return state
        new, _ = self._load_run(Path(body["reload"]["run_dir"]), record.seq)
        self.feed.freeze(state)
        self.feed.base = _alert_count(new)
        return new

    # -- events ------------------------------------------------------------------------------

    async def submit(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply events durably; per event ``status`` applied | duplicate | rejected.

        Events that fail the per-value checks are rejected without being logged; the others are
        logged (fsynced) and then applied in log order, where references, duplicates and time
        are checked against the state. Raises :class:`EventsRefused` when the log cannot be
        written (nothing is applied then), :class:`Busy` when ``[serve] max_pending_events``
        are already waiting, and :class:`NotReady` before start-up ends.
        """
        if self.state is None:
            raise NotReady("the live state is still loading")
        results: list[dict[str, Any] | None] = [None] * len(events)
        accepted: list[tuple[int, Event, bytes]] = []
        # A big batch is parsed in slices too (answering waiting requests between them); the
        # intake lock keeps requests' events reaching the log in the order the requests came.
        async with self._intake:
            slices = _Slices(self.serve.apply_slice_us)
            for i, raw in enumerate(events):
                try:
                    # parsed and serialised for the log here, once
                    accepted.append((i, parse_event(raw), encode_event(raw)))
                except EventRejected as exc:
                    results[i] = _rejected(exc)
                except (TypeError, ValueError, AttributeError):
                    results[i] = {**_rejected(EventRejected([])), "issues": [_UNPARSABLE]}
                if slices.used_up():
                    await slices.answer_waiting_requests()
            if not accepted:
                return results  # type: ignore[return-value]
            if self._pending + len(accepted) > self.serve.max_pending_events:
                raise Busy(
                    f"{self._pending} events are waiting to be applied (limit "
                    f"{self.serve.max_pending_events}); retry shortly"
                )
            self._pending += len(accepted)
            future = asyncio.get_running_loop().create_future()
            await self._queue.put(_Job("events", [(ev, line) for _, ev, line in accepted], future))
        try:
            answers = await future
        finally:
            self._pending -= len(accepted)
        for (i, _, _), result in zip(accepted, answers, strict=True):
            results[i] = result
        return results  # type: ignore[return-value]

    async def _commit_loop(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            start = 0
            while start < len(jobs):
                end = start
                while end < len(jobs) and jobs[end].kind == "events":
                    end += 1
                try:
                    if end > start:
                        await self._commit_events(jobs[start:end])
                        start = end
                    else:
                        job = jobs[start]
                        job.future.set_result(await self._run_job(job))
                        start += 1
                except Exception as exc:  # answered to the waiting request, never lost
                    logger.exception("committer: %s failed", jobs[start].kind)
                    for job in jobs[start : max(end, start + 1)]:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    start = max(end, start + 1)

    async def _commit_events(self, jobs: list[_Job]) -> None:
        first = self.log.last_seq + 1
        records = [
            event_record(first + k, line)
            for k, line in enumerate(line for job in jobs for _, line in job.payload)
        ]
        try:
            await asyncio.to_thread(self.log.write, b"".join(records), first + len(records) - 1)
        except LogUnwritable as exc:
            self.log_error = _refusal(exc)
            logger.error("event log append failed: %s", exc)
            for job in jobs:
                job.future.set_exception(EventsRefused(self.log_error))
            return
        self.log_error = None
        state = self.state
        assert state is not None
        seq = first
        slices = _Slices(self.serve.apply_slice_us)
        for job in jobs:
            answers = []
            for event, _ in job.payload:  # parsed once, in submit
                answers.append(self._apply_logged(state, event))
                self.applied_seq = seq
                seq += 1
                if slices.used_up():
                    # between two slices a request sees the state after a prefix of the log
                    await slices.answer_waiting_requests()
            # its request may have been cancelled meanwhile; its events are logged, so they
            # are applied all the same (as a restart would), and so are the next jobs'
            if not job.future.done():
                job.future.set_result(answers)
        self._since_checkpoint += len(records)
        self._since_freeze += len(records)
        if self.serve.gc_freeze_events and self._since_freeze >= self.serve.gc_freeze_events:
            self._since_freeze = 0
            full = bool(self.serve.gc_full_collect_seconds) and (
                time.monotonic() >= self._next_full_collect
            )
            if full:
                self._next_full_collect = time.monotonic() + self.serve.gc_full_collect_seconds
            _freeze_heap(full)
        if (
            self._since_checkpoint >= self.serve.checkpoint_events
            and not self._maintenance.locked()
        ):
            self._since_checkpoint = 0
            self._spawn(self.checkpoint())

    def _apply_logged(self, state: LiveState, event: dict[str, Any] | Event) -> dict[str, Any]:
        """Apply a logged event; an engine failure is that event's answer (and is the same
        on replay), never a lost request."""
        try:
            return self._answer(state.apply(event))
        except Exception:
            logger.exception("applying a logged event failed")
            return {**_rejected(EventRejected([])), "status": "error"}

    def _answer(self, result: Any) -> dict[str, Any]:
        """An :class:`~graphkit.live.ApplyResult` as the API's per-event answer."""
        return {
            "status": result.status,
            "key": result.key,
            "issues": [{"field": i.column, "message": i.message} for i in result.issues],
            "alerts": [self.feed.to_global(a.to_dict()) for a in result.alerts],
            "decision": result.decision.to_dict() if result.decision is not None else None,
        }

    # -- reads -------------------------------------------------------------------------------

    def current(self) -> LiveState:
        if self.state is None:
            raise NotReady("the live state is still loading")
        return self.state

    def alerts_after(self, cursor: int, limit: int) -> list[dict[str, Any]]:
        return self.feed.after(self.current(), cursor, limit)

    # -- checkpoints -------------------------------------------------------------------------

    async def checkpoint(self, background: bool = True) -> bool:
        """Checkpoint now (between two log records); True when it was written. ``background``:
        the writing child takes only idle CPU (:func:`_background_priority`); a shutdown's last
        checkpoint, with no requests left to answer, runs at the server's own priority."""
        async with self._maintenance:
            return await self._enqueue("checkpoint", background)

    async def _enqueue(self, kind: str, payload: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(kind, payload, future))
        return await future

    async def _run_job(self, job: _Job) -> Any:
        if job.kind == "checkpoint":
            return await self._checkpoint_now(job.payload)
        return await self._swap(job.payload)

    async def _checkpoint_now(self, background: bool = True) -> bool:
        state = self.current()
        try:
            segment = self.log.rotate()
        except LogUnwritable as exc:
            logger.error("checkpoint skipped: %s", exc)
            return False
        pid = self._fork_writer(self._checkpoint_body(state, segment), background)
        self._spawn(self._finish_checkpoint(pid, segment, state.cut))
        return True

    def _fork_writer(self, body: dict[str, Any], background: bool) -> int:
        """Fork a child that writes ``body`` as the checkpoint; its pid. The child writes the
        copy-on-write image of this instant; the loop goes on once the fork returns (copying
        the page tables stalls it: ~0.1 s at 1M nodes, timed here)."""
        path = self.state_dir / CHECKPOINT_NAME
        forking = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child only writes and exits
            code = 0
            try:
                if background:
                    _background_priority()
                _write_checkpoint(path, body)
            except BaseException:
                code = 1
            os._exit(code)
        self.last_fork_seconds = time.perf_counter() - forking
        logger.info("checkpoint: writer forked in %.0f ms", self.last_fork_seconds * 1000)
        return pid

    def _writer_done(self, pid: int, segment: int) -> bool:
        """Wait for the writer ``pid``; whether it wrote the checkpoint. Logs the writer's
        peak RSS: pickling touches every object, so the writer holds copies of the pages
        whose reference counts it wrote, and the pickler's memo: what a host must leave free
        beside the service."""
        _, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            logger.error("checkpoint at segment %d failed; the previous one stays", segment)
            return False
        logger.info("checkpoint: writer's peak RSS %d MB", usage.ru_maxrss >> 10)
        return True

    async def _finish_checkpoint(self, pid: int, segment: int, cut: int | None) -> None:
        async with self._maintenance:
            if not await asyncio.to_thread(self._writer_done, pid, segment):
                return
            await asyncio.to_thread(self._prune_segments, segment, cut)
            logger.info("checkpoint written; restart replays from segment %d", segment)
            # with huge pages (opt-in, docs/serve.md) the child's copy-on-write split those the
            # loop wrote to while it ran; merged back, the next fork copies 2 MB entries again
            collapsed = 0
            if "glibc.malloc.hugetlb" in os.environ.get("GLIBC_TUNABLES", ""):
                collapsed = await asyncio.to_thread(_collapse_huge_pages)
            if collapsed:
                logger.info("checkpoint: %d MB merged back into huge pages", collapsed >> 20)

    def _prune_segments(self, checkpoint_segment: int, cut: int | None) -> None:
        """Remove segments before the checkpoint whose timed events the run already covers
        (kept ones are re-applied on top of the next run)."""
        stale = []
        for number in self.log.segments():
            if number >= checkpoint_segment:
                break
            times = [_event_time(r.body) for r in self.log.records(number) if r.segment == number]
            latest = max((t for t in times if t is not None), default=None)
            if cut is not None and (latest is None or latest <= cut):
                stale.append(number)
        with contextlib.suppress(OSError):
            self.log.remove_segments(stale)

    def _checkpoint_body(self, state: LiveState, segment: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "seq": self.applied_seq,
            "segment": segment,
            "feed_prefix": self.feed.prefix,
            "feed_base": self.feed.base,
            "state": state,
        }

    # -- reload ------------------------------------------------------------------------------

    async def reload(self) -> dict[str, Any]:
        """Swap in the run now at the run path (e.g. a repointed ``latest`` link)."""
        async with self._maintenance:
            old = self.current()
            run_dir = self.run_path.resolve()
            upto = self.applied_seq
            started = time.perf_counter()
            try:
                new, reapplied = await asyncio.to_thread(self._load_run, run_dir, upto)
            except (LiveError, OSError) as exc:
                logger.error("reload from %s failed: %s", run_dir, exc)
                raise ReloadFailed(
                    "the run directory could not be loaded; the current run keeps serving "
                    "(details in the server log)"
                ) from None
            if new.cut is not None and old.cut is not None and new.cut < old.cut:
                raise ReloadFailed(
                    f"run {new.run_id} ends before the current run {old.run_id}; a reload only "
                    "moves forward (start from a fresh state directory to go back)"
                )
            # re-applied on top of the new run: the logged events up to the reload's start, then
            # those logged while it loaded (the committer catches them up at the swap)
            reapplied += await self._enqueue("reload", (new, run_dir, upto))
            logger.info("reloaded run %s (was %s)", new.run_id, old.run_id)
            answer = {
                "run_id": new.run_id,
                "previous_run_id": old.run_id,
                "events_reapplied": reapplied,
                "seconds": round(time.perf_counter() - started, 3),
            }
        await self.checkpoint()
        return answer

    def _load_run(self, run_dir: Path, upto: int) -> tuple[LiveState, int]:
        """The run at ``run_dir`` with the logged events up to ``upto`` that it does not cover,
        and how many of them were applied on top of it."""
        state = LiveState.from_run(run_dir, self.config, self.progress)
        count = 0
        for record in self.log.records():
            if record.seq > upto:
                break
            count += _reapply(state, record)
        return state, count

    async def _swap(self, payload: tuple[LiveState, Path, int]) -> int:
        new, run_dir, upto = payload
        marker = {"reload": {"run_dir": str(run_dir), "run_id": new.run_id}}
        try:
            (seq,) = await asyncio.to_thread(self.log.append, [marker])
        except LogUnwritable as exc:
            raise ReloadFailed(f"the event log cannot be written ({exc.strerror})") from None
        tail = await asyncio.to_thread(lambda: list(self.log.records(after_seq=upto)))
        count = sum(_reapply(new, r) for r in tail if r.seq < seq)
        old = self.current()
        self.feed.freeze(old)
        self.feed.base = _alert_count(new)
        self.state = new
        self.applied_seq = seq
        return count

    # -- shutdown ----------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
        for pending in list(self._background):
            with contextlib.suppress(Exception):
                await pending
        self.log.close()


def _freeze_heap(full: bool = False) -> None:
    """Collect the objects created since the last freeze, then freeze the survivors; with
    ``full``, unfreeze first, so the collection covers everything frozen before too.

    The live state grows by tracked containers with every event (traces, transfer lists, the
    key index); left to the cyclic collector, each full pass rescans all of them, a pause of
    100+ ms at 100k nodes after a minute of 5,000 events/s, during which no decision is
    answered. Frozen objects are never scanned again. The collection first clears any cyclic
    garbage of the period, and the live state holds no reference cycles (docs/live.md,
    "Garbage collection"), but a freeze also keeps forever whatever cyclic garbage is still
    alive at that instant and dies later: measured, about five objects per client connection
    open at a freeze and closed since (an asyncio transport and its socket in a cycle), nothing
    from the requests themselves. ``full`` reclaims those.

    The collection covers generations 0 and 1, not 2: a collection of the oldest generation
    (what ``gc.collect()`` does) also *untracks* every young dict whose values are all atomic.
    When this was measured the engine's duplicate-check dict was one (the snapshot rows' digests
    as ints, millions of entries at 1M nodes; those are columns since, ``live.keys``, but any
    big index may be). Untracked, a dict drops out of the collector's lists; the next event that
    stores a tuple in it tracks it again, as a young object, so every collection of the young
    generations until the next freeze rescanned all of its entries: measured in process on the
    1M-node state (bench/serve_events.py), 69 µs per event in these freezes alone, about 170 ms
    per freeze, more than half the engine's own CPU per event.
    Collected up to generation 1 and then frozen, such a dict stays tracked and frozen, and is
    never scanned again. What reaches generation 2 between two freezes (objects that outlived
    an automatic collection of generation 1) is frozen without this collection looking at it;
    the automatic collections of generation 2 still run between freezes, and ``full``
    covers everything. Cost: a pass over the period's objects, 4-11 ms every 2,000 events at
    100k nodes (in process, loaded machine), 13-40 ms every 10,000; ``full``: a pass over the
    whole heap, about 0.3 s at 100k nodes, 2.1 s at 1M."""
    if full:
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        logger.info(
            "full garbage collection: %d unreachable objects reclaimed in %.0f ms",
            found,
            (time.perf_counter() - started) * 1e3,
        )
    else:
        gc.collect(1)
    gc.freeze()


class _Slices:
    """Work on the event loop cut into slices of about ``slice_us`` microseconds of wall time
    (``[serve] apply_slice_us``): after each unit of work, :meth:`used_up`; when it is,
    :meth:`answer_waiting_requests` before the next slice, which starts once they are answered."""

    def __init__(self, slice_us: int) -> None:
        self.budget = slice_us / 1e6
        self.end = time.perf_counter() + self.budget

    def used_up(self) -> bool:
        return time.perf_counter() >= self.end

    async def answer_waiting_requests(self) -> None:
        """Let the requests that arrived during a slice be answered before the next slice.

        A few turns of the event loop: in the first the loop polls the sockets and the server
        starts a task per request that arrived; those tasks were scheduled after this
        coroutine's own wake-up, so the following turns run them (a decision is answered in one
        step: its body came with it) before more work is done. Three turns, because asyncio's
        own loop reads a socket one turn later than uvloop does (measured: with uvloop two turns
        put a decision's wait under one slice, asyncio's loop needs three)."""
        for _ in range(_TURNS):
            await asyncio.sleep(0)
        self.end = time.perf_counter() + self.budget


def _reapply(state: LiveState, record: Record) -> bool:
    """Apply a logged event on top of a newer run when the run does not cover it."""
    if "event" not in record.body:
        return False
    ts = _event_time(record.body)
    if ts is not None and state.cut is not None and ts <= state.cut:
        return False
    return state.apply(record.body["event"]).status == "applied"


def _event_time(body: dict[str, Any]) -> int | None:
    if "event" not in body:
        return None
    try:
        return parse_event(body["event"]).ts
    except EventRejected:
        return None


def _alert_count(state: LiveState) -> int:
    count = 0
    while batch := state.alerts_after(count, 10_000):
        count = batch[-1].seq
    return count


def _rejected(exc: EventRejected) -> dict[str, Any]:
    return {
        "status": "rejected",
        "key": "",
        "issues": [{"field": i.column, "message": i.message} for i in exc.issues],
        "alerts": [],
        "decision": None,
    }


def _refusal(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return (
        f"the event log cannot be written ({reason}); events are refused until it can, "
        "decisions and reads are still served"
    )


def _background_priority() -> None:
    """Run this process (the checkpoint's child) only on CPU no one else wants: pickling the
    1M-node state takes about a minute of a core, every ``[serve] checkpoint_events`` events
    (every 20 s at 5,000 events/s), and must not be taken from the loop answering decisions,
    whatever the server's own priority (``SCHED_IDLE`` is below nice 19). On a machine with no
    idle CPU the checkpoint is late, not lost: the previous one and the log stay valid."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        with contextlib.suppress(OSError):
            os.nice(19)


_MADV_COLLAPSE = 25  # Linux 6.1+: make the range's pages huge pages now (synchronous)


def _collapse_huge_pages() -> int:
    """Ask the kernel to merge back into huge pages every mapping of this process marked for
    them (``hg`` in ``/proc/self/smaps``: glibc's arena under ``glibc.malloc.hugetlb=1``,
    numpy's large arrays); returns the bytes of the mappings it accepted. Without huge pages,
    or on a kernel without ``MADV_COLLAPSE``, nothing happens. In a thread: the system call
    holds no GIL, and the loop's page faults wait at most for one 2 MB page's copy."""
    import ctypes

    try:
        smaps = Path("/proc/self/smaps").read_text()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    ranges, current = [], None
    for line in smaps.splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and not head.endswith(":"):
            start, _, end = head.partition("-")
            current = (int(start, 16), int(end, 16))
        elif head == "VmFlags:" and current is not None and " hg" in line:
            ranges.append(current)
    done = 0
    for start, end in ranges:
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_COLLAPSE) == 0:
            done += end - start
    return done


def _write_checkpoint(path: Path, body: dict[str, Any]) -> None:
    """Pickle ``body``'s header, then its state, atomically to ``path`` (fsynced, then the
    directory too). Streamed, not ``pickle.dumps``: at the 5M-node state the pickle is
    gigabytes, and holding it in memory beside the state raised the service's peak RSS by as
    much."""
    header = {key: value for key, value in body.items() if key != "state"}
    with atomic_file(path) as fh:
        pickle.dump(header, fh, protocol=pickle.HIGHEST_PROTOCOL)
        _fork_safe_pickler(fh).dump(body["state"])
    fsync_dir(path.parent)


def _fork_safe_pickler(fh: Any) -> pickle.Pickler:
    """A pickler that writes polars Series and frames as Arrow arrays. The checkpoint is
    written in a forked child, which has none of the parent's threads: polars pickles a Series
    or frame of several chunks by rechunking it on its thread pool, which in the child waits
    forever for workers that are not there (the closed flows' columns grow by appends, so a
    checkpoint hung once they had several chunks). Arrow arrays are written without it."""
    import copyreg

    import polars as pl

    pickler = pickle.Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL)
    table = copyreg.dispatch_table.copy()
    table[pl.Series] = _reduce_series
    table[pl.DataFrame] = _reduce_frame
    pickler.dispatch_table = table
    return pickler


def _reduce_series(series: Any) -> tuple[Any, tuple[Any, ...]]:
    return _series_from_arrow, (series.name, series.to_arrow())


def _reduce_frame(frame: Any) -> tuple[Any, tuple[Any, ...]]:
    return _frame_from_arrow, ([column.to_arrow() for column in frame.get_columns()], frame.columns)


def _series_from_arrow(name: str, array: Any) -> Any:
    import polars as pl

    return pl.Series(name, array)


def _frame_from_arrow(arrays: list[Any], names: list[str]) -> Any:
    import polars as pl

    return pl.DataFrame([_series_from_arrow(n, a) for n, a in zip(names, arrays, strict=True)])


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint this service wrote (pickle: only ever read from its own state directory).

    The header is read and its format checked before the state is unpickled. A format-2 file
    is one pickle holding the state too; when that state no longer unpickles with this
    graphkit's classes the refusal says so instead of showing a pickle error."""
    way_out = (
        "start with the graphkit version that wrote it, or with a new --state directory (the "
        "service then loads the run and takes events afresh)"
    )
    with path.open("rb") as fh:  # streamed: no second copy of a multi-GB pickle in memory
        try:
            body = pickle.load(fh)
        except Exception as exc:  # an older state's classes: any unpickling error
            raise LiveError(
                f"{path}: not a checkpoint format {CHECKPOINT_FORMAT} can read "
                f"({type(exc).__name__}: {exc}); {way_out}"
            ) from exc
        if not isinstance(body, dict) or "format" not in body:
            raise LiveError(f"{path}: not a graphkit serve checkpoint")
        if body["format"] != CHECKPOINT_FORMAT:
            raise LiveError(
                f"{path}: checkpoint format {body['format']}, this graphkit reads format "
                f"{CHECKPOINT_FORMAT}: {way_out}"
            )
        try:
            body["state"] = pickle.load(fh)
        except EOFError as exc:
            raise LiveError(f"{path}: the checkpoint ends before its state") from exc
    if not isinstance(body["state"], LiveState):
        raise LiveError(f"{path}: the checkpoint holds no live state")
    return body
