"""The live engine's array step moves the same money, bit for bit, as a trace-by-trace loop.

``graphkit.live.holdings.step`` moves every holder's taint out of an account at once; the
exactness suite checks the live engine against batch within float tolerance, so these tests
pin the stronger property the array step was built to keep: the very same floats as the one-
trace loop (the engine's previous form), on random tables, hub caps and ties included, and on
whole replays with every transfer taken by the array path or every one by the Python path.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphkit.live.flows import LiveFlows
from graphkit.live.holdings import step
from tests.live_fixtures import all_cuts, random_tables, replay_state, small_config


def one_row(held: list[float], since: list[int], amount: float, position: int, cap: int):
    """The ``first`` policy for one trace, written as the per-trace loop: lowest layer first,
    ``min(held, room)`` per layer, a layer skipped (and the trace capped) when ``cap`` or more
    transfers out came after its first arrival, stop at the first held layer with no room."""
    taint, moved, capped, room = list(held), [0.0] * len(held), False, amount
    for layer, value in enumerate(held):
        if value <= 0:
            continue
        if room <= 0:
            break
        if position >= cap and position - (since[layer] - 1) >= cap:
            capped = True
            continue
        if value > room:
            taint[layer], moved[layer], room = value - room, room, 0.0
            break
        taint[layer], moved[layer] = 0.0, value
        room -= value
    return taint, moved, capped


amounts = st.one_of(
    st.just(0.0),
    st.sampled_from([0.1, 0.2, 0.3, 1.0, 2.5, 7.0, 100.0]),
    st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300)
@given(
    rows=st.lists(
        st.tuples(
            st.lists(amounts, min_size=6, max_size=6),
            st.lists(st.integers(min_value=1, max_value=12), min_size=6, max_size=6),
        ),
        min_size=1,
        max_size=12,
    ),
    amount=amounts.filter(lambda x: x > 0),
    position=st.integers(min_value=0, max_value=12),
    cap=st.integers(min_value=1, max_value=6),
)
def test_step_gives_the_one_trace_loops_floats(rows, amount, position, cap) -> None:
    held = np.array([r[0] for r in rows])
    since = np.array([r[1] for r in rows], dtype=np.int64)
    taint = held.copy()
    moved, capped = step(taint, since if position >= cap else None, amount, position, cap)
    for i, (row_held, row_since) in enumerate(rows):
        want_taint, want_moved, want_capped = one_row(row_held, row_since, amount, position, cap)
        assert taint[i].tobytes() == np.array(want_taint).tobytes(), (i, rows[i])
        assert moved[i].tobytes() == np.array(want_moved).tobytes(), (i, rows[i])
        assert bool(capped[i]) == want_capped


@pytest.mark.parametrize("seed", [0, 3, 7, 11])
def test_array_and_python_paths_give_the_same_bits(seed: int, monkeypatch) -> None:
    """Every transfer moved by the array step, then every one by the per-trace Python step:
    the same banned amounts per hop, capped flags and minimum hops, compared as pickled bytes."""
    config = small_config()
    if seed % 2:
        config.flows.max_expand_per_hop = 2  # the hub cap binds
    tables = random_tables(seed, 8)
    cuts = all_cuts(tables)
    for cut in (cuts[0], cuts[len(cuts) // 2]):
        results = []
        for small in (0, 10**9):
            monkeypatch.setattr(LiveFlows, "SMALL", small)
            state = replay_state(tables, cut, config)
            results.append(pickle.dumps(sorted(state.flows.results(), key=str)))
        assert results[0] == results[1], f"seed {seed}, cut {cut}"
