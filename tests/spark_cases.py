"""Small random networks for comparing the Spark engine with the embedded one.

A Spark job costs seconds even on ten rows, so one case is a disjoint union of many small random
networks (``parts``), each dense enough to have rings, circles and flows into banned sinks: one
comparison covers many shapes at the cost of one job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from loaders.frames import make_tables

START = datetime(2025, 1, 1, tzinfo=UTC)


def random_tables(seed: int, parts: int = 6, size: int = 8) -> dict[str, pl.DataFrame]:
    """A disjoint union of ``parts`` random networks of about ``size`` customers each."""
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, list]] = {}

    def add(table: str, **columns: object) -> None:
        target = rows.setdefault(table, {})
        for key, value in columns.items():
            target.setdefault(key, []).append(value)

    add("sectors", sector="ok", banned=False)
    add("sectors", sector="casino", banned=True)
    for p in range(parts):
        n = int(rng.integers(2, size + 1))
        customers = [f"p{p}c{i}" for i in range(n)]
        for i, c in enumerate(customers):
            add("customers", customer_id=c, kind="enterprise" if i % 2 else "person")
            add("credit_lines", line_id=f"p{p}L{i}", customer_id=c, limit=1000.0)
            add("accounts", account_id=f"p{p}A{i}", owner_id=c)
            if rng.random() < 0.7:
                add("labels", customer_id=c, defaulted=bool(rng.random() < 0.3))
        merchants = int(rng.integers(1, 4))
        for m in range(merchants):
            add("merchants", merchant_id=f"p{p}M{m}", sector="casino" if m == 0 else "ok")
            add("accounts", account_id=f"p{p}MA{m}", owner_id=f"p{p}M{m}")
        accounts = [f"p{p}A{i}" for i in range(n)] + [f"p{p}MA{m}" for m in range(merchants)]
        # guarantees: random directed pairs, some mutual, so circles of several sizes appear;
        # amounts with cents, so the circles' float sums depend on the order they are added in
        for _ in range(int(rng.integers(0, 3 * n))):
            a, b = rng.choice(n, 2, replace=False)
            add("guarantees", guarantor_id=customers[a], borrower_id=customers[b],
                    amount=round(float(rng.random()) * 100 + 0.01, 2))  # fmt: skip
        # devices: few devices per part, so some are shared by k or more customers
        for _ in range(int(rng.integers(0, 2 * n))):
            add("device_links", customer_id=customers[int(rng.integers(n))],
                device_id=f"p{p}V{int(rng.integers(4))}")  # fmt: skip
        # drawdowns and transfers on a coarse clock, so equal timestamps (ties) are common
        for d in range(int(rng.integers(1, n + 2))):
            c = int(rng.integers(n))
            add("drawdowns", drawdown_id=f"p{p}D{d}", line_id=f"p{p}L{c}",
                account_id=f"p{p}A{c}", amount=float(rng.integers(50, 500)),
                ts=START + timedelta(days=int(rng.integers(0, 40))),
                device_id=f"p{p}V{rng.integers(4)}" if rng.random() < 0.5 else None)  # fmt: skip
        for t in range(int(rng.integers(0, 4 * n))):
            s, r = rng.choice(len(accounts), 2, replace=False)
            add("transfers", transfer_id=f"p{p}T{t:03d}", src_account=accounts[s],
                dst_account=accounts[r], amount=float(rng.integers(10, 400)),
                ts=START + timedelta(days=int(rng.integers(0, 60))))  # fmt: skip
    return make_tables(**{name: pl.DataFrame(columns) for name, columns in rows.items()})
