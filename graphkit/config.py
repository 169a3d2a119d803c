"""Run configuration: every key with its documented default (ARCHITECTURE section 7).

A config file is TOML with one table per section. Unknown sections or keys, and values of the
wrong type, are errors that name the key, because a silently ignored typo in a risk policy is
worse than a refused run. CLI flags override the file through :func:`apply_overrides`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


@dataclass
class CirclesConfig:
    max_cycle_length: int = 6  # L: elementary cycles up to this length are listed
    max_cycles_listed: int = 1000  # per circle; the summary says when the cap was hit


@dataclass
class RingsConfig:
    min_customers_per_device: int = 3  # k: a device linked to >= k customers is shared
    # A device linked to more customers than this is a hub (a shop terminal, a bank kiosk):
    # it is reported but does not join its customers into one ring.
    max_customers_per_device: int = 50


# How the amount replay decides which money leaves an account (docs/flows.md); checked once, when
# a config is loaded or overridden.
FlowPolicy = Literal["first", "fifo", "proportional"]
FLOW_POLICIES: tuple[FlowPolicy, ...] = get_args(FlowPolicy)


@dataclass
class FlowsConfig:
    window_days: float = 30.0  # W
    max_hops: int = 6  # H
    policy: FlowPolicy = "first"
    evidence_paths: int = 3  # evidence paths kept per drawdown
    max_expand_per_hop: int = 10_000  # cap on transfers one account may expand per hop
    cycle_max_length: int = 6  # round-tripping cycles up to this many transfers
    cycle_window_days: float = 30.0
    max_paths_per_drawdown: int = 10_000  # partial evidence paths kept per drawdown per hop
    max_cycles: int = 100_000  # round-tripping cycles listed; the manifest says when hit


@dataclass
class ClustersConfig:
    resolution: float = 1.0  # gamma
    seed: int = 42
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "guarantee": 1.0,
            "shareholding": 1.0,
            "device": 0.5,
            "transfer": 0.5,
        }
    )
    shareholding_threshold: float = 0.2  # shares below this do not tie two customers
    transfer_threshold: float = 0.0  # net transfer amount between two customers to tie them
    min_cluster_size: int = 2  # singletons are not reported as clusters
    # Leiden iterations; -1 iterates until no vertex moves (slow on large graphs: the last
    # iterations move a few vertices each for tiny modularity gains; see docs/analytics.md).
    leiden_iterations: int = 2
    # Leiden iterations of a warm start's proposals (`graphkit run --previous`): merges of
    # whole clusters, then, if needed, customer moves (docs/analytics.md, "Stable cluster ids").
    warm_leiden_iterations: int = 2
    # Spark engine: a component of the tie graph with more tied customers than this is split by
    # a distributed first pass and solved per part (docs/spark.md, "Clusters per component").
    # A component of 1M customers and 2M ties (the generator has 1.6 ties per tied customer) is
    # a Leiden of ~0.7 GB peak in one executor's Python worker, ~2 minutes on a busy core;
    # the embedded engine ignores this.
    max_component_size: int = 1_000_000
    # Spark engine: the contraction of a split component (one vertex per community its parts
    # found) is solved whole by one Leiden task up to this many vertices, split again above it.
    # It is several times smaller than the component (16,147 customers -> 4,611 communities on
    # the generated net20k), and solving it whole is what keeps the split's modularity loss
    # small (docs/spark.md, "Components too large for one executor").
    max_contraction_size: int = 1_000_000
    # Spark engine: rounds of distributed local moves after a split component's merge (each
    # customer may move to the neighbouring community of largest modularity gain; a round that
    # does not raise modularity is dropped). 0 turns the refinement off.
    split_refine_rounds: int = 5
    # A warm start keeps previous clusters as they were while its modularity stays within this
    # share of a cold start's (hysteresis, change by change): an unchanged input then changes no
    # cluster, and small daily changes do not cost cluster ids for a gain in the fourth decimal.
    keep_tolerance: float = 0.005
    # Cluster risk score: weights of its components (docs/analytics.md); missing components
    # (no labels, no flows, no scores) are left out and the rest renormalised.
    risk_weights: dict[str, float] = field(
        default_factory=lambda: {
            "default_rate": 0.35,
            "banned_share": 0.25,
            "circles": 0.15,
            "score": 0.15,
            "size": 0.10,
        }
    )


@dataclass
class ContagionConfig:
    debtrank_rounds: int = 10
    pagerank_damping: float = 0.85
    # Share of a guaranteed amount that is lost by the guarantor when the borrower defaults.
    loss_given_default: float = 1.0


@dataclass
class GnnConfig:
    enabled: bool = True
    hidden: int = 32
    epochs: int = 200
    patience: int = 20
    learning_rate: float = 0.01
    seed: int = 7
    # Wall-clock budget for GNN training in seconds (0: none); the best epoch so far is kept.
    max_train_seconds: float = 480.0
    # Up to this many customers the GNN trains full batch (one exact gradient step per epoch is
    # fastest there); above it, on mini-batches of ``batch_size`` customers, each with its whole
    # two-hop neighbourhood, so scores and explanations stay exact full-graph ones. At 5M nodes
    # full batch fits only ~22 steps in the time budget.
    full_batch_max_customers: int = 500_000
    batch_size: int = 4096
    # Folds of the gradient-boosted tree prior the GNN reads as an input (gnn/prior.py); 0: none.
    tree_prior_folds: int = 5
    # ... used only when the training split has this many defaults: trees fitted on fewer are
    # too noisy to lean on (on 1,200 customers the prior cost the GNN 6-10 ROC-AUC points).
    tree_prior_min_positives: int = 500
    snapshot: str = ""  # ISO date; empty means the latest event time in the input
    # The credit-cosmetics features (gnn/cosmetics.py); false gives the feature set before them.
    cosmetic_features: bool = True
    # How the labelled customers are split into train / validation / test: "random" (stratified
    # by class, seeded) or "default_date" (defaults in date order, the rest by a seeded hash of
    # the id: gnn/train.py time_split). The Spark engine applies both: "default_date" gives the
    # same parts as embedded; "random" the same per-class shares with the permutation drawn by a
    # seeded hash of the id (graphkit/spark/training.py), not numpy's draw.
    split: str = "random"
    # `--engine spark`: at most this many labelled customers are sampled for training; they and
    # their two-hop neighbourhoods are the only part of the customer graph collected to the
    # driver (docs/spark.md, "Features and GNN"). Up to half of them are defaulted customers
    # (all of them when there are fewer). 100k seeds with their neighbourhoods are a graph the
    # embedded engine trains on one machine in minutes.
    spark_train_customers: int = 100_000


@dataclass
class AlertsConfig:
    drawdowns_per_day: int = 5
    banned_share: float = 0.3
    yellow_score: float = 0.3
    orange_score: float = 0.6
    red_score: float = 0.85
    policy_file: str = ""  # a TOML policy overriding these thresholds
    # Red and orange customers (most severe first, at most this many; 0 = none) whose reasons
    # name the neighbours that drove their GNN score (docs/alerts.md, Rules, "Network"). Each
    # costs one batch of occlusions on its two-hop subgraph; nothing without a trained GNN.
    explain_neighbours: int = 200


@dataclass
class LiveConfig:
    # An event whose time is earlier than the latest event applied by more than this is refused
    # (late events within it are applied, and the fund-flow traces they touch are re-traced).
    max_lateness_seconds: float = 300.0
    # Velocity signals (docs/live.md): a drawdown within this many minutes of its line opening
    # or of the line's last repayment counts as a fast draw.
    fast_draw_minutes: float = 10.0
    # Night-time drawdowns: UTC hours [night_start_hour, night_end_hour).
    night_start_hour: int = 0
    night_end_hour: int = 6


@dataclass
class ServeConfig:
    # `graphkit serve` (docs/serve.md). Loopback unless the operator says otherwise.
    host: str = "127.0.0.1"
    port: int = 8700
    # Environment variable holding the bearer token; unset or empty = no authentication.
    token_env: str = "GRAPHKIT_API_TOKEN"
    # A request body larger than this is refused with 413 before it is parsed.
    max_body_bytes: int = 4 * 1024 * 1024
    # Events per POST /v1/events (more is 413).
    max_batch_events: int = 1000
    # A checkpoint after this many logged events bounds the log a restart replays.
    checkpoint_events: int = 100_000
    # Events accepted but not yet applied; beyond this new batches get 503 + Retry-After, so an
    # overload is pushed back to the senders instead of queueing without bound.
    max_pending_events: int = 5_000
    # The committer applies logged events in slices of about this many microseconds (wall clock;
    # at least one event each) and answers the requests that arrived meanwhile (decisions,
    # reads) between two slices, so a decision waits behind one slice, not a whole group.
    apply_slice_us: int = 1_000
    # After this many applied events the committer collects the objects created since the last
    # time and freezes the survivors (gc.freeze), so the cyclic collector's full passes never
    # rescan the growing live state (pauses of 100+ ms otherwise); 0 = never.
    gc_freeze_events: int = 2_000
    # A freeze also keeps forever the cyclic garbage of what was alive at that instant and died
    # later (about five objects per client connection then open and closed since); one full
    # collection over everything, frozen included, at most this often reclaims it, so the leak
    # is bounded by this period's worth. It pauses the loop for a pass over the whole state
    # (about 0.3 s at 100k nodes, 2.1 s at 1M: bench/serve_gc.py); 0 = never.
    gc_full_collect_seconds: float = 3_600.0


@dataclass
class Neo4jConfig:
    # Where investigators open Neo4j Browser and the Bolt server it connects to: the deep links
    # of alerts.csv and the report point here (docs/neo4j.md, "Deep links"). A shared server's
    # addresses go in the config file; the defaults are `graphkit neo4j start`'s.
    browser_url: str = "http://127.0.0.1:7474"
    bolt_uri: str = "bolt://127.0.0.1:7687"


@dataclass
class Config:
    circles: CirclesConfig = field(default_factory=CirclesConfig)
    rings: RingsConfig = field(default_factory=RingsConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    clusters: ClustersConfig = field(default_factory=ClustersConfig)
    contagion: ContagionConfig = field(default_factory=ContagionConfig)
    gnn: GnnConfig = field(default_factory=GnnConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    neo4j: Neo4jConfig = field(default_factory=Neo4jConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


GNN_SPLITS = ("random", "default_date")
CLUSTER_WEIGHT_KEYS = ("guarantee", "shareholding", "device", "transfer")


def _coerce(section: str, key: str, current: Any, value: Any) -> Any:
    where = f"[{section}] {key}"
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(current, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        merged = dict(current)
        for sub, subval in value.items():
            if sub not in current:
                raise ConfigError(f"{where}.{sub}: unknown key (known: {', '.join(current)})")
            merged[sub] = _coerce(section, f"{key}.{sub}", current[sub], subval)
        return merged
    raise ConfigError(f"{where}: unsupported value {value!r}")


def _validate(cfg: Config) -> None:
    checks: list[tuple[bool, str]] = [
        (cfg.circles.max_cycle_length >= 2, "[circles] max_cycle_length must be >= 2"),
        (cfg.circles.max_cycles_listed >= 0, "[circles] max_cycles_listed must be >= 0"),
        (cfg.rings.min_customers_per_device >= 2, "[rings] min_customers_per_device must be >= 2"),
        (
            cfg.rings.max_customers_per_device >= cfg.rings.min_customers_per_device,
            "[rings] max_customers_per_device must be >= min_customers_per_device",
        ),
        (cfg.flows.window_days > 0, "[flows] window_days must be > 0"),
        (cfg.flows.max_hops >= 1, "[flows] max_hops must be >= 1"),
        (
            cfg.flows.policy in FLOW_POLICIES,
            f"[flows] policy must be one of {', '.join(FLOW_POLICIES)}, got {cfg.flows.policy!r}",
        ),
        (cfg.flows.max_expand_per_hop >= 1, "[flows] max_expand_per_hop must be >= 1"),
        (cfg.flows.evidence_paths >= 0, "[flows] evidence_paths must be >= 0"),
        (cfg.flows.cycle_max_length >= 2, "[flows] cycle_max_length must be >= 2"),
        (cfg.flows.cycle_window_days > 0, "[flows] cycle_window_days must be > 0"),
        (cfg.flows.max_paths_per_drawdown >= 1, "[flows] max_paths_per_drawdown must be >= 1"),
        (cfg.flows.max_cycles >= 0, "[flows] max_cycles must be >= 0"),
        (cfg.clusters.resolution > 0, "[clusters] resolution must be > 0"),
        (
            all(w >= 0 for w in cfg.clusters.weights.values()),
            "[clusters] weights must be >= 0",
        ),
        (
            0 <= cfg.clusters.shareholding_threshold <= 1,
            "[clusters] shareholding_threshold must be in [0, 1]",
        ),
        (cfg.clusters.min_cluster_size >= 1, "[clusters] min_cluster_size must be >= 1"),
        (
            cfg.clusters.leiden_iterations == -1 or cfg.clusters.leiden_iterations >= 1,
            "[clusters] leiden_iterations must be -1 (until stable) or >= 1",
        ),
        (
            cfg.clusters.warm_leiden_iterations == -1 or cfg.clusters.warm_leiden_iterations >= 1,
            "[clusters] warm_leiden_iterations must be -1 (until stable) or >= 1",
        ),
        (cfg.clusters.max_component_size >= 2, "[clusters] max_component_size must be >= 2"),
        (cfg.clusters.max_contraction_size >= 2, "[clusters] max_contraction_size must be >= 2"),
        (cfg.clusters.split_refine_rounds >= 0, "[clusters] split_refine_rounds must be >= 0"),
        (
            0.0 <= cfg.clusters.keep_tolerance < 1.0,
            "[clusters] keep_tolerance must be in [0, 1)",
        ),
        (
            all(w >= 0 for w in cfg.clusters.risk_weights.values())
            and sum(cfg.clusters.risk_weights.values()) > 0,
            "[clusters] risk_weights must be >= 0 with a positive sum",
        ),
        (
            0 < cfg.contagion.pagerank_damping < 1,
            "[contagion] pagerank_damping must be in (0, 1)",
        ),
        (
            0 <= cfg.alerts.yellow_score <= cfg.alerts.orange_score <= cfg.alerts.red_score <= 1,
            "[alerts] scores must satisfy 0 <= yellow_score <= orange_score <= red_score <= 1",
        ),
        (0 <= cfg.alerts.banned_share <= 1, "[alerts] banned_share must be in [0, 1]"),
        (cfg.alerts.drawdowns_per_day >= 1, "[alerts] drawdowns_per_day must be >= 1"),
        (cfg.alerts.explain_neighbours >= 0, "[alerts] explain_neighbours must be >= 0"),
        (cfg.live.max_lateness_seconds >= 0, "[live] max_lateness_seconds must be >= 0"),
        (cfg.live.fast_draw_minutes >= 0, "[live] fast_draw_minutes must be >= 0"),
        (
            0 <= cfg.live.night_start_hour <= 23 and 0 <= cfg.live.night_end_hour <= 24,
            "[live] night_start_hour must be in 0..23 and night_end_hour in 0..24",
        ),
        (0 < cfg.serve.port < 65536, "[serve] port must be in 1..65535"),
        (cfg.serve.max_body_bytes >= 1024, "[serve] max_body_bytes must be >= 1024"),
        (cfg.serve.max_batch_events >= 1, "[serve] max_batch_events must be >= 1"),
        (cfg.serve.checkpoint_events >= 1, "[serve] checkpoint_events must be >= 1"),
        (
            cfg.serve.max_pending_events >= cfg.serve.max_batch_events,
            "[serve] max_pending_events must be >= max_batch_events",
        ),
        (cfg.serve.apply_slice_us >= 1, "[serve] apply_slice_us must be >= 1"),
        (cfg.serve.gc_freeze_events >= 0, "[serve] gc_freeze_events must be >= 0"),
        (
            cfg.serve.gc_full_collect_seconds >= 0,
            "[serve] gc_full_collect_seconds must be >= 0",
        ),
        (
            cfg.neo4j.browser_url.startswith(("http://", "https://"))
            and "@" not in cfg.neo4j.browser_url,
            "[neo4j] browser_url must be an http:// or https:// URL without credentials",
        ),
        (
            "@" not in cfg.neo4j.bolt_uri and "://" in cfg.neo4j.bolt_uri,
            "[neo4j] bolt_uri must be a URI without credentials (bolt://host:7687)",
        ),
        (cfg.gnn.max_train_seconds >= 0, "[gnn] max_train_seconds must be >= 0"),
        (
            cfg.gnn.tree_prior_folds == 0 or cfg.gnn.tree_prior_folds >= 2,
            "[gnn] tree_prior_folds must be 0 (no prior) or >= 2",
        ),
        (cfg.gnn.tree_prior_min_positives >= 0, "[gnn] tree_prior_min_positives must be >= 0"),
        (cfg.gnn.batch_size >= 1, "[gnn] batch_size must be >= 1"),
        (cfg.gnn.full_batch_max_customers >= 0, "[gnn] full_batch_max_customers must be >= 0"),
        (
            cfg.gnn.split in GNN_SPLITS,
            f"[gnn] split must be one of {', '.join(GNN_SPLITS)}, got {cfg.gnn.split!r}",
        ),
        (
            cfg.gnn.spark_train_customers >= 100,
            "[gnn] spark_train_customers must be >= 100 (a model needs 20 of each class per part)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def from_mapping(data: dict[str, Any], base: Config | None = None) -> Config:
    """Build a validated :class:`Config` from a TOML-shaped mapping over ``base`` (defaults)."""
    source = base if base is not None else Config()
    cfg = Config(**{f.name: dataclasses.replace(getattr(source, f.name)) for f in fields(Config)})
    sections = {f.name for f in fields(Config)}
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(
                f"[{section}]: unknown section (known: {', '.join(sorted(sections))})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}]: expected a table of keys")
        target = getattr(cfg, section)
        known = {f.name for f in fields(target)}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"[{section}] {key}: unknown key (known: {', '.join(sorted(known))})"
                )
            setattr(target, key, _coerce(section, key, getattr(target, key), value))
    _validate(cfg)
    return cfg


def load_config(path: Path | str | None = None) -> Config:
    """Read a graphkit TOML config; ``None`` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """Parse ``section.key=value`` strings (CLI ``--set``); values are TOML, else plain text."""
    parsed: dict[str, Any] = {}
    for item in assignments:
        dotted, sep, raw = item.partition("=")
        if not sep or "." not in dotted:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        try:
            parsed[dotted.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            parsed[dotted.strip()] = raw
    return parsed


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Apply ``{"section.key": value}`` overrides (from CLI flags); ``None`` values are skipped."""
    data: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})[key] = value
    return from_mapping(data, base=cfg)
