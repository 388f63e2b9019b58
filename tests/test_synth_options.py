"""Simulator options shared by ``tmkt-data synth`` and recipes: recordings per class, noise keys, 2:1 images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tmkt_data.cli import user_errors
from tmkt_data.cli_synth import synth_command
from tmkt_data.formats import atis_bin
from tmkt_data.rgb import load_rgb
from tmkt_data.sizes import SizeError, parse_size_hw, parse_size_wh
from tmkt_data.synth import (
    METADATA_FILE,
    SIM_OPTIONS,
    SimParams,
    SynthError,
    params_from_options,
    parse_per_class,
    sample_rng,
    simulate_image,
)
from tmkt_train.pipeline import SYNTH_KEYS, load_pipeline, synth_step

REPO = Path(__file__).resolve().parents[1]
#: digitpairs source small enough for tests: 4 training and 2 test images per class
PAIR_OPTS = {"per_class_train": 4, "per_class_test": 2, "seed": 3}


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("synth")(user_errors(synth_command))

    @app.command("other")
    def _other() -> None:  # a second command keeps "synth" as a subcommand
        pass

    return app


def _read_tree(out: Path) -> tuple[dict, dict[str, Path]]:
    meta = json.loads((out / METADATA_FILE).read_text())
    return meta, {row[1]: out / row[0] for row in meta["samples"]["rows"] if row[0] is not None}


# --------------------------------------------------------------------------- option parsing


def test_parse_size_and_per_class() -> None:
    assert parse_size_wh(34) == parse_size_wh("34") == (34, 34)
    assert parse_size_wh([32, 16]) == parse_size_wh("32,16") == parse_size_wh("32x16") == (32, 16)
    assert parse_size_hw("16,32") == parse_size_hw([16, 32]) == (16, 32)  # the order is the caller's
    for bad in ("0", "32,16,2", [32.5, 16], "a", True, [0, 3]):
        with pytest.raises(SizeError, match=r"render .*expected S or W,H with positive integers"):
            parse_size_wh(bad, "render")
        with pytest.raises(SynthError, match=r"--size .*expected S or H,W with positive integers"):
            parse_size_hw(bad, "--size", error=SynthError)
    assert parse_per_class(None) is None
    assert parse_per_class(5) == parse_per_class("5") == {"train": 5, "test": 5}
    want = {"train": 30, "test": 5}
    assert parse_per_class("train=30,test=5") == parse_per_class({"train": 30, "test": 5}) == want
    assert parse_per_class("train=3") == {"train": 3}
    with pytest.raises(SynthError, match=r"--per-class val=3: expected train=N and/or test=M"):
        parse_per_class("train=1,val=3", "--per-class")
    with pytest.raises(SynthError, match=r"per_class train=-1: expected train=N"):
        parse_per_class({"train": -1})
    with pytest.raises(SynthError, match=r"per_class 2.5: expected N or train=N,test=M"):
        parse_per_class(2.5)


def test_params_from_options_maps_every_key() -> None:
    assert params_from_options({}) == SimParams()
    assert params_from_options(dict.fromkeys(SIM_OPTIONS)) == SimParams()  # None keeps the default
    p = params_from_options({
        "threshold": 0.3, "c_off": 0.4, "sigma": 0.06, "eps": 0.1, "refractory_us": 500,
        "leak_rate_hz": 0.5, "shot_rate_hz": 4, "motion": "rcls", "sensor": [36, 20], "render": "32,16",
        "resample": "nearest", "seed": 9, "saccade_side_px": 2.5,
    })  # fmt: skip
    assert p == SimParams(
        c_on=0.3, c_off=0.4, sigma=0.06, eps=0.1, refractory_us=500, leak_rate_hz=0.5, shot_rate_hz=4,
        motion="rcls", sensor_size=(36, 20), render_size=(32, 16), resample="nearest", seed=9,
        saccade_side_px=2.5,
    )  # fmt: skip
    with pytest.raises(SynthError, match=r"simulator option\(s\) leak_hz: expected some of threshold"):
        params_from_options({"leak_hz": 1.0})
    with pytest.raises(SynthError, match=r"synth parameter shot_rate_hz=-1: expected a number >= 0"):
        params_from_options({"shot_rate_hz": -1})
    with pytest.raises(SynthError, match=r"synth parameter sigma='0.1': expected a number >= 0"):
        params_from_options({"sigma": "0.1"})


# --------------------------------------------------------------------------- 2:1 images


def test_two_to_one_image_on_a_square_and_a_fitted_sensor() -> None:
    """A 8x16 image rendered 32x16: W and H are not swapped, and the digit halves stay apart."""
    img = np.zeros((8, 16), np.uint8)
    img[2:6, 2:6] = 255  # a bright square in the left half only
    for sensor in ((34, 34), (36, 20)):
        p = SimParams(sensor_size=sensor, render_size=(32, 16), resample="nearest")
        ev, meta = simulate_image(img, p, sample_rng(0, 0))
        ox, oy = (sensor[0] - 32) / 2, (sensor[1] - 16) / 2
        assert meta["pixel_transform"]["scale"] == [2.0, 2.0]
        assert meta["pixel_transform"]["offset_px"] == [ox, oy]
        assert len(ev) > 100
        # the square covers source [2, 6) x [2, 6) -> sensor [ox + 4, ox + 12) x [oy + 4, oy + 12);
        # the saccade moves it by at most 2.5 px sideways and 2.9 px vertically (side 5 px),
        # and a pixel sees the edge one pixel further by bilinear sampling
        assert ev["x"].min() >= ox + 4 - 2.5 - 1 and ev["x"].max() <= ox + 12 + 2.5
        assert ev["y"].min() >= oy + 4 - 2.9 - 1 and ev["y"].max() <= oy + 12 + 2.9
    flipped = img[:, ::-1].copy()  # the square in the right half
    p = SimParams(sensor_size=(36, 20), render_size=(32, 16), resample="nearest")
    ev, _ = simulate_image(flipped, p, sample_rng(0, 0))
    assert len(ev) > 100 and ev["x"].min() >= 2 + 20 - 2.5 - 1  # source columns [10, 14) -> x [22, 30)


# --------------------------------------------------------------------------- recordings per class


def test_cli_per_class_simulates_the_first_images_each_with_its_source_seed(tmp_path: Path) -> None:
    rgb = load_rgb("digitpairs", None, **PAIR_OPTS)
    args = ["synth", "digitpairs", "-", "--sensor", "36,20", "--render", "32,16", "--per-class",
            "train=2,test=1", "--seed", "4", "--sigma", "0.05", "--leak-hz", "0.5", "--shot-hz", "3",
            "--saccade-side-px", "4.5", "--workers", "2", "--json"]  # fmt: skip
    for k, v in PAIR_OPTS.items():
        args += ["-o", f"{k}={v}"]
    runner = CliRunner()
    results = []
    for name in ("a", "b"):
        r = runner.invoke(_cli(), [args[0], *args[1:3], str(tmp_path / name), *args[3:]])
        assert r.exit_code == 0, r.output
        results.append(_read_tree(tmp_path / name))
    (meta, files), (meta_b, files_b) = results
    # independent choice: the first 2 train and the first test image of every class, source order
    expect = []
    for c in range(100):
        for sp, n in (("train", 2), ("test", 1)):
            expect += [i for i in range(len(rgb)) if rgb.labels[i] == c and rgb.split[i] == sp][:n]
    expect.sort()
    rows = meta["samples"]["rows"]
    assert [r[1] for r in rows] == [rgb.source_ids[i] for i in expect]
    assert [(r[2], r[3]) for r in rows] == [(int(rgb.labels[i]), rgb.split[i]) for i in expect]
    assert meta["source"]["per_class"] == {"train": 2, "test": 1} and meta["source"]["options"] == PAIR_OPTS
    assert meta["sensor_size"] == [36, 20]
    params = SimParams(
        sigma=0.05,
        leak_rate_hz=0.5,
        shot_rate_hz=3,
        sensor_size=(36, 20),
        render_size=(32, 16),
        seed=4,
        saccade_side_px=4.5,
    )
    for key in ("sigma", "leak_rate_hz", "shot_rate_hz", "seed", "saccade_side_px"):
        assert meta["params"][key] == getattr(params, key)
    assert [r[1:] for r in rows] == [r[1:] for r in meta_b["samples"]["rows"]]  # deterministic
    for i in (expect[0], expect[77], expect[-1]):  # each as if simulated alone, seeded by its source index
        want, _ = simulate_image(rgb.images[i], params, sample_rng(4, i))
        got = atis_bin.read(files[rgb.source_ids[i]], sensor_size=(36, 20))
        again = atis_bin.read(files_b[rgb.source_ids[i]], sensor_size=(36, 20))
        assert len(got) == len(want) > 0
        for f in ("x", "y", "p"):
            np.testing.assert_array_equal(got.events[f], want[f])
            np.testing.assert_array_equal(again.events[f], want[f])
        np.testing.assert_array_equal(got.events["t"] + got.t0_abs, want["t"])
    bad = runner.invoke(_cli(), ["synth", "digits", "-", str(tmp_path / "x"), "--per-class", "val=2"])
    assert bad.exit_code == 2 and "--per-class val=2" in bad.output


# --------------------------------------------------------------------------- recipes


def test_recipe_synth_keys_reach_the_simulator(tmp_path: Path) -> None:
    assert set(SIM_OPTIONS) <= SYNTH_KEYS
    text = (REPO / "pipelines" / "demo.toml").read_text()
    head, rest = text.split("[synth]\n", 1)
    rest = rest[rest.index("\n[convert]") :]
    synth = """[synth]
rgb_kind = "digitpairs"
options = { per_class_train = 4, per_class_test = 2, seed = 3 }
per_class = { train = 1, test = 1 }
sensor = [36, 20]
render = [32, 16]
seed = 5
threshold = 0.3
c_off = 0.35
sigma = 0.05
eps = 0.2
refractory_us = 100
leak_rate_hz = 0.2
shot_rate_hz = 2.0
resample = "bilinear"
saccade_side_px = 4
"""
    path = tmp_path / "r.toml"
    path.write_text(head + synth + rest)
    recipe = load_pipeline(path, out=tmp_path / "out")
    lines: list[str] = []
    raw = tmp_path / "raw"
    synth_step(recipe, raw, lines.append)
    meta, _ = _read_tree(raw)
    expect = SimParams(
        c_on=0.3, c_off=0.35, sigma=0.05, eps=0.2, refractory_us=100, leak_rate_hz=0.2, shot_rate_hz=2.0,
        sensor_size=(36, 20), render_size=(32, 16), resample="bilinear", seed=5, saccade_side_px=4,
    )  # fmt: skip
    assert meta["params"] == json.loads(json.dumps(expect.to_json()))
    assert meta["source"]["kind"] == "digitpairs" and meta["source"]["options"] == PAIR_OPTS
    assert meta["totals"]["samples"] == 200 and lines[0].startswith("synth: 200 digitpairs images")
    rgb = load_rgb("digitpairs", None, **PAIR_OPTS)
    first: dict[tuple[int, str], str] = {}
    for sid, lab, sp in zip(rgb.source_ids, rgb.labels, rgb.split, strict=True):
        first.setdefault((int(lab), sp), sid)
    assert sorted(r[1] for r in meta["samples"]["rows"]) == sorted(first.values())
    synth_step(recipe, raw, lines.append)
    assert lines[-1].endswith("is up to date, skipped")
    path.write_text(head + synth.replace("sigma = 0.05", "sigma = -1") + rest)
    with pytest.raises(SynthError, match=r"synth parameter sigma=-1"):
        synth_step(load_pipeline(path, out=tmp_path / "out"), tmp_path / "raw2", None)
