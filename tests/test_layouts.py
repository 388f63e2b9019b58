"""Dataset layouts: small trees in each dataset's exact layout and byte format."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL, needs_real

from tmkt_data.events import make_events
from tmkt_data.formats import aedat2, aedat4, aedat31, atis_bin, mat_file
from tmkt_data.layouts import LAYOUTS, LayoutError, load_sample, scan
from tmkt_data.layouts import cepdvs as cepdvs_layout
from tmkt_data.layouts import cifar10dvs as cifar_layout
from tmkt_data.layouts import dvsgesture as gesture_layout
from tmkt_data.layouts.base import DatasetIndex

CIFAR = cifar_layout.CLASSES


def rand_events(n: int, w: int, h: int, seed: int, span_us: int = 10_000, dup: bool = False) -> np.ndarray:
    """``n`` canonical events on a ``w`` x ``h`` sensor, t from 0 (sorted; some equal times if ``dup``)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span_us, n))
    t[0] = 0
    if dup:
        t[1::7] = t[0::7][: len(t[1::7])]
        t = np.sort(t)
    return make_events(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n))


def same_events(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    for f in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(a[f].astype(np.int64), b[f].astype(np.int64), err_msg=f)


def by_id(index: DatasetIndex) -> dict:
    return {s.sample_id: s for s in index.samples}


def check_sorted(index: DatasetIndex) -> None:
    ids = [s.sample_id for s in index.samples]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for s in index.samples:
        assert (index.root / s.path).is_file()
        assert 0 <= s.label < len(index.classes)


def test_every_layout_has_a_module() -> None:
    import importlib

    for name in LAYOUTS:
        mod = importlib.import_module(f"tmkt_data.layouts.{name}")
        assert mod.NAME == name
        assert mod.__doc__ and "<root>" in mod.__doc__


# --------------------------------------------------------------------------- CIFAR10-DVS


def cifar_tree(root: Path, indices, ext: str = ".aedat", classes=CIFAR) -> dict[str, np.ndarray]:
    written = {}
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in indices:
            ev = rand_events(6, 128, 128, seed=1000 * c + i)
            path = root / cls / f"cifar10_{cls}_{i}{ext}"
            if ext == ".aedat":
                aedat2.write(path, ev, (128, 128), orientation="spikingjelly")
            else:
                aedat4.write(path, ev, (128, 128), t0_abs=1_600_000_000_000_000 + i)
            written[f"{cls}/{path.stem}"] = ev
    return written


def test_cifar10dvs_aedat2_ninety_ten_split(tmp_path: Path) -> None:
    written = cifar_tree(tmp_path, range(12))
    (tmp_path / "airplane" / "README.txt").write_text("ignored")
    index = scan("cifar10dvs", tmp_path)
    check_sorted(index)
    assert index.dataset == "cifar10dvs"
    assert index.classes == list(CIFAR)
    assert index.sensor_size == (128, 128)
    assert index.read_options == {"format": "aedat2", "chip": "dvs128", "orientation": "spikingjelly"}
    assert len(index.samples) == 120
    assert index.split_info["kind"] == "per_class_sorted" and index.split_info["train_ratio"] == 0.9
    # ASCII listing: _0 _1 _10 _11 _2 ... _9; ceil(0.9 * 12) = 11 train, the last one (_9) test.
    train_i = ["0", "1", "10", "11", "2", "3", "4", "5", "6", "7", "8"]
    for label, cls in enumerate(CIFAR):
        mine = [s for s in index.samples if s.label == label]
        assert len(mine) == 12
        assert sorted(s.sample_id for s in mine if s.split == "train") == sorted(
            f"{cls}/cifar10_{cls}_{i}" for i in train_i
        )
        assert [s.sample_id for s in mine if s.split == "test"] == [f"{cls}/cifar10_{cls}_9"]
        # numeric i < 100: all test in the first100 split
        assert all(dict(s.alt_splits) == {"first100": "test"} for s in mine)
    spec = by_id(index)["cat/cifar10_cat_7"]
    assert spec.path == "cat/cifar10_cat_7.aedat" and spec.label == 3
    ev = load_sample(index, spec)
    exp = written["cat/cifar10_cat_7"]
    same_events(ev, exp)


def test_cifar10dvs_first100_split_and_ratio(tmp_path: Path) -> None:
    cifar_tree(tmp_path, [0, 5, 99, 100, 150, 999])
    index = scan("cifar10dvs", tmp_path, train_ratio=0.5, orientation="jaer")
    assert index.read_options["orientation"] == "jaer"
    ship = {s.sample_id.split("_")[-1]: s for s in index.samples if s.label == CIFAR.index("ship")}
    # ASCII order _0 _100 _150 _5 _99 _999: ceil(0.5 * 6) = 3 train
    assert {i: s.split for i, s in ship.items()} == {
        "0": "train", "100": "train", "150": "train", "5": "test", "99": "test", "999": "test"
    }  # fmt: skip
    assert {i: dict(s.alt_splits)["first100"] for i, s in ship.items()} == {
        "0": "test", "5": "test", "99": "test", "100": "train", "150": "train", "999": "train"
    }  # fmt: skip
    assert "first100" in index.split_info["alternatives"]


def test_cifar10dvs_aedat4_release(tmp_path: Path) -> None:
    written = cifar_tree(tmp_path, [0, 1], ext=".aedat4")
    index = scan("cifar10dvs", tmp_path)
    assert index.read_options == {"format": "aedat4"}
    assert index.notes["extension"] == ".aedat4"
    spec = by_id(index)["frog/cifar10_frog_1"]
    assert spec.path == "frog/cifar10_frog_1.aedat4"
    same_events(load_sample(index, spec), written["frog/cifar10_frog_1"])


def test_cifar10dvs_bad_trees(tmp_path: Path) -> None:
    cifar_tree(tmp_path, [0, 1])
    shutil.rmtree(tmp_path / "truck")
    with pytest.raises(LayoutError, match=r"truck: missing folder, expected CIFAR10-DVS"):
        scan("cifar10dvs", tmp_path)
    (tmp_path / "truck").mkdir()
    with pytest.raises(LayoutError, match=r"truck: no cifar10_truck_<i>\.aedat"):
        scan("cifar10dvs", tmp_path)
    aedat2.write(tmp_path / "truck" / "cifar10_truck_0.aedat", rand_events(3, 128, 128, 1), (128, 128))
    (tmp_path / "truck" / "cifar10_truck_1.aedat4").write_bytes(b"#!AER-DAT4.0\r\n")
    with pytest.raises(LayoutError, match=r"truck: mixes \.aedat and \.aedat4"):
        scan("cifar10dvs", tmp_path)
    (tmp_path / "truck" / "cifar10_truck_0.aedat").unlink()
    with pytest.raises(LayoutError, match=r"different releases.*\.aedat4: truck"):
        scan("cifar10dvs", tmp_path)
    (tmp_path / "truck" / "cifar10_truck_1.aedat4").unlink()
    (tmp_path / "truck" / "truck_3.aedat").write_bytes(b"x")
    with pytest.raises(
        LayoutError, match=r"truck_3\.aedat: unexpected file name, expected cifar10_truck_<i>"
    ):
        scan("cifar10dvs", tmp_path)
    with pytest.raises(LayoutError, match="orientation"):
        scan("cifar10dvs", tmp_path, orientation="sideways")
    with pytest.raises(LayoutError, match="unknown option"):
        scan("cifar10dvs", tmp_path, colour=True)


# --------------------------------------------------------------------------- N-Caltech101


def caltech_tree(root: Path, counts: dict[str, int]) -> dict[str, np.ndarray]:
    written = {}
    data = root / "Caltech101"
    for c, (cls, n) in enumerate(counts.items()):
        (data / cls).mkdir(parents=True)
        for i in range(1, n + 1):
            ev = rand_events(8, 240, 180, seed=100 * c + i)
            ev = ev[ev["y"] != 240]
            atis_bin.write(data / cls / f"image_{i:04d}.bin", ev, (240, 180), t0_abs=500)
            written[f"{cls}/image_{i:04d}"] = ev
        # annotations inside the class folder and in the separate archive: never samples
        (data / cls / "annotation_0001.bin").write_bytes(b"\x02\x00\x02\x00")
        (root / "Caltech101_annotations" / cls).mkdir(parents=True)
        (root / "Caltech101_annotations" / cls / "annotation_0001.bin").write_bytes(b"\x02\x00")
    return written


def test_ncaltech101_classes_split_and_root_variants(tmp_path: Path) -> None:
    counts = {"accordion": 10, "BACKGROUND_Google": 3, "airplanes": 11, "Faces_easy": 1}
    written = caltech_tree(tmp_path, counts)
    index = scan("ncaltech101", tmp_path)
    check_sorted(index)
    assert index.classes == ["BACKGROUND_Google", "Faces_easy", "accordion", "airplanes"]
    assert index.sensor_size == (240, 180)
    assert index.read_options["format"] == "atis_bin"
    assert index.split_info == {**index.split_info, "kind": "per_class_sorted", "train_ratio": 0.9}
    assert "240x180" in index.notes["sensor"]
    assert len(index.samples) == 25
    assert not any("annotation" in s.path for s in index.samples)
    ordered = sorted(index.samples, key=lambda s: s.path)
    split = {cls: [s.split for s in ordered if s.sample_id.startswith(cls + "/")] for cls in counts}
    assert split["accordion"] == ["train"] * 9 + ["test"]  # ceil(9.0) = 9
    assert split["airplanes"] == ["train"] * 10 + ["test"]  # ceil(9.9) = 10
    assert split["BACKGROUND_Google"] == ["train"] * 3  # ceil(2.7) = 3
    assert split["Faces_easy"] == ["train"]
    spec = by_id(index)["airplanes/image_0011"]
    assert spec.path == "Caltech101/airplanes/image_0011.bin" and spec.split == "test" and spec.label == 3
    same_events(load_sample(index, spec), written["airplanes/image_0011"])

    direct = scan("ncaltech101", tmp_path / "Caltech101", train_ratio=0.5)
    assert direct.classes == index.classes
    assert by_id(direct)["accordion/image_0001"].path == "accordion/image_0001.bin"
    assert sum(s.split == "train" for s in direct.samples) == 5 + 2 + 6 + 1


def test_ncaltech101_bad_trees(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"Caltech101: missing folder, expected N-Caltech101"):
        scan("ncaltech101", tmp_path)
    caltech_tree(tmp_path, {"accordion": 2, "ant": 1})
    (tmp_path / "Caltech101" / "ant" / "image_0001.bin").unlink()
    with pytest.raises(LayoutError, match=r"ant: class folder has no image_\*\.bin"):
        scan("ncaltech101", tmp_path)


# --------------------------------------------------------------------------- N-MNIST


def nmnist_dirs(root: Path) -> None:
    for folder in ("Train", "Test"):
        for d in range(10):
            (root / folder / str(d)).mkdir(parents=True, exist_ok=True)


def test_nmnist_synthetic_tree(tmp_path: Path) -> None:
    nmnist_dirs(tmp_path)
    written = {}
    for folder, n in (("Train", 2), ("Test", 1)):
        for d in range(10):
            for k in range(n):
                ev = rand_events(5, 34, 34, seed=d * 10 + k + (100 if folder == "Test" else 0))
                path = tmp_path / folder / str(d) / f"{d * 10 + k:05d}.bin"
                atis_bin.write(path, ev, (34, 34))
                written[f"{folder}/{d}/{path.stem}"] = ev
    index = scan("nmnist", tmp_path)
    check_sorted(index)
    assert index.classes == [str(d) for d in range(10)]
    assert index.sensor_size == (34, 34)
    assert index.split_info["kind"] == "official"
    assert len(index.samples) == 30
    assert sum(s.split == "train" for s in index.samples) == 20
    spec = by_id(index)["Test/7/00070"]
    assert (spec.label, spec.split, spec.path) == (7, "test", "Test/7/00070.bin")
    same_events(load_sample(index, spec), written["Test/7/00070"])


def test_nmnist_bad_trees(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"Train: missing folder, expected N-MNIST Train/<digit>/\*\.bin"):
        scan("nmnist", tmp_path)
    nmnist_dirs(tmp_path)
    with pytest.raises(LayoutError, match=r"no \.bin recordings"):
        scan("nmnist", tmp_path)  # all digit folders empty
    atis_bin.write(tmp_path / "Train" / "3" / "00001.bin", rand_events(4, 34, 34, 3), (34, 34))
    assert len(scan("nmnist", tmp_path).samples) == 1  # empty digit folders are fine
    shutil.rmtree(tmp_path / "Test" / "7")
    with pytest.raises(LayoutError, match=r"Test/7: missing folder, expected N-MNIST Test/7/\*\.bin"):
        scan("nmnist", tmp_path)
    shutil.rmtree(tmp_path / "Test")
    with pytest.raises(LayoutError, match=r"Test: missing folder"):
        scan("nmnist", tmp_path)


@needs_real()
def test_nmnist_real_recordings(tmp_path: Path) -> None:
    nmnist_dirs(tmp_path)
    labels = {1: 5, 2: 0, 3: 4, 4: 1, 6: 2}
    counts = {1: 4681, 2: 5028, 3: 3307, 4: 2723, 6: 4921}
    for k, label in labels.items():
        shutil.copyfile(REAL / "nmnist_slayer" / f"{k}.bs2", tmp_path / "Train" / str(label) / f"{k:05d}.bin")
    # tonic's sample has no recorded digit: any digit folder does for the layout
    shutil.copyfile(REAL / "nmnist_tonic" / "sample_nmnist.bin", tmp_path / "Test" / "0" / "00001.bin")
    index = scan("nmnist", tmp_path)
    assert [s.sample_id for s in index.samples] == [
        "Test/0/00001", "Train/0/00002", "Train/1/00004", "Train/2/00006", "Train/4/00003", "Train/5/00001"
    ]  # fmt: skip
    ids = by_id(index)
    for k, label in labels.items():
        spec = ids[f"Train/{label}/{k:05d}"]
        assert (spec.label, spec.split) == (label, "train")
        ev = load_sample(index, spec)
        assert len(ev) == counts[k]
        assert int(ev["x"].max()) < 34 and int(ev["y"].max()) < 34 and int(ev["t"][0]) == 0
    assert len(load_sample(index, ids["Test/0/00001"])) == 4325


# --------------------------------------------------------------------------- DVS128 Gesture

T0 = 7_000_000  # absolute time of the first event of every recording
ROWS = [  # class (1-11), start, end: overlapping windows and a repeated class
    (3, 7_100_000, 7_600_000),
    (9, 7_500_000, 7_900_000),
    (10, 7_800_000, 8_200_000),
    (3, 8_300_000, 8_900_000),
]


def gesture_recording(folder: Path, stem: str, seed: int, rows=ROWS) -> np.ndarray:
    ev = rand_events(3000, 128, 128, seed, span_us=2_000_000, dup=True)
    # events exactly on window edges: start is in, end is out
    edges = np.array([r[1] - T0 for r in rows] + [r[2] - T0 for r in rows])
    ev["t"][1 : 1 + len(edges)] = edges
    ev = make_events(ev["t"], ev["x"], ev["y"], ev["p"])
    aedat31.write(folder / f"{stem}.aedat", ev, (128, 128), t0_abs=T0)
    lines = ["class,startTime_usec,endTime_usec"] + [f"{c},{s},{e}" for c, s, e in rows]
    (folder / f"{stem}_labels.csv").write_text("\r\n".join(lines) + "\r\n")
    return ev


def gesture_tree(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    data = root / "DvsGesture"
    data.mkdir()
    recs = {}
    for i, stem in enumerate(["user01_fluorescent", "user02_lab", "user24_led"]):
        recs[stem] = gesture_recording(data, stem, seed=i)
    (data / "trials_to_train.txt").write_text("user01_fluorescent.aedat\nuser02_lab.aedat\n\n")
    (data / "trials_to_test.txt").write_text("user24_led.aedat\n")
    (data / "gesture_mapping.csv").write_text("action,label\nhand_clapping,1\n")
    (data / "README.txt").write_text("ignored\n")
    return data, recs


def test_dvsgesture_slices_and_split(tmp_path: Path) -> None:
    data, recs = gesture_tree(tmp_path)
    index = scan("dvsgesture", tmp_path)
    check_sorted(index)
    assert index.classes == list(gesture_layout.CLASSES) and len(index.classes) == 11
    assert index.classes[0] == "hand_clapping" and index.classes[10] == "other_gestures"
    assert index.sensor_size == (128, 128)
    assert index.read_options == {"format": "aedat31"}
    assert len(index.samples) == 12
    ids = by_id(index)
    assert {s.split for s in index.samples if s.sample_id.startswith("user24")} == {"test"}
    assert {s.split for s in index.samples if not s.sample_id.startswith("user24")} == {"train"}
    assert [ids[f"user02_lab_{k}"].label for k in range(4)] == [2, 8, 9, 2]
    spec = ids["user02_lab_1"]
    assert (spec.path, spec.start_us, spec.end_us) == ("DvsGesture/user02_lab.aedat", 7_500_000, 7_900_000)

    from tmkt_data.formats import read_events

    rec = read_events(index.source(ids["user01_fluorescent_0"]), **index.read_options)
    for stem, ev in recs.items():
        t_abs = ev["t"] + T0
        for k, (_, start, end) in enumerate(ROWS):
            spec = ids[f"{stem}_{k}"]
            mask = (t_abs >= start) & (t_abs < end)
            exp = ev[mask].copy()
            exp["t"] = t_abs[mask] - start
            got = load_sample(index, spec)
            assert len(got) == int(mask.sum()) > 0
            same_events(got, exp)
            assert int(got["t"].min()) == 0  # an event sits exactly on the start edge
            if stem == "user01_fluorescent":
                same_events(load_sample(index, spec, recording=rec), exp)

    direct = scan("dvsgesture", data)
    assert by_id(direct)["user02_lab_1"].path == "user02_lab.aedat"


def test_dvsgesture_bad_trees(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"DvsGesture: missing folder"):
        scan("dvsgesture", tmp_path)
    data, _ = gesture_tree(tmp_path)

    (data / "trials_to_test.txt").write_text("user24_led.aedat\nuser25_natural.aedat\n")
    with pytest.raises(
        LayoutError, match=r"user25_natural\.aedat: missing recording listed in .*trials_to_test"
    ):
        scan("dvsgesture", tmp_path)
    (data / "trials_to_test.txt").write_text("")
    with pytest.raises(LayoutError, match=r"user24_led\.aedat: recording listed in neither"):
        scan("dvsgesture", tmp_path)
    (data / "trials_to_test.txt").write_text("user24_led.aedat\nuser02_lab.aedat\n")
    with pytest.raises(LayoutError, match=r"user02_lab\.aedat: listed in both"):
        scan("dvsgesture", tmp_path)
    (data / "trials_to_test.txt").write_text("user24_led.aedat\n")

    csv = data / "user02_lab_labels.csv"
    good = csv.read_text()
    for body, msg in [
        (
            "class,startTime_usec,endTime_usec\n3,7100000,7600000\n3,abc,7700000\n",
            r"line 3: .*not three integers",
        ),
        ("class,startTime_usec,endTime_usec\n12,7100000,7600000\n", r"line 2: class 12, expected 1-11"),
        ("class,startTime_usec,endTime_usec\n3,7100000\n", r"line 2: 2 fields, expected 3"),
        ("class,startTime_usec,endTime_usec\n\n3,7600000,7100000\n", r"line 3: window \[7600000, 7100000\)"),
        ("cls,start,end\n3,7100000,7600000\n", r"line 1: header"),
        ("class,startTime_usec,endTime_usec\n", r"no label rows"),
    ]:
        csv.write_text(body)
        with pytest.raises(LayoutError, match=r"user02_lab_labels\.csv" + ".*" + msg):
            scan("dvsgesture", tmp_path)
    csv.unlink()
    with pytest.raises(LayoutError, match=r"user02_lab_labels\.csv: missing file"):
        scan("dvsgesture", tmp_path)
    csv.write_text(good)
    (data / "trials_to_train.txt").unlink()
    with pytest.raises(LayoutError, match=r"trials_to_train\.txt: missing file"):
        scan("dvsgesture", tmp_path)


# --------------------------------------------------------------------------- N-Omniglot

OMNI_T0 = 1_650_000_000_000_000


def omniglot_recording(folder: Path, stem: str, seed: int, csv_stem: str | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    ev = rand_events(2000, 346, 260, seed, span_us=1_000_000, dup=True)
    windows = [(OMNI_T0 + 10_000, OMNI_T0 + 300_000), (OMNI_T0 + 300_000, OMNI_T0 + 650_000),
               (OMNI_T0 + 700_000, OMNI_T0 + 990_000)]  # fmt: skip
    ev["t"][5] = windows[1][0] - OMNI_T0  # an event on a boundary
    ev = make_events(ev["t"], ev["x"], ev["y"], ev["p"])
    aedat4.write(folder / f"{stem}.aedat4", ev, (346, 260), t0_abs=OMNI_T0)
    rows = ["index,start_timestamp,end_timestamp"] + [f"{k},{s},{e}" for k, (s, e) in enumerate(windows)]
    (folder / f"{csv_stem or stem}.csv").write_text("\n".join(rows) + "\n")
    return ev, windows


def test_nomniglot_slices_split_and_crop(tmp_path: Path) -> None:
    bg, evl = tmp_path / "dvs_background", tmp_path / "dvs_evaluation"
    recs = {
        "background/Greek/character01/0001": omniglot_recording(bg / "Greek/character01", "0001", 1),
        "background/Greek/character02/0002": omniglot_recording(bg / "Greek/character02", "0002", 2),
        # differently named CSV, alone in its folder: paired by extension as the official loader does
        "evaluation/Angelic/character01/rec": omniglot_recording(
            evl / "Angelic/character01", "rec", 3, csv_stem="times"
        ),
    }
    index = scan("nomniglot", tmp_path)
    check_sorted(index)
    assert index.classes == ["Angelic/character01", "Greek/character01", "Greek/character02"]
    assert index.sensor_size == (346, 260) and "crop" not in index.notes
    assert index.read_options == {"format": "aedat4"}
    assert len(index.samples) == 9
    ids = by_id(index)
    assert ids["background/Greek/character02/0002_1"].label == 2
    assert ids["background/Greek/character02/0002_1"].split == "train"
    assert ids["evaluation/Angelic/character01/rec_2"].split == "test"
    assert ids["evaluation/Angelic/character01/rec_2"].label == 0

    cropped = scan("nomniglot", tmp_path, crop=True)
    assert cropped.sensor_size == (250, 250)
    assert cropped.notes["crop"] == [54, 4, 304, 254]
    for key, (ev, windows) in recs.items():
        t_abs = ev["t"] + OMNI_T0
        for k, (start, end) in enumerate(windows):
            mask = (t_abs >= start) & (t_abs < end)
            exp = ev[mask].copy()
            exp["t"] = t_abs[mask] - start
            same_events(load_sample(index, ids[f"{key}_{k}"]), exp)
            inside = (exp["x"] >= 54) & (exp["x"] < 304) & (exp["y"] >= 4) & (exp["y"] < 254)
            exp_c = exp[inside].copy()
            exp_c["x"] -= 54
            exp_c["y"] -= 4
            got = load_sample(cropped, by_id(cropped)[f"{key}_{k}"])
            same_events(got, exp_c)
            assert len(got) < len(exp)


def test_nomniglot_drawers_split_by_csv_row(tmp_path: Path) -> None:
    """The drawers alternative: the first 15 of a character's 20 CSV rows train (row order, not the
    string order of the ids, where ``_10`` sorts before ``_2``), the rest test, in both folders."""
    folder = tmp_path / "dvs_evaluation/Angelic/character01"
    omniglot_recording(folder, "0001", 4)
    rows = ["index,start,end"] + [
        f"{k},{OMNI_T0 + 40_000 * k},{OMNI_T0 + 40_000 * (k + 1)}" for k in range(20)
    ]
    (folder / "0001.csv").write_text("\n".join(rows) + "\n")
    omniglot_recording(tmp_path / "dvs_background/Greek/character01", "0002", 5)  # 3 rows
    index = scan("nomniglot", tmp_path)
    ids = by_id(index)
    drawers = {sid: dict(s.alt_splits)["drawers"] for sid, s in ids.items()}
    assert [drawers[f"evaluation/Angelic/character01/0001_{k}"] for k in range(20)] == ["train"] * 15 + [
        "test"
    ] * 5
    assert all(ids[f"evaluation/Angelic/character01/0001_{k}"].split == "test" for k in range(20))
    assert [drawers[f"background/Greek/character01/0002_{k}"] for k in range(3)] == [
        "train"
    ] * 3  # ceil(2.25)
    assert "drawers" in index.split_info["alternatives"]


def test_nomniglot_bad_trees(tmp_path: Path) -> None:
    omniglot_recording(tmp_path / "dvs_background/Greek/character01", "0001", 1)
    with pytest.raises(LayoutError, match=r"dvs_evaluation: missing folder, expected N-Omniglot"):
        scan("nomniglot", tmp_path)
    char = tmp_path / "dvs_evaluation/Angelic/character01"
    char.mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"character01: character folder has no \.aedat4"):
        scan("nomniglot", tmp_path)
    omniglot_recording(char, "a", 4)
    omniglot_recording(char, "b", 5)
    (char / "b.csv").unlink()
    with pytest.raises(
        LayoutError, match=r"character01/b\.csv: missing file, expected the sample CSV of b\.aedat4"
    ):
        scan("nomniglot", tmp_path)
    (char / "b.csv").write_text("index,start,end\n0,100,x\n")
    with pytest.raises(LayoutError, match=r"b\.csv line 2: columns 1 and 2"):
        scan("nomniglot", tmp_path)
    (char / "b.csv").write_text("index,start,end\n0,100\n")
    with pytest.raises(LayoutError, match=r"b\.csv line 2: 2 fields"):
        scan("nomniglot", tmp_path)


# --------------------------------------------------------------------------- CEP-DVS


def test_cepdvs_labels_and_split(tmp_path: Path) -> None:
    img = tmp_path / "data" / "MAT" / "img"
    img.mkdir(parents=True)
    lines = ["index image fine_label coarse_label superclass"]  # a header line is skipped
    written = {}
    idx = 0
    for c, cls in enumerate(cepdvs_layout.CLASSES):
        for _ in range(7 if c == 0 else 2):
            ev = rand_events(10, 128, 128, seed=idx)
            mat_file.write(img / f"{idx}.mat", ev, (128, 128))
            written[f"{cls}/{idx}"] = ev
            ref = f"{idx}" if idx % 2 else f"data/MAT/img/{idx}.mat"
            lines.append(f"{ref}  train/{cls}/img{idx}.png {idx % 100} {c}   {cls}")
            idx += 1
    (tmp_path / "pathFile.csv").write_text("\n".join(lines) + "\n\n")
    index = scan("cepdvs", tmp_path)
    check_sorted(index)
    assert index.classes == list(cepdvs_layout.CLASSES) and len(index.classes) == 20
    assert index.classes[9] == "large_man-made_outdoor_things" and index.classes[19] == "vehicles_2"
    assert index.sensor_size == (128, 128) and index.read_options == {"format": "mat"}
    assert "unverified" in index.notes["sensor_size_source"]
    assert len(index.samples) == 7 + 19 * 2
    assert abs(index.split_info["train_ratio"] - 250 / 350) < 1e-12
    # aquatic_mammals: files 0..6, ASCII order 0 1 2 3 4 5 6, ceil(5/7 * 7) = 5 train
    aq = sorted((s for s in index.samples if s.label == 0), key=lambda s: s.path)
    assert [s.split for s in aq] == ["train"] * 5 + ["test"] * 2
    # two per class: ceil(10/7) = 2, both train
    assert all(s.split == "train" for s in index.samples if s.label != 0)
    spec = by_id(index)["fish/8"]
    assert (spec.label, spec.path) == (1, "data/MAT/img/8.mat")
    same_events(load_sample(index, spec), written["fish/8"])

    half = scan("cepdvs", tmp_path, train_ratio=0.5, sensor_size=(200, 100))
    assert half.sensor_size == (200, 100) and half.notes["sensor_size_source"] == "option"
    assert sum(s.split == "train" for s in half.samples if s.label == 0) == 4
    assert scan("cepdvs", tmp_path, time_unit="ms").read_options == {"format": "mat", "time_unit": "ms"}
    with pytest.raises(LayoutError, match="time_unit"):
        scan("cepdvs", tmp_path, time_unit="ns")


def test_cepdvs_bad_trees(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"data/MAT/img: missing folder, expected CEP-DVS"):
        scan("cepdvs", tmp_path)
    img = tmp_path / "data" / "MAT" / "img"
    img.mkdir(parents=True)
    mat_file.write(img / "0.mat", rand_events(5, 128, 128, 0), (128, 128))
    mat_file.write(img / "1.mat", rand_events(5, 128, 128, 1), (128, 128))
    with pytest.raises(LayoutError, match=r"pathFile\.csv: missing file"):
        scan("cepdvs", tmp_path)
    label_file = tmp_path / "pathFile.csv"
    label_file.write_text("0 a b c fish\n1 a b c not_a_class\n")
    with pytest.raises(LayoutError, match=r"pathFile\.csv line 2: no superclass name"):
        scan("cepdvs", tmp_path)
    label_file.write_text("0 a b c fish\n2 a b c trees\n")
    with pytest.raises(LayoutError, match=r"img/2\.mat: missing file named in .*pathFile\.csv line 2"):
        scan("cepdvs", tmp_path)
    label_file.write_text("0 a b c fish\n")
    with pytest.raises(LayoutError, match=r"img/1\.mat: no label line"):
        scan("cepdvs", tmp_path)
    label_file.write_text("0 a b c fish\n1 a b c fish\n")
    with pytest.raises(LayoutError, match=r"class 'aquatic_mammals' has no sample"):
        scan("cepdvs", tmp_path)


# --------------------------------------------------------------------------- generic folder


def test_folder_per_class_split_and_sensor_inference(tmp_path: Path) -> None:
    for c, cls in enumerate(["dog", "Cat"]):
        (tmp_path / cls / "sub").mkdir(parents=True)
        for i in range(5):
            aedat4.write(tmp_path / cls / f"s{i}.aedat4", rand_events(5, 64, 48, seed=10 * c + i), (64, 48))
        atis_bin.write(tmp_path / cls / "sub" / "z.bin", rand_events(5, 20, 20, seed=99), (20, 20))
        (tmp_path / cls / "notes.txt").write_text("not an event file")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "synthetic.json").write_text('{"simulator": "v1", "seed": 3}')
    index = scan("folder", tmp_path)
    check_sorted(index)
    assert index.classes == ["Cat", "dog"]
    assert index.sensor_size == (64, 48)
    assert "inferred" in index.notes["sensor_size_source"]
    assert index.notes["source_metadata"] == {"simulator": "v1", "seed": 3}
    assert index.read_options == {}
    assert len(index.samples) == 12
    # per class: s0 s1 s2 s3 s4 sub/z in ASCII order, ceil(0.9 * 6) = 6 train
    assert all(s.split == "train" for s in index.samples)
    ids = by_id(index)
    assert ids["dog/sub/z"].path == "dog/sub/z.bin" and ids["dog/sub/z"].label == 1
    half = scan("folder", tmp_path, train_ratio=0.5, sensor_size=(64, 48))
    assert [s.split for s in half.samples if s.label == 0] == ["train"] * 3 + ["test"] * 3
    assert half.notes["sensor_size_source"] == "option"
    only4 = scan("folder", tmp_path, format="aedat4", sensor_size=(64, 48))
    assert len(only4.samples) == 10 and only4.read_options == {"format": "aedat4"}


def test_folder_train_test_split_and_errors(tmp_path: Path) -> None:
    for split, classes in (("train", ["a", "b"]), ("test", ["b", "c"])):
        for cls in classes:
            (tmp_path / split / cls).mkdir(parents=True)
            atis_bin.write(tmp_path / split / cls / "x.bin", rand_events(4, 30, 30, seed=1), (30, 30))
    (tmp_path / "metadata.json").write_text('{"source": "unit test"}')
    index = scan("folder", tmp_path, sensor_size=(30, 30))
    assert index.classes == ["a", "b", "c"]
    assert index.split_info["kind"] == "official"
    assert {s.sample_id: (s.label, s.split) for s in index.samples} == {
        "train/a/x": (0, "train"), "train/b/x": (1, "train"), "test/b/x": (1, "test"), "test/c/x": (2, "test")
    }  # fmt: skip
    assert index.notes["source_metadata"] == {"source": "unit test"}
    (tmp_path / "test" / "d").mkdir()
    with pytest.raises(LayoutError, match=r"test/d: class folder has no event files"):
        scan("folder", tmp_path)
    (tmp_path / "metadata.json").write_text("{broken")
    shutil.rmtree(tmp_path / "test" / "d")
    with pytest.raises(LayoutError, match=r"metadata\.json: cannot parse as JSON"):
        scan("folder", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError, match=r"empty: no class folders"):
        scan("folder", empty)
