"""Configuration: defaults match ARCHITECTURE section 7, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphkit.config import Config, ConfigError, apply_overrides, load_config


def test_contract_defaults() -> None:
    cfg = Config()
    assert cfg.circles.max_cycle_length == 6
    assert cfg.rings.min_customers_per_device == 3
    assert (cfg.flows.window_days, cfg.flows.max_hops, cfg.flows.policy) == (30, 6, "first")
    assert (cfg.clusters.resolution, cfg.clusters.seed) == (1.0, 42)
    assert cfg.clusters.weights == {
        "guarantee": 1.0,
        "shareholding": 1.0,
        "device": 0.5,
        "transfer": 0.5,
    }
    assert (cfg.alerts.drawdowns_per_day, cfg.alerts.banned_share) == (5, 0.3)


def test_file_overrides_and_cli_overrides(tmp_path: Path) -> None:
    path = tmp_path / "graphkit.toml"
    path.write_text(
        '[flows]\nmax_hops = 4\npolicy = "fifo"\n[clusters]\nweights = { device = 2 }\n'
    )
    cfg = load_config(path)
    assert (cfg.flows.max_hops, cfg.flows.policy) == (4, "fifo")
    assert cfg.clusters.weights["device"] == 2.0 and cfg.clusters.weights["guarantee"] == 1.0
    cfg = apply_overrides(cfg, {"flows.max_hops": 3, "flows.window_days": None})
    assert cfg.flows.max_hops == 3 and cfg.flows.window_days == 30
    assert Config().flows.max_hops == 6


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[flows]\nmax_hop = 4\n", "[flows] max_hop"),
        ("[flow]\nmax_hops = 4\n", "[flow]"),
        ('[flows]\nmax_hops = "four"\n', "[flows] max_hops"),
        ('[flows]\npolicy = "lifo"\n', "[flows] policy"),
        ("[clusters]\nweights = { phone = 1 }\n", "[clusters] weights.phone"),
        ("[alerts]\nbanned_share = 1.5\n", "[alerts] banned_share"),
        ("[alerts]\nexplain_neighbours = -1\n", "[alerts] explain_neighbours"),
        ("[rings]\nmin_customers_per_device = true\n", "[rings] min_customers_per_device"),
        ("[flows\n", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert key in str(info.value)
    assert str(path) in str(info.value)


def test_set_assignments_parse_toml_values() -> None:
    from graphkit.config import parse_assignments

    parsed = parse_assignments(
        ["flows.max_hops=4", "flows.policy=fifo", "clusters.weights={device=2}"]
    )
    assert parsed == {
        "flows.max_hops": 4,
        "flows.policy": "fifo",
        "clusters.weights": {"device": 2},
    }
    cfg = apply_overrides(Config(), parsed)
    assert cfg.flows.max_hops == 4 and cfg.clusters.weights["device"] == 2.0
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_assignments(["max_hops=4"])
