"""Training configuration: recipes, overrides, unknown keys, round trip through config.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tmkt_train.config import ConfigError, config_to_toml, load_recipe, make_config


def test_defaults_follow_method_md() -> None:
    cfg = make_config()
    assert (cfg.tau, cfg.v_threshold, cfg.surrogate) == (2.0, 0.5, "qgate")
    assert cfg.lambda_cka == 0.5 and cfg.lambda_tet == 1e-3 and cfg.weight_decay == 0.01
    assert cfg.resolved_lr() == pytest.approx(5e-3 * 120 / 1024)
    assert not cfg.mixup_normalized


def test_reference_training_details_are_the_defaults() -> None:
    """He et al.'s code: drop_last=True loaders, timm's filter of 1-D parameters from weight decay,
    CKA on membrane potentials, batch norm shared by both streams; TensorBoard off."""
    cfg = make_config()
    assert cfg.drop_last and not cfg.decay_1d and cfg.cka_features == "membrane"
    assert not cfg.bn_recalibrate and not cfg.tensorboard
    from tmkt_train.config import parse_assignments

    cfg = make_config(
        parse_assignments(["drop_last=false", "decay_1d=true", "cka_features=spikes", "bn_recalibrate=true"])
    )
    assert not cfg.drop_last and cfg.decay_1d and cfg.cka_features == "spikes" and cfg.bn_recalibrate


def test_every_option_is_documented() -> None:
    """docs/training-defaults.md has one table row per TrainConfig field, with its default."""
    from dataclasses import fields

    from tmkt_train.config import TrainConfig

    doc = (Path(__file__).resolve().parents[1] / "docs" / "training-defaults.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`"): line for line in doc.splitlines() if line.startswith("| `")
    }
    names = [f.name for f in fields(TrainConfig)]
    assert sorted(rows) == sorted(names)
    from tmkt_train.config import _toml_value

    cfg = make_config()
    for name in names:
        default = getattr(cfg, name)
        if default is not None and not isinstance(default, dict):  # as a recipe writes it
            assert f"| `{_toml_value(default)}` |" in rows[name], name


def test_recipe_then_flags(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[train]\nmethod = "sliding"\nepochs = 7\nlr = 1\nmag = false\n')
    cfg = make_config(load_recipe(recipe), epochs=3, batch_size=None)
    assert cfg.method == "sliding" and cfg.epochs == 3 and cfg.lr == 1.0 and cfg.mag is False
    assert cfg.batch_size == 120


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epoch": 3}, "unknown option 'epoch'"),
        ({"method": "distill"}, "method 'distill'"),
        ({"r_m": 1.5}, r"r_m = 1.5: expected a value in \[0, 1\]"),
        ({"mag": "yes"}, "mag = 'yes': expected true or false"),
        ({"epochs": 2.5}, "epochs = 2.5: expected a int"),
        ({"batch_size": 0}, "batch_size = 0"),
        ({"cka_features": "voltage"}, "cka_features = 'voltage': expected one of membrane, spikes"),
        ({"drop_last": 1}, "drop_last = 1: expected true or false"),
    ],
)
def test_bad_values_are_one_line(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(values)


def test_bad_recipe_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("method = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(bad)


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = make_config({"method": "tmkt", "r_m": 0.3, "store": 'a "quoted" path'}, epochs=2)
    text = config_to_toml(cfg)
    again = make_config(tomllib.loads(text)["train"])
    assert again == cfg
