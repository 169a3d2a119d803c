"""The snapshot rows' key columns (graphkit.live.keys) against a dict, CRC collisions included."""

from __future__ import annotations

import pickle
import random

from graphkit.live.keys import SnapshotKeys, crc


def colliding_keys(count: int) -> list[tuple[str, str]]:
    """``count`` pairs of distinct keys with the same CRC: a birthday search over random keys
    (about 80k keys per pair; sequential ids collide much later, the CRC being linear)."""
    rng = random.Random(11)
    seen: dict[int, str] = {}
    pairs = []
    while len(pairs) < count:
        key = f"transfer:{rng.getrandbits(64):016x}"
        other = seen.setdefault(crc(key), key)
        if other != key:
            pairs.append((other, key))
    return pairs


def test_get_is_a_dict_lookup_even_when_crcs_collide() -> None:
    rng = random.Random(7)
    pairs = colliding_keys(3)
    kept = {a: rng.getrandbits(64) for a, _ in pairs}  # one of each pair kept
    kept.update({f"transfer:U{i}": rng.getrandbits(64) for i in range(2000)})
    both = pairs[0][1]
    kept[both] = rng.getrandbits(64)  # and both keys of the first pair
    keys = SnapshotKeys()
    items = list(kept.items())
    rng.shuffle(items)
    keys.add("transfers", [k for k, _ in items], [d for _, d in items], "transfer:")
    keys.add("drawdowns", ["drawdown:D1"], [5], "drawdown:")
    restored = pickle.loads(pickle.dumps(keys))
    asked = [*kept, *(b for _, b in pairs), "transfer:nope", "", "drawdown:D1", "D1", "transfer"]
    for table in (keys, restored):
        for key in asked:
            assert table.get("transfers", key) == kept.get(key), key
        assert table.get("drawdowns", "drawdown:D1") == 5
        assert table.get("repayments", "drawdown:D1") is None
        assert len(table) == len(kept) + 1
        assert {(k, d) for t, k, d in table.items() if t == "transfers"} == set(kept.items())
