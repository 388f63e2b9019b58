"""DVS-like simulator (tmkt_data.synth): pixel model by hand, determinism, calibration, synth -> convert."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL, REAL_NMNIST_TONIC, needs_real

from tmkt_data.formats import aedat2, atis_bin
from tmkt_data.synth import (
    DESCRIPTION,
    METADATA_FILE,
    SimParams,
    SynthError,
    crossing_events,
    motion_path,
    sample_rng,
    simulate_dataset,
    simulate_image,
    synthesize_tree,
    threshold_maps,
    write_synth_tree,
)

REAL_NMNIST = sorted((REAL / "nmnist_slayer").glob("*.bs2")) + [REAL_NMNIST_TONIC]


def digits(n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first ``n`` scikit-learn digits as uint8 8x8 images (via tmkt_data.rgb when present)."""
    try:
        from tmkt_data.rgb import load_rgb

        rgb = load_rgb("digits")
        return np.asarray(rgb.images[:n]), np.asarray(rgb.labels[:n]), list(rgb.source_ids[:n])
    except ImportError:  # pragma: no cover
        from sklearn.datasets import load_digits

        d = load_digits()
        imgs = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        return imgs[:n], d.target[:n], [f"digits/{i:04d}" for i in range(n)]


# --------------------------------------------------------------------------- pixel model by hand


def test_ramp_of_3_5_thresholds_gives_3_on_events_at_interpolated_times():
    # L rises linearly from 0 to 0.7 = 3.5 * C between t = 0 and t = 1000 us: crossings at
    # L = 0.2, 0.4, 0.6, i.e. t = 1000 * k * 0.2 / 0.7 = 285.7, 571.4, 857.1 -> 286, 571, 857
    ev, ref = crossing_events([0, 1000], np.array([[0.0], [0.7]]), 0.2, 0.2)
    assert ev["t"].tolist() == [286, 571, 857]
    assert ev["p"].tolist() == [1, 1, 1]
    assert ev["x"].tolist() == [0, 0, 0] and ev["y"].tolist() == [0, 0, 0]
    assert ref[0, 0] == pytest.approx(0.6)  # three thresholds, not L = 0.7


def test_decrease_gives_off_events():
    ev, ref = crossing_events([0, 1000], np.array([[0.0], [-0.7]]), 0.2, 0.2)
    assert ev["t"].tolist() == [286, 571, 857]
    assert ev["p"].tolist() == [0, 0, 0]
    assert ref[0, 0] == pytest.approx(-0.6)


def test_separate_on_and_off_thresholds():
    # ON threshold 0.25, OFF 0.1: up by 0.6 -> 2 ON (ref 0.5); back down to 0 -> 5 OFF (ref 0.0)
    ev, ref = crossing_events([0, 1000, 2000], np.array([[0.0], [0.6], [0.0]]), 0.25, 0.1)
    assert ev["p"].tolist() == [1, 1, 0, 0, 0, 0, 0]
    # OFF at L = 0.4, 0.3, 0.2, 0.1, 0.0 on the way 0.6 -> 0 over 1000..2000 us
    assert ev["t"].tolist()[2:] == [1333, 1500, 1667, 1833, 2000]
    assert ref[0, 0] == pytest.approx(0.0)


def test_reference_never_snaps_to_l():
    # after 0 -> 0.7 the reference is 0.6 (not 0.7): a further rise to 0.85 crosses 0.8 once,
    # at 2/3 of the second step; a snapping model (ref = 0.7) would emit nothing
    ev, ref = crossing_events([0, 1000, 1300], np.array([[0.0], [0.7], [0.85]]), 0.2, 0.2)
    assert ev["t"].tolist() == [286, 571, 857, 1200]
    assert ref[0, 0] == pytest.approx(0.8)


def test_reference_moves_by_whole_thresholds_on_random_signals():
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.integers(50, 500, 200)).astype(float)
    logs = np.cumsum(rng.normal(0, 0.3, (200, 3, 4)), axis=0)
    c_on = rng.uniform(0.1, 0.3, (3, 4))
    c_off = rng.uniform(0.1, 0.3, (3, 4))
    ev, ref = crossing_events(t, logs, c_on, c_off)
    assert np.all(np.diff(ev["t"]) >= 0)
    for y in range(3):
        for x in range(4):
            mine = ev[(ev["x"] == x) & (ev["y"] == y)]
            n_on = int(np.count_nonzero(mine["p"]))
            n_off = len(mine) - n_on
            assert ref[y, x] == pytest.approx(logs[0, y, x] + n_on * c_on[y, x] - n_off * c_off[y, x])
            # the reference ends within one threshold of L
            assert -c_off[y, x] < logs[-1, y, x] - ref[y, x] < c_on[y, x]


def test_refractory_drops_events_but_reference_advances():
    # 10 crossings (C = 0.125, exact in binary) at t = 100, 200, ..., 1000 us; with a 250 us
    # refractory period only 100, 400, 700, 1000 are emitted; L_ref still moves 10 thresholds
    logs = np.array([[0.0], [1.25]])
    ev, ref = crossing_events([0, 1000], logs, 0.125, 0.125, refractory_us=250)
    assert ev["t"].tolist() == [100, 400, 700, 1000]
    assert ref[0, 0] == pytest.approx(1.25)
    ev0, _ = crossing_events([0, 1000], logs, 0.125, 0.125)
    assert ev0["t"].tolist() == list(range(100, 1001, 100))
    # the period runs from the last *emitted* event, across steps
    ev2, _ = crossing_events(
        [0, 1000, 1100], np.array([[0.0], [1.25], [1.5]]), 0.125, 0.125, refractory_us=250
    )
    assert ev2["t"].tolist() == [100, 400, 700, 1000]  # crossing at 1100 is 100 us after 1000: dropped


def test_threshold_mismatch_fixed_per_recording_and_seeded():
    p = SimParams(c_on=0.25, c_off=0.2, sigma=0.03, sensor_size=(64, 64))
    a_on, a_off = threshold_maps(p, np.random.default_rng(7))
    b_on, b_off = threshold_maps(p, np.random.default_rng(7))
    c_on, _ = threshold_maps(p, np.random.default_rng(8))
    np.testing.assert_array_equal(a_on, b_on)
    np.testing.assert_array_equal(a_off, b_off)
    assert not np.array_equal(a_on, c_on)
    assert a_on.shape == (64, 64)
    assert a_on.mean() == pytest.approx(0.25, abs=0.003) and a_on.std() == pytest.approx(0.03, rel=0.1)
    assert a_off.mean() == pytest.approx(0.2, abs=0.003)
    clamp = SimParams(c_on=0.02, c_off=0.02, sigma=0.05, c_min=0.01)
    lo_on, lo_off = threshold_maps(clamp, np.random.default_rng(0))
    assert lo_on.min() == 0.01 and lo_off.min() == 0.01
    # within a recording each pixel keeps its own threshold: two pixels, same ramp, other counts
    ev, _ = crossing_events([0, 1000], np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([0.1, 0.3]), 0.2)
    assert int(np.count_nonzero(ev["x"] == 0)) == 10 and int(np.count_nonzero(ev["x"] == 1)) == 3


# --------------------------------------------------------------------------- whole recordings


def test_still_image_makes_no_events_without_noise():
    imgs, _, _ = digits(3)
    ev, meta = simulate_image(imgs[0], SimParams(motion="static"), 0)
    assert ev.size == 0 and meta["events"] == 0
    # saccades of zero size leave the image still too
    ev, _ = simulate_image(imgs[1], SimParams(saccade_side_px=0.0), 0)
    assert ev.size == 0


def test_noise_on_a_still_image():
    img = np.full((8, 8), 128, np.uint8)
    p = SimParams(motion="static", static_us=1_000_000, shot_rate_hz=2.0)
    ev, meta = simulate_image(img, p, 1)
    n_px = 34 * 34
    assert meta["signal_events"] == 0 and meta["shot_events"] == ev.size
    assert 1.6 * n_px < ev.size < 2.4 * n_px  # Poisson, 2 Hz over 1 s per pixel
    assert 0.45 < ev["p"].mean() < 0.55
    leak = SimParams(motion="static", static_us=1_000_000, leak_rate_hz=3.0)
    ev, _ = simulate_image(img, leak, 1)
    assert np.all(ev["p"] == 1)  # L_ref drifts down: ON events, about leak_rate_hz per pixel
    assert 2 * n_px <= ev.size <= 4 * n_px


def test_saccade_recording_shape_and_order():
    imgs, _, _ = digits(1)
    p = SimParams()
    ev, meta = simulate_image(imgs[0], p, 0)
    assert ev.dtype.names == ("t", "x", "y", "p")
    assert np.all(np.diff(ev["t"]) >= 0)
    assert set(np.unique(ev["p"]).tolist()) <= {0, 1}
    assert ev["x"].max() < 34 and ev["y"].max() < 34
    assert 0 <= ev["t"][0] and ev["t"][-1] <= p.duration_us
    t, dx, dy = motion_path(p)
    assert t[0] == 0 and t[-1] == p.duration_us and np.all(np.diff(t) <= 1000.0 + 1e-9)
    assert dx[0] == pytest.approx(dx[-1]) and dy[0] == pytest.approx(dy[-1])  # closed triangle
    tr = meta["pixel_transform"]
    assert tr["source_size"] == [8, 8] and tr["scale"] == [3.5, 3.5] and tr["offset_px"] == [3.0, 3.0]


def test_deterministic_with_seed_and_independent_of_workers():
    imgs, labels, ids = digits(6)
    p = SimParams(seed=5)
    a, ma = simulate_dataset(imgs, labels, ids, p, workers=1)
    b, _ = simulate_dataset(imgs, labels, ids, p, workers=2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    ev0, _ = simulate_image(imgs[0], p, sample_rng(5, 0))
    np.testing.assert_array_equal(ev0, a[0])
    c, _ = simulate_dataset(imgs, labels, ids, SimParams(seed=6), workers=2)
    assert any(len(x) != len(y) or not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert ma[3]["source_id"] == ids[3] and ma[3]["label"] == int(labels[3])


def test_rgb_images_and_rcls_motion():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    p = SimParams(
        motion="rcls", sensor_size=(48, 48), render_size=(40, 40), rcls_period_us=100_000, rcls_cycles=1
    )
    ev, _ = simulate_image(img, p, 0)
    assert ev.size > 1000 and 0.35 < ev["p"].mean() < 0.65
    assert ev["x"].max() < 48 and ev["y"].max() < 48


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"c_on": 0.0}, "c_on"),
        ({"sigma": -1.0}, "sigma"),
        ({"motion": "zigzag"}, "motion"),
        ({"sample_rate_hz": 500.0}, "sample_rate_hz"),
        ({"sensor_size": (0, 34)}, "sensor_size"),
        ({"refractory_us": -5}, "refractory_us"),
    ],
)
def test_bad_parameters(kw, match):
    with pytest.raises(SynthError, match=match):
        SimParams(**kw).validate()


def test_bad_images():
    with pytest.raises(SynthError, match="dtype"):
        simulate_image(np.zeros((8, 8), np.int32), SimParams(), 0)
    with pytest.raises(SynthError, match="outside"):
        simulate_image(np.full((8, 8), 2.0), SimParams(), 0)
    with pytest.raises(SynthError, match="shape"):
        simulate_image(np.zeros((8, 8, 5), np.uint8), SimParams(), 0)


# --------------------------------------------------------------------------- calibration


def _stats(ev: np.ndarray) -> dict[str, float]:
    t = ev["t"] - ev["t"][0]
    third = (t.max() + 1) / 3.0
    return {
        "events": float(ev.size),
        "duration_ms": float(t.max()) / 1000.0,
        "on_fraction": float(ev["p"].mean()),
        "std_x": float(ev["x"].std()),
        "std_y": float(ev["y"].std()),
        "mean_x": float(ev["x"].mean()),
        "mean_y": float(ev["y"].mean()),
        "third_1": float(np.mean(t < third)),
        "third_2": float(np.mean((t >= third) & (t < 2 * third))),
        "third_3": float(np.mean(t >= 2 * third)),
    }


@needs_real(*REAL_NMNIST)
def test_calibration_against_real_nmnist():
    """Twelve sklearn digits, 28x28 on 34x34, saccades, default parameters, vs the six real N-MNIST files.

    Real (6 files): events 2,723-5,028 (mean 4,164), span 302-311 ms, ON fraction 0.495-0.505,
    std x 4.5-6.8 (mean 5.35), std y 5.4-7.0 (mean 6.11), event share per third of the
    recording ~0.36 / 0.31 / 0.33. Ranges checked (synthetic):

    * mean events within [0.75, 1.33] x the real mean; each sample within
      [0.5 x real min, 2 x real max];
    * each span 250-350 ms; each ON fraction 0.4-0.6;
    * mean std x within [0.75, 1.33] x real; mean std y within [0.75, 1.6] x real: the
      8x8 sklearn digits fill the whole frame height (28 sensor rows here), MNIST digits a
      20x20 box inside 28x28, so the synthetic digits are ~1.45x taller;
    * mean centroid within 1.5 px of the real one;
    * mean share of each third of the recording within 0.25-0.42.
    """
    real = [_stats(atis_bin.read(p, sensor_size=(34, 34)).events) for p in REAL_NMNIST]
    imgs, labels, ids = digits(12)
    evs, _ = simulate_dataset(imgs, labels, ids, SimParams(), workers=2)
    syn = [_stats(e) for e in evs]

    def mean(rows, k):
        return float(np.mean([r[k] for r in rows]))

    r_events = [r["events"] for r in real]
    assert 0.75 * mean(real, "events") <= mean(syn, "events") <= 1.33 * mean(real, "events")
    for s in syn:
        assert 0.5 * min(r_events) <= s["events"] <= 2.0 * max(r_events)
        assert 250.0 <= s["duration_ms"] <= 350.0
        assert 0.4 <= s["on_fraction"] <= 0.6
    assert 0.75 * mean(real, "std_x") <= mean(syn, "std_x") <= 1.33 * mean(real, "std_x")
    assert 0.75 * mean(real, "std_y") <= mean(syn, "std_y") <= 1.6 * mean(real, "std_y")
    assert abs(mean(syn, "mean_x") - mean(real, "mean_x")) <= 1.5
    assert abs(mean(syn, "mean_y") - mean(real, "mean_y")) <= 1.5
    for k in ("third_1", "third_2", "third_3"):
        assert 0.25 <= mean(syn, k) <= 0.42
        assert 0.25 <= mean(real, k) <= 0.42  # the ranges describe the real files too
    assert 0.75 * mean(syn, "events") <= mean(real, "events") <= 1.33 * mean(syn, "events")


# --------------------------------------------------------------------------- files and convert


def test_synth_tree_converts_with_synthetic_marker(tmp_path):
    from tmkt_data.convert import ConvertOptions, convert
    from tmkt_data.store import open_store

    imgs, labels, ids = digits(30)
    p = SimParams(seed=1)
    evs, metas = simulate_dataset(imgs, labels, ids, p, workers=2)
    split = ["test" if i % 5 == 4 else "train" for i in range(30)]
    tree = tmp_path / "tree"
    res = write_synth_tree(
        tree,
        evs,
        labels,
        [str(d) for d in range(10)],
        split,
        ids,
        layout="folder",
        file_format="atis_bin",
        params=p,
        source={"kind": "digits"},
        source_shapes=[m["pixel_transform"]["source_size"][::-1] for m in metas],
    )
    assert res["files"] == 30 and res["events"] == sum(len(e) for e in evs)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["tree"]  # no temporary folder left
    meta = json.loads((tree / METADATA_FILE).read_text())
    assert meta["synthetic"] is True and meta["description"] == DESCRIPTION
    assert meta["seed"] == 1 and meta["params"]["c_on"] == p.c_on and meta["simulator_version"]
    cols = meta["samples"]["columns"]
    row = dict(zip(cols, meta["samples"]["rows"][4], strict=True))
    assert row["source_id"] == ids[4] and row["split"] == "test" and row["events"] == len(evs[4])
    assert row["file"] == f"test/{labels[4]}/digits_0004.bin"
    back = atis_bin.read(tree / row["file"], sensor_size=(34, 34))
    np.testing.assert_array_equal(back.events["t"] + back.t0_abs, evs[4]["t"])
    for f in ("x", "y", "p"):
        np.testing.assert_array_equal(back.events[f], evs[4][f])

    store = tmp_path / "s.zarr"
    out = convert(
        "folder",
        tree,
        store,
        ConvertOptions(frames=5, shard_samples=8, layout_options={"sensor_size": (34, 34)}),
        workers=2,
    )
    assert out.n_samples == 30 and out.files_failed == 0
    g = open_store(store)
    assert g.attrs["synthetic"] is True
    assert g.attrs["source_metadata"]["description"] == DESCRIPTION
    assert g.attrs["source_metadata"]["params"]["seed"] == 1
    assert g.attrs["split_info"]["kind"] == "official"


def test_aedat2_tree_reads_back_the_same_events(tmp_path):
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 256, (16, 16), dtype=np.uint8) for _ in range(2)]
    p = SimParams(
        motion="rcls", sensor_size=(128, 128), render_size=(64, 64), rcls_period_us=50_000, rcls_cycles=1
    )
    res = synthesize_tree(
        imgs, [0, 1], ["a", "b"], None, ["img/0", "img/1"], tmp_path / "t", p, file_format="aedat2", workers=2
    )
    assert res["files"] == 2
    evs = [simulate_image(im, p, sample_rng(p.seed, i))[0] for i, im in enumerate(imgs)]
    for i, cls in enumerate(("a", "b")):
        rec = aedat2.read(tmp_path / "t" / cls / f"img_{i}.aedat")
        assert rec.sensor_size == (128, 128)
        np.testing.assert_array_equal(rec.events["t"] + rec.t0_abs, evs[i]["t"])
        for f in ("x", "y", "p"):
            np.testing.assert_array_equal(rec.events[f], evs[i][f])
    meta = json.loads((tmp_path / "t" / METADATA_FILE).read_text())
    assert meta["file_format"] == {"name": "aedat2", "chip": "dvs128", "orientation": "spikingjelly"}


def test_nmnist_layout_tree(tmp_path):
    from tmkt_data.layouts import scan

    imgs, labels, ids = digits(12)
    split = ["train"] * 10 + ["test"] * 2
    synthesize_tree(imgs, labels, [str(d) for d in range(10)], split, ids, tmp_path / "n", layout="nmnist")
    index = scan("nmnist", tmp_path / "n")
    assert len(index.samples) == 12
    assert {s.sample_id for s in index.samples} >= {"Train/0/digits_0000", "Test/1/digits_0011"}
    assert json.loads((tmp_path / "n" / METADATA_FILE).read_text())["synthetic"] is True


def test_output_errors(tmp_path):
    imgs, labels, ids = digits(2)
    ev = [np.zeros(0, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])] * 2
    classes = [str(d) for d in range(10)]
    with pytest.raises(SynthError, match="ATIS"):
        write_synth_tree(
            tmp_path / "a", ev, labels, classes, None, ids, params=SimParams(sensor_size=(300, 300))
        )
    with pytest.raises(SynthError, match="128x128"):
        write_synth_tree(tmp_path / "a", ev, labels, classes, None, ids, file_format="aedat2")
    with pytest.raises(SynthError, match="'0'..'9'"):
        write_synth_tree(tmp_path / "a", ev, [0, 1], ["cat", "dog"], "train", ids, layout="nmnist")
    with pytest.raises(SynthError, match="zero events"):
        write_synth_tree(tmp_path / "a", ev, labels, classes, None, ids)
    evs, _ = simulate_dataset(imgs, labels, ids, SimParams(), workers=1)
    with pytest.raises(SynthError, match="label 12"):
        write_synth_tree(tmp_path / "a", evs, [0, 12], classes, None, ids)
    assert list(tmp_path.iterdir()) == []  # failed writes leave nothing behind
    write_synth_tree(tmp_path / "a", evs, labels, classes, None, ids)
    with pytest.raises(SynthError, match="already exists"):
        write_synth_tree(tmp_path / "a", evs, labels, classes, None, ids)
    write_synth_tree(tmp_path / "a", evs, labels, classes, "train", ids, overwrite=True)
    assert sorted(x.name for x in (tmp_path / "a").iterdir()) == [METADATA_FILE, "test", "train"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a"]


def test_cli_synth_command(tmp_path):
    import typer
    from typer.testing import CliRunner

    from tmkt_data.cli import user_errors
    from tmkt_data.cli_synth import synth_command

    app = typer.Typer()
    app.command("synth")(user_errors(synth_command))

    @app.command("other")
    def _other() -> None:  # a second command keeps "synth" as a subcommand
        pass

    runner = CliRunner()
    out = tmp_path / "cli_tree"
    r = runner.invoke(app, ["synth", "digits", "-", str(out), "--limit", "12", "--workers", "2", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["samples"] == 12 and summary["synthetic"] is True
    assert 0.4 < summary["on_fraction"] < 0.6
    assert json.loads((out / METADATA_FILE).read_text())["source"]["kind"] == "digits"
    bad = runner.invoke(app, ["synth", "digits", "-", str(tmp_path / "x"), "--format", "aedat2"])
    assert bad.exit_code == 2 and "128x128" in bad.output


def test_balanced_limit_and_subset_seeding(tmp_path: Path) -> None:
    """``limit`` spreads over (split, class) groups; a subset simulates each image exactly as the
    full source does (seeded by its source index, not its position in the subset)."""
    from tmkt_data.rgb import balanced_indices, load_rgb

    labels = [0, 0, 0, 1, 1, 2, 0, 1]
    split = ["train"] * 6 + ["test"] * 2
    assert balanced_indices(labels, split, 3) == [0, 3, 5]  # one per class, training split first
    assert balanced_indices(labels, split, 5) == [0, 3, 5, 6, 7]  # then the test split
    assert balanced_indices(labels, split, 7) == [0, 1, 3, 4, 5, 6, 7]
    assert balanced_indices(labels, split, None) == list(range(8))
    assert balanced_indices(labels, split, 100) == list(range(8))

    rgb = load_rgb("digits", None)
    chosen = balanced_indices(rgb.labels.tolist(), rgb.split, 20)
    assert sorted(set(rgb.labels[chosen].tolist())) == list(range(10))
    assert {rgb.split[i] for i in chosen} == {"train", "test"}
    sub = rgb.take(chosen)
    params = SimParams(seed=7)
    synthesize_tree(
        sub.images, list(sub.labels), rgb.class_names, list(sub.split), list(sub.source_ids),
        tmp_path / "raw", params, indices=chosen,
    )  # fmt: skip
    meta = json.loads((tmp_path / "raw" / METADATA_FILE).read_text())
    path_of = {row[1]: row[0] for row in meta["samples"]["rows"]}
    assert len(path_of) == 20
    j = chosen[-1]  # the last chosen image: position 19 in the subset, index j in the source
    expect, _ = simulate_image(rgb.images[j], params, sample_rng(7, j))
    got = atis_bin.read(tmp_path / "raw" / path_of[rgb.source_ids[j]], sensor_size=params.sensor_size)
    assert len(got) == len(expect) > 0
    np.testing.assert_array_equal(got.events["x"], expect["x"])
    np.testing.assert_array_equal(got.events["t"] + got.t0_abs, expect["t"])
