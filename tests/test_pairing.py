"""tmkt-data pair: class matching, splits and fractions, determinism, instance pairs, orientation, bad input."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import zarr
from conftest import make_nmnist_tree, set_store_attrs
from PIL import Image, ImageDraw
from scipy import ndimage
from test_rgb import write_images, write_mnist
from typer.testing import CliRunner

from tmkt_data.cli import user_errors
from tmkt_data.cli_pair import pair_command
from tmkt_data.convert import ConvertOptions, convert
from tmkt_data.events import make_events
from tmkt_data.formats import atis_bin
from tmkt_data.layouts.cepdvs import CLASSES as CEPDVS_CLASSES
from tmkt_data.pairing import (
    SYNTHETIC_RULE,
    PairingError,
    known_class_map,
    match_classes,
    n_keep_for,
    n_val_for,
    orientation_scores,
    pair_store,
    read_pairs,
)
from tmkt_data.rgb import RGBError, load_rgb
from tmkt_data.rgb.encode import encode_images
from tmkt_data.store import StoreError
from tmkt_data.synth import write_synth_tree

OPTS = ConvertOptions(frames=4, shard_samples=8)
DIGITS = [str(d) for d in range(10)]


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def nmnist_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An N-MNIST-like store: 6 train + 1 test recordings per digit (plus real samples when present)."""
    base = tmp_path_factory.mktemp("nmnist")
    tree = make_nmnist_tree(base / "raw", per_digit=6)
    convert("nmnist", tree, base / "store.zarr", OPTS)
    return base / "store.zarr"


@pytest.fixture()
def store(nmnist_store: Path, tmp_path: Path) -> Path:
    out = tmp_path / "s.zarr"
    shutil.copytree(nmnist_store, out)
    return out


def snapshot(path: Path) -> dict[str, str]:
    """Every file of a folder with its sha256: equal snapshots mean an untouched store."""
    return {
        p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def group_arrays(store: Path) -> dict[str, np.ndarray]:
    out = {}
    for name in ("rgb", "pairs"):
        g = zarr.open_group(str(store / name), mode="r")
        for path, arr in g.arrays():
            out[f"{name}/{path}"] = np.asarray(arr[:], dtype=object if arr.dtype.kind == "T" else None)
        for sub, sg in g.groups():
            for path, arr in sg.arrays():
                out[f"{name}/{sub}/{path}"] = np.asarray(arr[:])
    return out


def store_meta(store: Path) -> dict[str, np.ndarray]:
    g = zarr.open_group(str(store), mode="r")
    return {
        "labels": np.asarray(g["labels"][:]),
        "split": np.asarray(g["split"][:], dtype=object),
        "valid": np.asarray(g["valid"][:]),
        "ids": np.asarray(g["sample_id"][:], dtype=object),
    }


def write_digit_folder(root: Path, names: list[str], per_class: int = 3) -> Path:
    for i, name in enumerate(names):
        write_images(root / name, [f"{k}.png" for k in range(per_class)], (8, 8), "L", seed=i)
    return root


# ---------------------------------------------------------------- the basic job


def test_pairs_digits_every_pair_has_equal_labels(store: Path) -> None:
    rep = pair_store(store, "digits", None)
    assert rep.rgb_images == 1797 and rep.size == (34, 34) and rep.class_map is None
    assert all(m["how"] == "name" for m in rep.class_mapping)
    p = read_pairs(store)
    meta = store_meta(store)
    for c in range(10):
        pool = p.pool(c)
        assert len(pool) > 0
        np.testing.assert_array_equal(p.rgb_labels[pool], c)  # every possible pair has equal labels
        assert {p.rgb_split[i] for i in pool} == {"train"}
    assert len(p.pool_rgb) == p.rgb_split.count("train")  # all RGB train images are in a pool
    train, val, test = p.dvs["train"], p.dvs["val"], p.dvs["test"]
    assert not (set(train) & set(val)) and not (set(train) | set(val)) & set(test)
    assert set(meta["split"][train]) == {"train"} and set(meta["split"][val]) == {"train"}
    np.testing.assert_array_equal(test, np.flatnonzero((meta["split"] == "test") & meta["valid"]))
    np.testing.assert_array_equal(
        np.sort(np.concatenate([train, val])), np.flatnonzero((meta["split"] == "train") & meta["valid"])
    )
    rows = p.draw_partners(train, np.random.default_rng(0))
    np.testing.assert_array_equal(p.rgb_labels[rows], meta["labels"][train])
    # stored images are the encoded digits, in source order
    digits = load_rgb("digits")
    np.testing.assert_array_equal(p.rgb_images[:5], encode_images(digits.images[:5], (34, 34)))
    assert p.rgb_source_ids[:2] == ["digits/0000", "digits/0001"]
    assert p.attrs["seed"] == 0 and p.attrs["val_fraction"] == 0.1 and p.attrs["dvs_fraction"] == 1.0
    assert p.rgb_attrs["encode_mode"] == "hsv_v" and p.rgb_attrs["size"] == [34, 34]
    assert not (store / "_rgb_tmp").exists() and not (store / "_pairs_tmp").exists()


def test_same_inputs_give_identical_index(nmnist_store: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    shutil.copytree(nmnist_store, a)
    shutil.copytree(nmnist_store, b)
    kw = dict(val_fraction=0.2, dvs_fraction=0.5, seed=7)
    ra = pair_store(a, "digits", None, **kw)
    pair_store(b, "digits", "-", **kw)
    rb = pair_store(b, "digits", "-", **kw)  # re-running over an existing index
    xa, xb = group_arrays(a), group_arrays(b)
    assert sorted(xa) == sorted(xb) and "pairs/train/dvs" in xa and "rgb/images" in xa
    for name in xa:
        np.testing.assert_array_equal(xa[name], xb[name], err_msg=name)
    for name in ("rgb", "pairs"):
        assert dict(zarr.open_group(str(a / name)).attrs) == dict(zarr.open_group(str(b / name)).attrs)
    assert ra.pairing_id == rb.pairing_id
    assert not (b / "_rgb_old").exists() and not (b / "_pairs_old").exists()
    other = pair_store(a, "digits", None, val_fraction=0.2, dvs_fraction=0.5, seed=8)
    assert other.pairing_id != ra.pairing_id


# ---------------------------------------------------------------- splits and fractions


def test_fraction_and_val_rules() -> None:
    assert [n_val_for(n, 0.1) for n in (1, 2, 4, 5, 14, 15, 900)] == [0, 0, 0, 1, 1, 2, 90]
    assert n_val_for(3, 0.9) == 2 and n_val_for(10, 0.0) == 0  # at least one sample stays in train
    assert [n_keep_for(m, 0.1) for m in (0, 1, 9, 10, 11, 30)] == [0, 1, 1, 1, 2, 3]
    assert n_keep_for(7, 1.0) == 7 and n_keep_for(5, 0.5) == 3  # ceil


def test_dvs_fraction_counts_per_class_and_nesting(store: Path, tmp_path: Path) -> None:
    meta = store_meta(store)
    train_store = (meta["split"] == "train") & meta["valid"]
    kept = {}
    for frac in (1.0, 0.5, 0.2, 0.01):
        rep = pair_store(store, "digits", None, val_fraction=0.2, dvs_fraction=frac, seed=3)
        p = read_pairs(store)
        for c in range(10):
            n = int(np.sum(train_store & (meta["labels"] == c)))
            n_val = int(np.sum(meta["labels"][p.dvs["val"]] == c))
            n_train = int(np.sum(meta["labels"][p.dvs["train"]] == c))
            assert n_val == n_val_for(n, 0.2)
            assert n_train == max(1, math.ceil(frac * (n - n_val) - 1e-9))
            assert rep.per_class[c]["train"] == n_train and rep.per_class[c]["val"] == n_val
        kept[frac] = set(p.dvs["train"].tolist())
        assert p.attrs["dvs_fraction"] == frac
    assert kept[0.01] <= kept[0.2] <= kept[0.5] <= kept[1.0]  # a smaller fraction is a subset
    assert len(kept[0.01]) == 10  # at least one per class


def test_val_fraction_zero_and_bad_fractions(store: Path) -> None:
    rep = pair_store(store, "digits", None, val_fraction=0.0)
    assert rep.split_counts["val"] == 0
    before = snapshot(store)
    for kw, msg in (
        ({"val_fraction": 1.0}, r"--val-fraction 1.0: expected 0 <= F < 1"),
        ({"dvs_fraction": 0.0}, r"--dvs-fraction 0.0: expected 0 < F <= 1"),
        ({"dvs_fraction": 1.5}, r"--dvs-fraction 1.5"),
    ):
        with pytest.raises(PairingError, match=msg):
            pair_store(store, "digits", None, **kw)
    assert snapshot(store) == before


# ---------------------------------------------------------------- class matching


def test_name_matching_ignores_case_and_punctuation() -> None:
    m = match_classes(
        ["Faces_easy", "airplanes", "Motorbikes"], ["motor-bikes", "faces easy", "Airplanes"], None
    )
    assert m.dvs_to_rgb == [[1], [2], [0]] and m.how == ["name"] * 3
    with pytest.raises(PairingError, match=r"unmatched classes: 1 DVS class\(es\) without RGB: 'c'; "):
        match_classes(["a", "c"], ["A", "b"], None)
    m = match_classes(["a", "c"], ["A", "b"], None, drop_unmatched=True)
    assert m.dvs_to_rgb == [[0], []] and m.unused_rgb == ["b"]


def test_shipped_maps() -> None:
    cm = known_class_map("cepdvs", "cifar100")
    assert cm is not None and cm.rgb_options == {"labels": "coarse"} and len(cm.classes) == 20
    m = match_classes(list(CEPDVS_CLASSES), list(CEPDVS_CLASSES), cm)
    assert m.how == ["map"] * 20 and m.dvs_to_rgb == [[i] for i in range(20)]
    cal = known_class_map("ncaltech101", "caltech101")
    assert cal is not None and cal.ignore_rgb == ["Faces"]
    assert known_class_map("nmnist", "digits") is None


def test_class_map_file_and_unknown_names(store: Path, tmp_path: Path) -> None:
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    rgb = write_digit_folder(tmp_path / "words", [*names, "extra"])
    before = snapshot(store)
    with pytest.raises(
        PairingError, match=r"10 DVS class\(es\) without RGB: '0', '1'.*11 RGB class\(es\) without DVS"
    ):
        pair_store(store, "imagefolder", rgb)
    cmap = tmp_path / "map.toml"
    body = "".join(f'"{d}" = "{n}"\n' for d, n in zip(DIGITS, names, strict=True))
    cmap.write_text("[classes]\n" + body + '\n[ignore]\nrgb = ["extra"]\n')
    rep = pair_store(store, "imagefolder", rgb, class_map=cmap)
    assert [m["rgb"] for m in rep.class_mapping] == [[n] for n in names]
    assert rep.rgb_classes_unused == ["extra"] and rep.rgb_images == 30  # "extra" images not stored
    p = read_pairs(store)
    assert p.attrs["class_map"]["source"] == str(cmap)
    for c in range(10):
        assert [p.rgb_source_ids[i].split("/")[0] for i in p.pool(c)] == [names[c]] * 3
    after_ok = snapshot(store)
    bad = tmp_path / "bad.toml"
    bad.write_text('[classes]\n"0" = "zero"\n"ten" = "nine"\n"1" = ["one", "uno"]\n')
    with pytest.raises(PairingError, match=r"names unknown classes: DVS 'ten', RGB 'uno'"):
        pair_store(store, "imagefolder", rgb, class_map=bad)
    bad.write_text("[classes\n")
    with pytest.raises(PairingError, match=r"bad.toml: not valid TOML"):
        pair_store(store, "imagefolder", rgb, class_map=bad)
    with pytest.raises(PairingError, match=r"missing class map file"):
        pair_store(store, "imagefolder", rgb, class_map=tmp_path / "absent.toml")
    assert snapshot(store) == after_ok  # the earlier index survives every failure
    assert before != after_ok


def test_drop_unmatched_leaves_classes_out(store: Path, tmp_path: Path) -> None:
    rgb = write_digit_folder(tmp_path / "some", ["0", "1", "2", "cat"])
    rep = pair_store(store, "imagefolder", rgb, drop_unmatched=True)
    assert rep.dvs_classes_dropped == DIGITS[3:] and rep.rgb_classes_unused == ["cat"]
    p = read_pairs(store)
    labels = p.dvs_labels
    for sp in ("train", "val", "test"):
        assert set(labels[p.dvs[sp]].tolist()) <= {0, 1, 2}
    assert np.diff(p.pool_offsets).tolist() == [3, 3, 3] + [0] * 7
    assert set(p.rgb_labels.tolist()) == {0, 1, 2}


# ---------------------------------------------------------------- bad input leaves the store as it was


def test_store_untouched_on_errors(store: Path, tmp_path: Path) -> None:
    before = snapshot(store)
    rgb = write_digit_folder(tmp_path / "digits", DIGITS, per_class=2)
    (rgb / "7" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # found only while encoding
    with pytest.raises(RGBError, match=r"7/1.png: cannot decode as an image"):
        pair_store(store, "imagefolder", rgb)
    assert snapshot(store) == before
    (rgb / "7" / "1.png").unlink()
    (rgb / "7" / "0.png").unlink()
    (rgb / "7" / "sub").mkdir()
    with pytest.raises(RGBError, match=r"7: class folder has no images"):
        pair_store(store, "imagefolder", rgb)
    write_images(rgb / "7", ["0.png"], (8, 8), "L")
    split_tree = tmp_path / "split"
    for d in DIGITS:
        write_images(split_tree / "test" / d, ["t.png"], (8, 8), "L")
        if d != "7":
            write_images(split_tree / "train" / d, ["a.png"], (8, 8), "L")
    with pytest.raises(PairingError, match=r"'7' have DVS training samples but no RGB training images"):
        pair_store(store, "imagefolder", split_tree)
    with pytest.raises(
        PairingError, match=r"--instance: no instance correspondence for nmnist \+ imagefolder"
    ):
        pair_store(store, "imagefolder", rgb, instance=True)
    with pytest.raises(RGBError, match="RGB root is not a folder"):
        pair_store(store, "imagefolder", tmp_path / "absent")
    assert snapshot(store) == before


def test_store_without_frames(store: Path, tmp_path: Path) -> None:
    shutil.rmtree(store / "frames")
    before = snapshot(store)
    with pytest.raises(PairingError, match=r"store has no frames array"):
        pair_store(store, "digits", None)
    assert snapshot(store) == before
    with pytest.raises(StoreError, match="no such store"):
        pair_store(tmp_path / "none.zarr", "digits", None)


def test_read_pairs_rechecks_labels(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PairingError, match="no rgb/ group"):
        read_pairs(store)
    pair_store(store, "digits", None)
    pool = zarr.open_array(str(store / "pairs" / "pool_rgb"), mode="r+")
    offsets = zarr.open_array(str(store / "pairs" / "pool_offsets"), mode="r")[:]
    pool[0] = int(pool[offsets[1]])  # a class-1 image in the pool of class 0
    with pytest.raises(StoreError, match="pool_rgb/c/0: checksum mismatch"):  # the checksums first
        read_pairs(store)
    monkeypatch.setattr("tmkt_data.store.checksums._checks", False)  # then the invariants
    with pytest.raises(
        PairingError, match=r"pool of class '0' holds RGB image \d+ of class 1: labels differ"
    ):
        read_pairs(store)
    g = zarr.open_group(str(store / "rgb"), mode="r+")
    g.attrs["pairing_id"] = "other"
    with pytest.raises(PairingError, match="come from different runs"):
        read_pairs(store)


def test_synthetic_flag_recorded(store: Path) -> None:
    set_store_attrs(store, synthetic=True)
    rep = pair_store(store, "digits", None)
    assert rep.synthetic and any("synthetic" in w for w in rep.warnings)
    assert read_pairs(store).attrs["synthetic"] is True


# ---------------------------------------------------------------- instance pairing and orientation


def stroke_image(rng: np.random.Generator) -> np.ndarray:
    """A 28x28 MNIST-like image: three random thick strokes, asymmetric."""
    img = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(img)
    pts = rng.integers(4, 24, size=(4, 2))
    draw.line([tuple(p) for p in pts.tolist()], fill=255, width=3)
    return np.asarray(img)


def saccade_events(canvas: np.ndarray, seed: int) -> np.ndarray:
    """Events of a 34x34 intensity image moved along N-MNIST-like saccades (threshold crossings)."""
    path = [(0.0, 0.0), (2.0, 2.0), (0.0, 4.0), (0.0, 0.0)]
    ref = canvas.copy()
    c = 0.12
    t, x, y, p = [], [], [], []
    step = 0
    for (y0, x0), (y1, x1) in zip(path[:-1], path[1:], strict=True):
        for k in range(1, 21):
            f = k / 20
            cur = ndimage.shift(
                canvas, (y0 + f * (y1 - y0) - 2, x0 + f * (x1 - x0) - 2), order=1, mode="constant"
            )
            step += 1
            diff = cur - ref
            n = np.floor(np.abs(diff) / c).astype(int)
            ys, xs = np.nonzero(n)
            for yy, xx in zip(ys.tolist(), xs.tolist(), strict=True):
                for _ in range(n[yy, xx]):
                    t.append(step * 1000)
                    x.append(xx)
                    y.append(yy)
                    p.append(1 if diff[yy, xx] > 0 else 0)
            ref += np.sign(diff) * n * c
    ev = make_events(np.array(t, np.int64), np.array(x), np.array(y), np.array(p))
    ev["t"] -= ev["t"][0]
    return ev


def make_instance_data(root: Path, flip: str | None) -> tuple[Path, Path]:
    """MNIST IDX files and an N-MNIST tree recorded from them (file k = MNIST index k - 1)."""
    rng = np.random.default_rng(11)
    n_train, n_test = 30, 10
    images = np.stack([stroke_image(rng) for _ in range(n_train + n_test)])
    labels = np.arange(n_train + n_test) % 10
    mnist = write_mnist(
        root / "mnist", images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]
    )
    tree = root / "nmnist"
    for folder in ("Train", "Test"):
        for d in DIGITS:
            (tree / folder / d).mkdir(parents=True, exist_ok=True)
    for i in range(n_train + n_test):
        folder, k = ("Train", i + 1) if i < n_train else ("Test", i - n_train + 1)
        canvas = np.asarray(Image.fromarray(images[i]).resize((34, 34), Image.Resampling.BILINEAR)) / 255.0
        if flip == "flip_y":
            canvas = canvas[::-1].copy()
        atis_bin.write(tree / folder / str(labels[i]) / f"{k:05d}.bin", saccade_events(canvas, i), (34, 34))
    return mnist, tree


@pytest.mark.parametrize("flip", [None, "flip_y"])
def test_instance_pairs_and_orientation_report(tmp_path: Path, flip: str | None) -> None:
    mnist, tree = make_instance_data(tmp_path, flip)
    store = tmp_path / "inst.zarr"
    convert("nmnist", tree, store, OPTS)
    rep = pair_store(store, "mnist", mnist, instance=True, val_fraction=0.2)
    p = read_pairs(store)
    meta = store_meta(store)
    for sp in ("train", "val", "test"):
        for i, r in zip(p.dvs[sp].tolist(), p.partners[sp].tolist(), strict=True):
            folder, _digit, k = meta["ids"][i].split("/")
            assert p.rgb_source_ids[r] == f"{folder.lower()}/{int(k) - 1:05d}"
            assert p.rgb_labels[r] == meta["labels"][i]
    assert rep.partners == {sp: {"paired": len(p.dvs[sp]), "missing": 0} for sp in ("train", "val", "test")}
    # RGB images of DVS val instances are kept out of the pools
    assert rep.pool_excluded == len(p.dvs["val"]) > 0
    assert not set(p.partners["val"].tolist()) & set(p.pool_rgb.tolist())
    o = rep.orientation
    assert o["n_pairs"] == 40 and set(o["scores"]) == {
        "identity",
        "rot90",
        "rot180",
        "rot270",
        "flip_x",
        "flip_y",
        "transpose",
        "anti_transpose",
    }
    expected = flip or "identity"
    assert o["best"] == expected and o["warning"] is (flip is not None)
    assert o["scores"][expected] > 0.3
    assert any("orientation" in w for w in rep.warnings) is (flip is not None)
    assert p.attrs["orientation"]["best"] == expected

    # MNIST files whose order does not follow the rule: a clear error, store unchanged
    if flip is None:
        before = snapshot(store)
        shifted = tmp_path / "shifted"
        raw = load_rgb("mnist", mnist)
        tr = raw.images[:30]
        write_mnist(
            shifted, np.roll(tr, 1, axis=0), np.roll(raw.labels[:30], 1), raw.images[30:], raw.labels[30:]
        )
        with pytest.raises(PairingError, match=r"would pair with an RGB image of another class"):
            pair_store(store, "mnist", shifted, instance=True)
        assert snapshot(store) == before


def test_orientation_scores_find_known_transform() -> None:
    rng = np.random.default_rng(2)
    img = ndimage.gaussian_filter(rng.random((12, 12)), 1.0)
    grad = np.hypot(*np.gradient(img))
    for name, fn in (
        ("identity", lambda a: a),
        ("rot90", lambda a: np.rot90(a)),
        ("transpose", lambda a: a.T),
    ):
        scores = orientation_scores(fn(grad), img)
        assert max(scores, key=scores.get) == name and scores[name] == pytest.approx(1.0)
    wide = orientation_scores(np.ones((4, 6)) + np.arange(6), np.arange(24.0).reshape(4, 6) ** 2)
    assert math.isnan(wide["rot90"]) and math.isnan(wide["transpose"]) and not math.isnan(wide["flip_x"])


def test_ncaltech101_instances_and_shipped_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    classes = ["BACKGROUND_Google", "Faces_easy", "accordion"]
    for cls in classes:
        for k in range(1, 11):
            n = 300
            ev = make_events(
                np.sort(rng.integers(0, 50_000, n)),
                rng.integers(0, 240, n),
                rng.integers(0, 180, n),
                rng.integers(0, 2, n),
            )
            ev["t"] -= ev["t"][0]
            (tmp_path / "ncal" / "Caltech101" / cls).mkdir(parents=True, exist_ok=True)
            atis_bin.write(tmp_path / "ncal" / "Caltech101" / cls / f"image_{k:04d}.bin", ev, (240, 180))
    data = tmp_path / "cal" / "101_ObjectCategories"
    for cls in [*classes, "Faces"]:
        write_images(data / cls, [f"image_{k:04d}.jpg" for k in range(1, 11)], (30, 20), seed=len(cls))
    store = tmp_path / "ncal.zarr"
    convert("ncaltech101", tmp_path / "ncal", store, ConvertOptions(frames=2, size=(18, 24), shard_samples=8))
    before = snapshot(store)
    with pytest.raises(PairingError, match=r"1 RGB class\(es\) without DVS: 'Faces'"):
        pair_store(store, "caltech101", tmp_path / "cal", class_map={})  # no shipped map
    assert snapshot(store) == before
    rep = pair_store(store, "caltech101", tmp_path / "cal", instance=True)
    assert rep.class_map["source"] == "shipped:caltech101_ncaltech101.toml"
    assert rep.rgb_classes_unused == ["Faces"] and rep.rgb_images == 30
    assert [m["how"] for m in rep.class_mapping] == ["map", "map", "name"]
    p = read_pairs(store)
    meta = store_meta(store)
    for sp in ("train", "val", "test"):
        for i, r in zip(p.dvs[sp].tolist(), p.partners[sp].tolist(), strict=True):
            assert p.rgb_source_ids[r] == meta["ids"][i] + ".jpg"
    assert rep.split_counts == {"train": 24, "val": 3, "test": 3}  # 9 train (1 to val), 1 test per class
    assert np.diff(p.pool_offsets).tolist() == [8, 8, 8]  # 9 RGB train minus the val instance
    assert rep.orientation["n_pairs"] == 30 and rep.orientation["scores"]["rot90"] is None  # 18x24: no turns


# ---------------------------------------------------------------- command line


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("pair")(user_errors(pair_command))

    @app.command("noop")
    def _noop() -> None:  # a second command keeps "pair" a subcommand
        pass

    return app


def test_cli_pair_json_tables_and_errors(store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        _app(), ["pair", str(store), "digits", "--json", "--dvs-fraction", "0.5", "--grayscale"]
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["encode_mode"] == "gray" and info["dvs_fraction"] == 0.5 and info["rgb_images"] == 1797
    res = runner.invoke(_app(), ["pair", str(store), "digits", "-", "-o", "train_ratio=0.5", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rgb_split_counts"]["test"] == 1797 - sum(
        math.ceil(n / 2) for n in np.bincount(load_rgb("digits").labels)
    )
    res = runner.invoke(_app(), ["pair", str(store), "digits", "-", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert "per class" in res.stdout and "RGB pool" in res.stdout
    res = runner.invoke(_app(), ["pair", str(store), "digits", "--val-fraction", "2"])
    assert res.exit_code == 2 and "--val-fraction 2.0: expected 0 <= F < 1" in res.output
    res = runner.invoke(_app(), ["pair", str(store), "cifar10", str(tmp_path)])
    assert res.exit_code == 2 and "cifar-10-batches-py: missing folder" in res.output


# ---------------------------------------------------------------- pool hygiene: synthetic stores


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic folder store simulated (random events) from digits: per class 10 RGB-train images
    (DVS train 7, DVS test 3) and 2 RGB-test images (DVS test)."""
    base = tmp_path_factory.mktemp("synth")
    digits = load_rgb("digits")
    rng = np.random.default_rng(3)
    chosen, dvs_split = [], []
    for c in range(10):
        rows = np.flatnonzero(digits.labels == c)
        train = [int(i) for i in rows if digits.split[i] == "train"][:10]
        test = [int(i) for i in rows if digits.split[i] == "test"][:2]
        chosen += train + test
        dvs_split += ["train"] * 7 + ["test"] * 3 + ["test"] * 2
    events = []
    for _ in chosen:
        n = 200
        ev = make_events(
            np.sort(rng.integers(0, 50_000, n)),
            rng.integers(0, 34, n),
            rng.integers(0, 34, n),
            rng.integers(0, 2, n),
        )
        ev["t"] -= ev["t"][0]
        events.append(ev)
    write_synth_tree(
        base / "raw", events, [int(digits.labels[i]) for i in chosen], DIGITS, dvs_split,
        [digits.source_ids[i] for i in chosen], source={"kind": "digits"},
    )  # fmt: skip
    opts = ConvertOptions(frames=4, shard_samples=16, layout_options={"sensor_size": (34, 34)})
    convert("folder", base / "raw", base / "store.zarr", opts)
    return base / "store.zarr"


@pytest.fixture()
def sstore(synth_store: Path, tmp_path: Path) -> Path:
    out = tmp_path / "synth.zarr"
    shutil.copytree(synth_store, out)
    return out


def eval_source_ids(store: Path, p: Any) -> set[str]:
    """Plain recomputation: the digits ids of the DVS val/test samples of ``p``, from the synthetic.json
    of the raw tree beside ``store`` (the module's synthetic store) and the store's source_path."""
    meta = json.loads((store.parent / "raw" / "synthetic.json").read_text())
    cols = meta["samples"]["columns"]
    by_file = {r[cols.index("file")]: r[cols.index("source_id")] for r in meta["samples"]["rows"]}
    paths = np.asarray(zarr.open_group(str(store), mode="r")["source_path"][:], dtype=object)
    return {by_file[str(paths[i])] for sp in ("val", "test") for i in p.dvs[sp].tolist()}


def test_synthetic_pools_exclude_eval_sources(sstore: Path, synth_store: Path) -> None:
    rep = pair_store(sstore, "digits", None, val_fraction=0.3)  # 7 train per class: 2 val
    p = read_pairs(sstore)
    assert rep.instance_rule == SYNTHETIC_RULE and rep.exclude_eval_sources
    assert rep.split_counts == {"train": 50, "val": 20, "test": 50}
    # plain python: pools are the digits train images of each class minus the eval sources
    evals = eval_source_ids(synth_store, p)
    assert len(evals) == 70  # 2 val + 3 test from RGB train + 2 from RGB test, per class
    assert {p.rgb_source_ids[r] for r in p.eval_rgb.tolist()} == evals
    for c in range(10):
        want = [
            j
            for j in range(len(p.rgb_labels))
            if p.rgb_split[j] == "train" and p.rgb_labels[j] == c and p.rgb_source_ids[j] not in evals
        ]
        assert p.pool(c).tolist() == want
        all_train = sum(
            1 for j in range(len(p.rgb_labels)) if p.rgb_split[j] == "train" and p.rgb_labels[j] == c
        )
        assert rep.per_class[c]["excluded"] == 5 == all_train - len(want)
    assert rep.pool_excluded == rep.eval_source_images == 50  # 5 RGB-train sources per class
    assert p.attrs["pool_excluded"] == 50 and p.attrs["eval_source_images"] == 50
    assert p.attrs["exclude_eval_sources"] is True and p.attrs["instance_rule"] == SYNTHETIC_RULE
    assert any("50 RGB training image(s) kept out of the pools" in w for w in rep.warnings)
    # the train samples' own sources stay in the pools
    assert not evals & {p.rgb_source_ids[r] for r in p.pool_rgb.tolist()}

    # --keep-eval-sources: the reference's pools (every RGB train image), a different pairing
    keep = pair_store(sstore, "digits", None, val_fraction=0.3, exclude_eval_sources=False)
    q = read_pairs(sstore)
    assert keep.pool_excluded == 0 and keep.eval_source_images == 50 and not keep.exclude_eval_sources
    assert q.pool_rgb.tolist() == [
        j for j in np.argsort(q.rgb_labels, kind="stable") if q.rgb_split[j] == "train"
    ]
    assert all(c["excluded"] == 0 for c in keep.per_class)
    assert keep.pairing_id != rep.pairing_id
    assert any("--keep-eval-sources" in w for w in keep.warnings)
    for sp in ("train", "val", "test"):
        np.testing.assert_array_equal(q.dvs[sp], p.dvs[sp])  # only the pools changed


def test_synthetic_instance_partners_and_other_source(sstore: Path, synth_store: Path) -> None:
    rep = pair_store(sstore, "digits", None, instance=True, val_fraction=0.3)
    p = read_pairs(sstore)
    meta = json.loads((synth_store.parent / "raw" / "synthetic.json").read_text())
    cols = meta["samples"]["columns"]
    by_file = {r[cols.index("file")]: r[cols.index("source_id")] for r in meta["samples"]["rows"]}
    paths = np.asarray(zarr.open_group(str(sstore), mode="r")["source_path"][:], dtype=object)
    for sp in ("train", "val", "test"):
        assert [p.rgb_source_ids[r] for r in p.partners[sp].tolist()] == [
            by_file[paths[i]] for i in p.dvs[sp]
        ]
    assert rep.partners["val"] == {"paired": 20, "missing": 0} and rep.orientation["n_pairs"] == 120
    assert rep.pool_excluded == 50

    # simulated from another source: no link (a warning), nothing excluded, --instance refused
    sm = dict(zarr.open_group(str(sstore), mode="r").attrs["source_metadata"])
    set_store_attrs(sstore, source_metadata={**sm, "source": {"kind": "mnist"}})
    other = pair_store(sstore, "digits", None, val_fraction=0.3)
    assert other.instance_rule is None and other.eval_source_images is None and other.pool_excluded == 0
    assert any("simulated from 'mnist' images, not 'digits'" in w for w in other.warnings)
    with pytest.raises(PairingError, match=r"--instance: no instance correspondence for folder \+ digits"):
        pair_store(sstore, "digits", None, instance=True)


def test_instance_rule_pools_keep_option(tmp_path: Path) -> None:
    mnist, tree = make_instance_data(tmp_path, None)
    store = tmp_path / "inst.zarr"
    convert("nmnist", tree, store, OPTS)
    rep = pair_store(store, "mnist", mnist, val_fraction=0.2)  # rule-based link, without --instance
    p = read_pairs(store)
    # 3 MNIST train images per digit: 1 val each (round(0.6)); the 10 test sources are MNIST test images
    assert rep.pool_excluded == len(p.dvs["val"]) == 10 and len(p.eval_rgb) == 20
    keep = pair_store(store, "mnist", mnist, val_fraction=0.2, exclude_eval_sources=False)
    q = read_pairs(store)
    assert keep.pool_excluded == 0 and keep.eval_source_images == 10 and len(q.pool_rgb) == 30
    np.testing.assert_array_equal(q.eval_rgb, p.eval_rgb)


# ---------------------------------------------------------------- per-class budgets


def reference_selection(meta: dict[str, np.ndarray], seed: int, n_val: int, n_train: int) -> dict[str, set]:
    """Plain python: per class, sha256-ordered val then train samples of the store's train split."""
    out: dict[str, set] = {"val": set(), "train": set()}
    for c in range(10):
        members = [
            i for i in range(len(meta["ids"])) if meta["labels"][i] == c and meta["split"][i] == "train"
        ]
        by_val = sorted(
            members, key=lambda i: hashlib.sha256(f"{seed}/val/{meta['ids'][i]}".encode()).digest()
        )
        rest = sorted(
            by_val[n_val:],
            key=lambda i: hashlib.sha256(f"{seed}/dvs_fraction/{meta['ids'][i]}".encode()).digest(),
        )
        out["val"] |= set(by_val[:n_val])
        out["train"] |= set(rest[:n_train])
    return out


def test_dvs_per_class_counts_nesting_and_record(store: Path) -> None:
    meta = store_meta(store)
    assert meta["valid"].all()
    kept, ids = {}, set()
    for n in (1, 2, 3, 5):
        rep = pair_store(store, "digits", None, val_per_class=1, dvs_per_class=n, seed=4)
        p = read_pairs(store)
        ref = reference_selection(meta, 4, 1, n)
        assert set(p.dvs["train"].tolist()) == ref["train"] and set(p.dvs["val"].tolist()) == ref["val"]
        assert np.bincount(meta["labels"][p.dvs["train"]], minlength=10).tolist() == [n] * 10
        assert np.bincount(meta["labels"][p.dvs["val"]], minlength=10).tolist() == [1] * 10
        assert all(c["train"] == n and c["val"] == 1 for c in rep.per_class)
        assert (p.attrs["dvs_per_class"], p.attrs["val_per_class"], p.attrs["val_fraction"]) == (n, 1, None)
        assert (rep.dvs_per_class, rep.val_per_class, rep.val_fraction) == (n, 1, None)
        kept[n] = set(p.dvs["train"].tolist())
        ids.add(rep.pairing_id)
    assert kept[1] <= kept[2] <= kept[3] <= kept[5]  # a scarcity curve adds data
    assert len(ids) == 4
    # with val_fraction: the first N of the fraction's order, so inside a fraction keeping more
    pair_store(store, "digits", None, dvs_per_class=2, seed=4)
    two = read_pairs(store).dvs["train"]
    assert np.bincount(meta["labels"][two], minlength=10).tolist() == [2] * 10
    frac = pair_store(store, "digits", None, dvs_fraction=0.4, seed=4)  # ceil(0.4 * (6 - 1)) = 2 or more
    p = read_pairs(store)
    assert frac.val_fraction == 0.1 and p.attrs["val_per_class"] is None and p.attrs["dvs_per_class"] is None
    assert set(two.tolist()) <= set(p.dvs["train"].tolist())


def test_per_class_errors_leave_store(store: Path) -> None:
    meta = store_meta(store)
    per_class = np.bincount(meta["labels"][meta["split"] == "train"], minlength=10)
    smallest = int(per_class.min())
    first = int(np.argmin(per_class))  # the first class named in the error
    pair_store(store, "digits", None)
    before = snapshot(store)
    for kw, msg in (
        ({"dvs_per_class": 0}, r"--dvs-per-class 0: expected an integer >= 1"),
        ({"dvs_per_class": 2.5}, r"--dvs-per-class 2.5: expected an integer >= 1"),
        ({"dvs_per_class": True}, r"--dvs-per-class True: expected an integer >= 1"),
        ({"val_per_class": -1}, r"--val-per-class -1: expected an integer >= 0"),
        (
            {"dvs_per_class": 2, "dvs_fraction": 0.5},
            r"--dvs-fraction 0.5 and --dvs-per-class 2: give one of them",
        ),
        (
            {"val_per_class": 1, "val_fraction": 0.1},
            r"--val-fraction 0.1 and --val-per-class 1: give one of them",
        ),
        (
            {"val_per_class": 1, "dvs_per_class": smallest},
            rf"--val-per-class 1 with --dvs-per-class {smallest} needs {smallest + 1} DVS training samples per "
            rf"class \(1 val \+ {smallest} train\); class\(es\) with fewer \(training samples\): '{first}' \({smallest}\)",
        ),
        (
            {"val_per_class": smallest},
            rf"--val-per-class {smallest} needs {smallest + 1} .*'{first}' \({smallest}\)",
        ),
        (
            {"dvs_per_class": smallest},
            rf"--dvs-per-class {smallest} needs {smallest} DVS training samples per class left after "
            rf"--val-fraction 0.1; .*'{first}' \({smallest}, 1 to val\)",
        ),
        ({"exclude_eval_sources": "no"}, r"exclude_eval_sources 'no': expected true or false"),
    ):
        with pytest.raises(PairingError, match=msg):
            pair_store(store, "digits", None, **kw)
    assert snapshot(store) == before


def test_val_fraction_small_classes_and_val_per_class(store: Path) -> None:
    assert n_val_for(30, 0.1) == 3 and n_val_for(4, 0.1) == 0 and n_val_for(5, 0.1) == 1
    rep = pair_store(store, "digits", None, val_fraction=0.05)  # 6 train per class: round(0.3) = 0
    assert rep.split_counts["val"] == 0
    assert any("--val-fraction 0.05 gives 10 class(es) no validation sample" in w for w in rep.warnings)
    rep = pair_store(store, "digits", None, val_per_class=2)
    assert all(c["val"] == 2 for c in rep.per_class) and not any("validation" in w for w in rep.warnings)
    rep = pair_store(store, "digits", None, val_per_class=0)
    assert rep.split_counts["val"] == 0 and read_pairs(store).attrs["val_per_class"] == 0


def test_read_pairs_checks_recorded_selection(sstore: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pair_store(sstore, "digits", None, val_per_class=2, dvs_per_class=3)
    read_pairs(sstore)
    pg = zarr.open_group(str(sstore / "pairs"), mode="r+")
    pg.attrs["dvs_per_class"] = 4
    with pytest.raises(StoreError, match="pairs/zarr.json: checksum mismatch"):  # the checksums first
        read_pairs(sstore)
    monkeypatch.setattr("tmkt_data.store.checksums._checks", False)  # then the invariants
    with pytest.raises(
        PairingError, match=r"class '0' has 3 DVS train sample\(s\), expected dvs_per_class = 4"
    ):
        read_pairs(sstore)
    pg.attrs["dvs_per_class"] = 3
    pg.attrs["exclude_eval_sources"] = False
    with pytest.raises(PairingError, match=r"pool_excluded 50, expected 0 \(exclude_eval_sources False"):
        read_pairs(sstore)
    pg.attrs["exclude_eval_sources"] = True
    pg.attrs["val_fraction"] = 0.1
    with pytest.raises(PairingError, match=r"val_fraction 0.1 and val_per_class 2: expected exactly one set"):
        read_pairs(sstore)
    pg.attrs["val_fraction"] = None
    read_pairs(sstore)
    # an eval source slipped into its class's pool
    p = read_pairs(sstore)
    src = int(p.eval_rgb[np.asarray(p.rgb_split, dtype=object)[p.eval_rgb] == "train"][0])
    c = int(p.rgb_labels[src])
    pool = zarr.open_array(str(sstore / "pairs" / "pool_rgb"), mode="r+")
    pool[int(p.pool_offsets[c])] = src
    with pytest.raises(PairingError, match=r"a pool holds the RGB source of a DVS val/test sample"):
        read_pairs(sstore)


def test_pipeline_pair_keys_reach_pair_store(store: Path, tmp_path: Path) -> None:
    from tmkt_train.pipeline import load_pipeline, pair_settings, pair_step

    def recipe(extra: str) -> Any:
        path = tmp_path / "r.toml"
        path.write_text(
            '[pipeline]\nname = "t"\n[convert]\ndataset = "nmnist"\n'
            f'[pair]\nrgb_kind = "digits"\n{extra}\n[[runs]]\nname = "a"\nmethod = "scratch"\n'
        )
        return load_pipeline(path)

    settings = pair_settings(
        recipe("val_per_class = 1\ndvs_per_class = 2\nexclude_eval_sources = false"), None
    )
    assert settings["val_fraction"] is None and settings["dvs_per_class"] == 2
    assert settings["exclude_eval_sources"] is False
    log: list[str] = []
    first = pair_step(store, settings, log.append)
    p = read_pairs(store)
    assert (p.attrs["val_per_class"], p.attrs["dvs_per_class"], p.attrs["exclude_eval_sources"]) == (
        1,
        2,
        False,
    )
    assert np.bincount(p.dvs_labels[p.dvs["train"]], minlength=10).tolist() == [2] * 10
    assert pair_step(store, settings, log.append) == first and log[-1].endswith("is up to date, skipped")
    other = pair_settings(recipe("val_per_class = 1\ndvs_per_class = 3"), None)
    assert other["exclude_eval_sources"] is True
    assert pair_step(store, other, log.append) != first
    assert read_pairs(store).attrs["dvs_per_class"] == 3
    assert pair_settings(recipe(""), None)["val_fraction"] == 0.1


def test_cli_per_class_and_keep_eval_sources(sstore: Path) -> None:
    runner = CliRunner()
    args = ["pair", str(sstore), "digits", "--json", "--val-per-class", "2", "--dvs-per-class", "1"]
    res = runner.invoke(_app(), args)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["split_counts"]["train"] == 10 and info["val_per_class"] == 2 and info["pool_excluded"] == 50
    res = runner.invoke(_app(), [*args, "--keep-eval-sources"])
    info = json.loads(res.stdout)
    assert (
        info["pool_excluded"] == 0 and info["eval_source_images"] == 50 and not info["exclude_eval_sources"]
    )
    res = runner.invoke(_app(), ["pair", str(sstore), "digits", "--dvs-per-class", "3"])
    assert res.exit_code == 0, res.output
    assert "DVS 3 per class" in res.stdout and "40 RGB training images excluded" in res.stdout
    res = runner.invoke(_app(), ["pair", str(sstore), "digits", "--dvs-per-class", "9"])
    assert res.exit_code == 2 and "--dvs-per-class 9 needs 9 DVS training samples" in res.output
