"""Synthetic revolving-credit risk network with planted ground truth.

The generator writes every table of :data:`graphkit.schema.TABLES` (customers carry two extra
numeric features, ``bureau_score`` and ``income``) and, next to them, ``_truth/``: the structures
it planted on purpose, so analytics can be scored against known answers.

What is planted (details and rates in ``docs/generator.md`` and :class:`Rates`):

* **Guarantee circles** (sizes 2-8): a directed cycle plus chords over the members. Every other
  guarantee points from a lower to a higher rank of one random order of "super nodes" (a circle
  counts as one), so the strongly connected components of size >= 2 are exactly the circles.
* **Related-enterprise groups** (sizes 5-30): one or two controlling persons and enterprises tied
  by a shareholding tree (shares >= 0.2), guarantees, devices shared by pairs and transfers;
  ties leaving a group are sparse.
* **Device-sharing rings** (3-10 customers on 1-3 devices). Every other device is used by at
  most two customers, except a few hub devices (shop terminals with 100+ customers).
* **Fund chains**: a drawdown into a dedicated account, then 1-6 strictly later transfers through
  fresh intermediary accounts into a banned-sector merchant, all within 30 days.
* **Laundering** (the seed's "38% of loan money reaches banned sectors after >= 3 transfers"):
  diverters, picked by credit limit until their laundered drawdowns are ``launder_share`` of all
  drawdowns, draw most of their limit every 31-40 days into a laundering account and pass it on
  through their own mule accounts into a banned sink, 1-6 hops weighted to >= 3, 85-100% of the
  money a hop.
  Nothing else can reach a banned sink on a time-respecting path and no two chains of an account
  share a 30-day window, so each planted chain is its drawdown's only path there and its hop
  count the minimum. Noise paths reach banned sinks only by going back in time or leaving the
  30-day window.
* **Drawdown bursts** (>= 5 drawdowns a day) and **defaults**: independent ones driven by a
  latent risk the features reveal noisily (members of one group, circle or ring share
  ``shared_risk`` of it: related firms rise and fall together), burst-driven ones, and
  contagion along guarantee, circle and ring ties. Default dates fall in the 90 days after the
  observation window.
* **Credit cosmetics** (信用美容): ``cosmetic_share`` of customers, persons picked among the
  risky, draw small, nearly constant amounts on a fixed schedule and repay each within hours, so
  their record looks perfect while they default far more often (``_truth/cosmetics.parquet``).
  Planted last, from a stream of its own: nothing else changes.

Customers are generated in chunks of independent communities (no tie crosses a chunk; only the
shared merchants and sectors do), so memory is bounded by the chunk size and the time is linear
in the number of customers. Output is a deterministic function of (customers, seed, start, days,
chunk_customers): same arguments, byte-identical files.

The package is split by concern: :mod:`.world` (shared constants, rates, the world and a chunk's
state), :mod:`.customers` (customers, lines, accounts, repayments), :mod:`.drawdowns`
(drawdowns, laundering and every transfer), :mod:`.guarantees`, :mod:`.shareholdings`,
:mod:`.devices`, :mod:`.truth` (defaults, planted structures, counts), :mod:`.cosmetics`
(the credit-cosmetics customers' records) and :mod:`.generator`
(chunks assembled in memory or into files). The steps draw from one random stream per chunk in
a fixed order (:func:`loaders.synthetic.generator._generate_chunk`), so moving code between
modules never changes a byte of output; reordering the calls would.
"""

from __future__ import annotations

from loaders.synthetic.customers import CUSTOMER_EXTRAS
from loaders.synthetic.generator import (
    CSV_DATETIME,
    FORMATS,
    TRUTH_DIR,
    GeneratedData,
    generate,
    generate_tables,
)
from loaders.synthetic.truth import TRUTH_SCHEMAS
from loaders.synthetic.world import (
    BANNED_SECTORS,
    CAUSES,
    CHANNELS,
    CONDUIT_SECTOR,
    CUSTOMER_SECTORS,
    DAY,
    HOUR,
    MAX_CHAIN_HOPS,
    NOISE_KINDS,
    NORMAL_SECTORS,
    PERFORMANCE_DAYS,
    REGIONS,
    SECTOR_CODES,
    WINDOW_DAYS,
    Rates,
)

__all__ = [
    "BANNED_SECTORS",
    "CAUSES",
    "CHANNELS",
    "CONDUIT_SECTOR",
    "CSV_DATETIME",
    "CUSTOMER_EXTRAS",
    "CUSTOMER_SECTORS",
    "DAY",
    "FORMATS",
    "HOUR",
    "MAX_CHAIN_HOPS",
    "NOISE_KINDS",
    "NORMAL_SECTORS",
    "PERFORMANCE_DAYS",
    "REGIONS",
    "SECTOR_CODES",
    "TRUTH_DIR",
    "TRUTH_SCHEMAS",
    "WINDOW_DAYS",
    "GeneratedData",
    "Rates",
    "generate",
    "generate_tables",
]
