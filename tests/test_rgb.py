"""RGB sources on small files written in the real formats, malformed files, and the frame encoding."""

from __future__ import annotations

import gzip
import math
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tmkt_data.errors import TmktError
from tmkt_data.rgb import (
    RGB_SOURCES,
    ImageFiles,
    RGBError,
    balanced_indices,
    load_rgb,
    per_class_indices,
)
from tmkt_data.rgb.encode import encode_images

# ---------------------------------------------------------------- writers in the datasets' own formats


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root: Path, per_batch: int = 4, seed: int = 0) -> Path:
    """``cifar-10-batches-py`` with bytes keys, like the original Python 2 pickles."""
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    _pickle(
        base / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    )
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        _pickle(
            base / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": []}
        )
    return root


def write_cifar100(root: Path, n: int = 6, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    base = root / "cifar-100-python"
    fine = [f"fine{i}".encode() for i in range(100)]
    coarse = [b"aquatic_mammals", b"fish"] + [f"coarse{i}".encode() for i in range(2, 20)]
    _pickle(base / "meta", {b"fine_label_names": fine, b"coarse_label_names": coarse})
    for name in ("train", "test"):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        f = [int(v) for v in rng.integers(0, 100, n)]
        _pickle(base / name, {b"data": data, b"fine_labels": f, b"coarse_labels": [v // 5 for v in f]})
    return root


def idx_images(images: np.ndarray) -> bytes:
    n, r, c = images.shape
    return struct.pack(">iiii", 2051, n, r, c) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">ii", 2049, len(labels)) + np.asarray(labels, dtype=np.uint8).tobytes()


def write_mnist(root: Path, train: np.ndarray, train_labels, test: np.ndarray, test_labels, gz=False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": idx_images(train),
        "train-labels-idx1-ubyte": idx_labels(train_labels),
        "t10k-images-idx3-ubyte": idx_images(test),
        "t10k-labels-idx1-ubyte": idx_labels(test_labels),
    }
    for name, blob in files.items():
        if gz:
            (root / (name + ".gz")).write_bytes(gzip.compress(blob))
        else:
            (root / name).write_bytes(blob)
    return root


def write_images(folder: Path, names: list[str], size=(20, 16), mode="RGB", seed=0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
        img = Image.fromarray(arr)
        if mode == "1":
            img = img.convert("1")
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        img.save(folder / name)


# ---------------------------------------------------------------- CIFAR


def test_cifar10_reads_batches_in_order_with_pixel_layout(tmp_path: Path) -> None:
    root = write_cifar10(tmp_path)
    s = load_rgb("cifar10", root)
    assert len(s) == 24 and s.images.shape == (24, 32, 32, 3) and s.images.dtype == np.uint8
    assert s.class_names[0] == "airplane" and len(s.class_names) == 10
    assert s.split == ["train"] * 20 + ["test"] * 4
    assert s.source_ids[:2] == ["train/00000", "train/00001"] and s.source_ids[20] == "test/00000"
    raw = pickle.loads((root / "cifar-10-batches-py" / "data_batch_2").read_bytes(), encoding="bytes")
    img = s.images[4 + 1]  # second image of batch 2
    row = raw[b"data"][1]
    assert img[0, 0, 0] == row[0] and img[0, 0, 1] == row[1024] and img[0, 0, 2] == row[2048]
    assert img[2, 5, 1] == row[1024 + 2 * 32 + 5]
    assert s.labels[5] == raw[b"labels"][1]
    # the folder itself is accepted as root
    assert len(load_rgb("cifar10", root / "cifar-10-batches-py")) == 24


def test_cifar100_fine_and_coarse_labels(tmp_path: Path) -> None:
    root = write_cifar100(tmp_path)
    fine = load_rgb("cifar100", root)
    coarse = load_rgb("cifar100", root, labels="coarse")
    assert len(fine.class_names) == 100 and len(coarse.class_names) == 20
    assert coarse.class_names[:2] == ["aquatic_mammals", "fish"]
    np.testing.assert_array_equal(coarse.labels, fine.labels // 5)
    assert fine.split == ["train"] * 6 + ["test"] * 6
    with pytest.raises(RGBError, match="labels 'medium'"):
        load_rgb("cifar100", root, labels="medium")


def test_cifar_malformed_files(tmp_path: Path) -> None:
    root = write_cifar10(tmp_path)
    base = root / "cifar-10-batches-py"
    (base / "test_batch").unlink()
    with pytest.raises(RGBError, match=r"test_batch: missing file"):
        load_rgb("cifar10", root)
    (base / "test_batch").write_bytes(b"\x80\x02}q\x00(X")  # truncated pickle
    with pytest.raises(RGBError, match=r"test_batch: not a CIFAR python pickle"):
        load_rgb("cifar10", root)
    _pickle(base / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(RGBError, match=r"test_batch: 'data' is uint8 \(2, 100\), expected uint8 \(n, 3072\)"):
        load_rgb("cifar10", root)
    _pickle(base / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(RGBError, match=r"test_batch: 1 labels for 2 images"):
        load_rgb("cifar10", root)
    _pickle(base / "test_batch", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]})
    with pytest.raises(RGBError, match=r"labels outside 0..9"):
        load_rgb("cifar10", root)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (base / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(RGBError, match=r"refusing to load builtins.print"):
        load_rgb("cifar10", root)


def test_cifar_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RGBError, match="cifar-10-batches-py: missing folder"):
        load_rgb("cifar10", tmp_path / "empty")
    with pytest.raises(RGBError, match="RGB root is not a folder"):
        load_rgb("cifar100", tmp_path / "absent")


# ---------------------------------------------------------------- MNIST


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    tr, te = (
        rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
        rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
    )
    root = write_mnist(tmp_path / "m", tr, [5, 0, 4, 1, 9, 2, 1], te, [7, 2, 1], gz=gz)
    s = load_rgb("mnist", root)
    np.testing.assert_array_equal(s.images, np.concatenate([tr, te]))
    assert s.labels.tolist() == [5, 0, 4, 1, 9, 2, 1, 7, 2, 1]
    assert s.source_ids[1] == "train/00001" and s.source_ids[7] == "test/00000"
    assert s.split.count("test") == 3 and s.class_names == [str(d) for d in range(10)]


def test_mnist_malformed(tmp_path: Path) -> None:
    img = np.zeros((2, 4, 4), np.uint8)
    root = write_mnist(tmp_path / "m", img, [1, 2], img, [3, 4])
    lab = root / "t10k-labels-idx1-ubyte"
    lab.write_bytes(struct.pack(">ii", 2051, 2) + b"\x03\x04")
    with pytest.raises(RGBError, match=r"t10k-labels-idx1-ubyte: magic number 2051, expected 2049"):
        load_rgb("mnist", root)
    lab.write_bytes(idx_labels([3, 4]))
    ims = root / "train-images-idx3-ubyte"
    ims.write_bytes(idx_images(img)[:-5])
    with pytest.raises(RGBError, match=r"train-images-idx3-ubyte: 43 bytes, expected 48 for 2 images of 4x4"):
        load_rgb("mnist", root)
    ims.write_bytes(struct.pack(">iiii", 2049, 2, 4, 4) + img.tobytes())
    with pytest.raises(RGBError, match=r"magic number 2049, expected 2051"):
        load_rgb("mnist", root)
    ims.write_bytes(idx_images(img))
    lab.write_bytes(idx_labels([3]))
    with pytest.raises(RGBError, match=r"1 labels for the 2 images"):
        load_rgb("mnist", root)
    lab.write_bytes(idx_labels([3, 12]))
    with pytest.raises(RGBError, match=r"label 12, expected digits 0..9"):
        load_rgb("mnist", root)
    lab.unlink()
    with pytest.raises(RGBError, match=r"t10k-labels-idx1-ubyte: missing file"):
        load_rgb("mnist", root)


# ---------------------------------------------------------------- Caltech101


def test_caltech101_sorted_per_class_split_and_lazy_images(tmp_path: Path) -> None:
    data = tmp_path / "caltech" / "101_ObjectCategories"
    write_images(data / "accordion", [f"image_{i:04d}.jpg" for i in range(10, 0, -1)])
    write_images(data / "Faces_easy", ["image_0001.jpg", "image_0002.jpg"], mode="L")
    (data / "accordion" / "notes.txt").write_text("not an image")
    (data / ".hidden").mkdir()
    s = load_rgb("caltech101", tmp_path / "caltech")
    assert s.class_names == ["Faces_easy", "accordion"]
    assert isinstance(s.images, ImageFiles)
    acc = [i for i, sid in enumerate(s.source_ids) if sid.startswith("accordion/")]
    assert [s.source_ids[i] for i in acc] == [f"accordion/image_{i:04d}.jpg" for i in range(1, 11)]
    assert [s.split[i] for i in acc] == ["train"] * 9 + ["test"]  # ceil(0.9 * 10) = 9
    assert [s.split[i] for i in range(2)] == ["train", "train"]  # ceil(0.9 * 2) = 2
    assert s.images[0].shape == (16, 20) and s.images[acc[0]].shape == (16, 20, 3)
    assert s.info["split"]["train_ratio"] == 0.9
    s2 = load_rgb("caltech101", data, train_ratio=0.5)
    assert [s2.split[i] for i in acc] == ["train"] * 5 + ["test"] * 5


def test_caltech101_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "101_ObjectCategories"
    write_images(data / "accordion", ["image_0001.jpg"])
    (data / "empty").mkdir()
    with pytest.raises(RGBError, match=r"empty: class folder has no .jpg images"):
        load_rgb("caltech101", tmp_path)
    (data / "empty").rmdir()
    (data / "accordion" / "image_0002.jpg").write_bytes(b"\xff\xd8\xff garbage")
    s = load_rgb("caltech101", tmp_path)
    with pytest.raises(RGBError, match=r"accordion/image_0002.jpg: cannot decode as an image"):
        s.images[1]
    with pytest.raises(RGBError, match=r"101_ObjectCategories: missing folder"):
        load_rgb("caltech101", data / "accordion")
    with pytest.raises(RGBError, match=r"train_ratio 0, expected 0 < ratio <= 1"):
        load_rgb("caltech101", tmp_path, train_ratio=0)


# ---------------------------------------------------------------- Omniglot


def test_omniglot_background_train_evaluation_test(tmp_path: Path) -> None:
    for folder, alphabet in (("images_background", "Greek"), ("images_evaluation", "Tengwar")):
        for char in ("character01", "character02"):
            write_images(tmp_path / folder / alphabet / char, ["0001_01.png", "0001_02.png"], (105, 105), "1")
    s = load_rgb("omniglot", tmp_path)
    assert s.class_names == [
        "Greek/character01",
        "Greek/character02",
        "Tengwar/character01",
        "Tengwar/character02",
    ]
    assert s.source_ids[0] == "images_background/Greek/character01/0001_01.png"
    assert s.split == ["train"] * 4 + ["test"] * 4
    img = s.images[0]
    assert img.shape == (105, 105) and img.dtype == np.uint8 and set(np.unique(img).tolist()) <= {0, 255}
    (tmp_path / "images_evaluation" / "Tengwar" / "character03").mkdir()
    with pytest.raises(RGBError, match=r"character03: character folder has no .png images"):
        load_rgb("omniglot", tmp_path)


def test_omniglot_drawers_split(tmp_path: Path) -> None:
    names = [f"0709_{d:02d}.png" for d in range(1, 21)]
    write_images(tmp_path / "images_background" / "Greek" / "character01", names, (16, 16), "1")
    write_images(tmp_path / "images_evaluation" / "Tengwar" / "character01", names[:4], (16, 16), "1")
    s = load_rgb("omniglot", tmp_path, split="drawers")
    split_of = dict(zip(s.source_ids, s.split, strict=True))
    greek = [split_of[f"images_background/Greek/character01/{n}"] for n in names]
    assert greek == ["train"] * 15 + ["test"] * 5
    assert [split_of[f"images_evaluation/Tengwar/character01/{n}"] for n in names[:4]] == ["train"] * 3 + [
        "test"
    ]
    assert s.info["split"]["kind"] == "per_class_sorted"
    with pytest.raises(RGBError, match=r"split='random', expected official or drawers"):
        load_rgb("omniglot", tmp_path, split="random")


def test_omniglot_missing_split(tmp_path: Path) -> None:
    write_images(tmp_path / "images_background" / "Greek" / "character01", ["a.png"], (8, 8), "1")
    with pytest.raises(RGBError, match=r"images_evaluation: missing folder"):
        load_rgb("omniglot", tmp_path)


# ---------------------------------------------------------------- imagefolder


def test_imagefolder_with_and_without_split(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    write_images(flat / "cat", ["b.png", "a.jpg", "sub/c.bmp", ".hidden.png"])
    write_images(flat / "dog", ["x.jpeg"])
    (flat / "dog" / "readme.txt").write_text("x")
    s = load_rgb("imagefolder", flat)
    assert s.class_names == ["cat", "dog"]
    assert s.source_ids == ["cat/a.jpg", "cat/b.png", "cat/sub/c.bmp", "dog/x.jpeg"]
    assert s.split == ["train"] * 4  # default ratio 1.0
    s2 = load_rgb("imagefolder", flat, train_ratio=0.5)
    assert s2.split == ["train", "train", "test", "train"]  # cat: ceil(1.5) = 2 of 3

    sp = tmp_path / "split"
    write_images(sp / "Train" / "cat", ["1.png"])
    write_images(sp / "Test" / "cat", ["2.png"])
    write_images(sp / "Test" / "owl", ["3.png"])
    s3 = load_rgb("imagefolder", sp)
    assert s3.class_names == ["cat", "owl"] and s3.split == ["test", "test", "train"]
    assert s3.source_ids == ["Test/cat/2.png", "Test/owl/3.png", "Train/cat/1.png"]

    (flat / "empty").mkdir()
    with pytest.raises(RGBError, match=r"empty: class folder has no images"):
        load_rgb("imagefolder", flat)


# ---------------------------------------------------------------- digits and the registry


def test_digits_embedded_default() -> None:
    from sklearn.datasets import load_digits

    s = load_rgb("digits", "-")
    ref = load_digits()
    assert len(s) == 1797 and s.images.shape == (1797, 8, 8) and s.images.dtype == np.uint8
    np.testing.assert_array_equal(s.images, np.round(ref.images * 255 / 16).astype(np.uint8))
    np.testing.assert_array_equal(s.labels, ref.target)
    assert s.images.max() == 255 and s.root is None
    for c in range(10):
        idx = np.flatnonzero(s.labels == c)
        n_train = math.ceil(0.8 * len(idx))
        assert [s.split[i] for i in idx] == ["train"] * n_train + ["test"] * (len(idx) - n_train)
    assert load_rgb("digits", None).source_ids == s.source_ids


def test_registry_and_bad_options(tmp_path: Path) -> None:
    assert set(RGB_SOURCES) == {
        "cifar10",
        "cifar100",
        "caltech101",
        "mnist",
        "omniglot",
        "imagefolder",
        "digits",
        "digitpairs",
    }
    with pytest.raises(RGBError, match="unknown RGB source 'svhn'"):
        load_rgb("svhn", tmp_path)
    with pytest.raises(RGBError, match="mnist: needs RGB_ROOT"):
        load_rgb("mnist", "-")
    with pytest.raises(RGBError, match=r"digits: unknown option\(s\) size"):
        load_rgb("digits", None, size=3)
    assert issubclass(RGBError, TmktError) and issubclass(RGBError, ValueError)


# ---------------------------------------------------------------- digitpairs


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's digits as uint8 (independent of tmkt_data) and the documented per-class split."""
    from sklearn.datasets import load_digits

    ref = load_digits()
    images = np.round(ref.images * 255 / 16).astype(np.uint8)
    split = [""] * len(ref.target)
    for c in range(10):
        idx = np.flatnonzero(ref.target == c)
        n_train = math.ceil(0.8 * len(idx))
        for k, i in enumerate(idx):
            split[i] = "train" if k < n_train else "test"
    return images, ref.target, split


def _pair_indices(source_ids: list[str]) -> list[tuple[int, int]]:
    out = []
    for sid in source_ids:
        m = re.fullmatch(r"digitpairs/(\d{4})-(\d{4})", sid)
        assert m, sid
        out.append((int(m.group(1)), int(m.group(2))))
    return out


def test_digitpairs_images_are_two_sklearn_digits_side_by_side() -> None:
    images, target, _ = _sklearn_digits()
    s = load_rgb("digitpairs", "-", per_class_train=20, per_class_test=5)
    assert s.class_names == [f"{a}{b}" for a in range(10) for b in range(10)]
    assert s.class_names[37] == "37" and s.root is None
    assert s.images.shape == (100 * 25, 8, 16) and s.images.dtype == np.uint8
    assert s.counts() == {c: {"train": 20, "test": 5} for c in s.class_names}
    assert s.split == ["train"] * 2000 + ["test"] * 500  # every training image first
    assert len(set(s.source_ids)) == len(s)
    for k, (i, j) in enumerate(_pair_indices(s.source_ids)):
        np.testing.assert_array_equal(s.images[k], np.hstack([images[i], images[j]]))
        assert s.labels[k] == 10 * target[i] + target[j]
        assert i != j
    gapped = load_rgb("digitpairs", None, per_class_train=2, per_class_test=1, gap=3)
    assert gapped.source_ids == load_rgb("digitpairs", None, per_class_train=2, per_class_test=1).source_ids
    i, j = _pair_indices(gapped.source_ids[:1])[0]
    expected = np.hstack([images[i], np.zeros((8, 3), np.uint8), images[j]])
    np.testing.assert_array_equal(gapped.images[0], expected)


def test_digitpairs_splits_share_no_digit_image() -> None:
    _, _, split = _sklearn_digits()
    s = load_rgb("digitpairs", None)  # the defaults: 150 train and 30 test pairs per class
    assert len(s) == 100 * 180
    used: dict[str, set[int]] = {"train": set(), "test": set()}
    for (i, j), sp in zip(_pair_indices(s.source_ids), s.split, strict=True):
        assert split[i] == split[j] == sp  # both digits from the pair's own split
        used[sp] |= {i, j}
    assert not used["train"] & used["test"]
    assert len(s.source_ids) == len(set(s.source_ids))


def test_digitpairs_is_deterministic_and_counts_only_append() -> None:
    a = load_rgb("digitpairs", None, per_class_train=12, per_class_test=4, seed=5)
    b = load_rgb("digitpairs", None, per_class_train=12, per_class_test=4, seed=5)
    assert a.source_ids == b.source_ids
    np.testing.assert_array_equal(a.images, b.images)
    other = load_rgb("digitpairs", None, per_class_train=12, per_class_test=4, seed=6)
    assert other.source_ids != a.source_ids
    more = load_rgb("digitpairs", None, per_class_train=30, per_class_test=9, seed=5)
    for c in range(100):
        for sp in ("train", "test"):
            ids_a = [
                x for x, lab, q in zip(a.source_ids, a.labels, a.split, strict=True) if lab == c and q == sp
            ]
            ids_m = [x for x, lab, q in zip(more.source_ids, more.labels, more.split, strict=True)
                     if lab == c and q == sp]  # fmt: skip
            assert ids_m[: len(ids_a)] == ids_a
    only_train = load_rgb("digitpairs", None, per_class_train=12, per_class_test=0, seed=5)
    assert only_train.source_ids == a.source_ids[:1200]


def test_digitpairs_bad_options() -> None:
    with pytest.raises(RGBError, match=r"digitpairs: per_class_train -1, expected an integer >= 0"):
        load_rgb("digitpairs", None, per_class_train=-1)
    with pytest.raises(RGBError, match=r"digitpairs: per_class_test '5', expected an integer >= 0"):
        load_rgb("digitpairs", None, per_class_test="5")
    # digit 0 has 178 images, 178 - ceil(0.8 * 178) = 35 of them test: 35 * 34 ordered pairs for "00"
    with pytest.raises(
        RGBError, match=r"per_class_test=2000 for class '00', expected at most its 1190 distinct"
    ):
        load_rgb("digitpairs", None, per_class_test=2000)
    with pytest.raises(RGBError, match=r"digitpairs: unknown option\(s\) per_class"):
        load_rgb("digitpairs", None, per_class=3)
    with pytest.raises(RGBError, match="no images found"):
        load_rgb("digitpairs", None, per_class_train=0, per_class_test=0)


# ---------------------------------------------------------------- selecting images per class


def test_per_class_indices_take_the_first_images_of_each_class_and_split() -> None:
    labels = [0, 1, 0, 0, 1, 0, 1, 1, 0]
    split = ["train", "train", "train", "test", "train", "train", "test", "test", "test"]
    assert per_class_indices(labels, split, {"train": 2, "test": 1}) == [0, 1, 2, 3, 4, 6]
    assert per_class_indices(labels, split, {"train": 1}) == [0, 1, 3, 6, 7, 8]  # test not named: all
    assert per_class_indices(labels, split, {"train": 0, "test": 5}) == [3, 6, 7, 8]
    with pytest.raises(RGBError, match=r"per-class counts for \['val'\], expected the splits"):
        per_class_indices(labels, split, {"val": 1})
    with pytest.raises(RGBError, match=r"per-class count train=-2, expected an integer >= 0"):
        per_class_indices(labels, split, {"train": -2})


def test_rgbset_selected_per_class_then_limit() -> None:
    s = load_rgb("digits", None)
    sub, chosen = s.selected({"train": 3, "test": 2})
    assert chosen == sorted(chosen) and len(chosen) == 50
    for c in range(10):
        idx = np.flatnonzero(s.labels == c)
        tr = [int(i) for i in idx if s.split[i] == "train"][:3]
        te = [int(i) for i in idx if s.split[i] == "test"][:2]
        assert sorted(i for i in chosen if s.labels[i] == c) == sorted(tr + te)
    assert sub.source_ids == [s.source_ids[i] for i in chosen]
    assert sub.counts() == {str(c): {"train": 3, "test": 2} for c in range(10)}
    both, idx = s.selected({"train": 3, "test": 2}, limit=30)
    assert idx == [chosen[k] for k in balanced_indices(sub.labels.tolist(), sub.split, 30)]
    # limit takes one image of every (split, class) group per round, training groups first
    assert both.counts() == {str(c): {"train": 2, "test": 1} for c in range(10)}
    same, every = s.selected(None, None)
    assert same is s and every == list(range(len(s)))


# ---------------------------------------------------------------- encoding


def test_encode_hsv_value_and_gray_by_hand() -> None:
    img = np.array([[[255, 0, 0], [10, 20, 30]], [[0, 0, 0], [100, 200, 50]]], dtype=np.uint8)
    v = encode_images([img], (2, 2), "hsv_v")
    assert v.shape == (1, 2, 2, 2) and v.dtype == np.float16
    expect = np.array([[255, 30], [0, 200]], dtype=np.float32) / 255
    np.testing.assert_allclose(v[0, 0], expect.astype(np.float16))
    np.testing.assert_array_equal(v[0, 0], v[0, 1])
    g = encode_images(np.stack([img]), (2, 2), "gray")
    luma = np.array(
        [[0.299 * 255, 0.299 * 10 + 0.587 * 20 + 0.114 * 30], [0, 0.299 * 100 + 0.587 * 200 + 0.114 * 50]]
    )
    np.testing.assert_allclose(g[0, 0].astype(np.float64), luma / 255, atol=1e-3)
    gray = np.array([[0, 51], [102, 255]], dtype=np.uint8)
    for mode in ("hsv_v", "gray"):
        np.testing.assert_allclose(encode_images([gray], (2, 2), mode)[0, 1], gray / 255, atol=1e-3)


def test_encode_resizes_with_pil_bilinear() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    out = encode_images([img], (6, 5))
    ref = np.asarray(Image.fromarray(img).resize((5, 6), Image.Resampling.BILINEAR)).max(axis=2) / 255
    np.testing.assert_allclose(out[0, 0], ref.astype(np.float16))
    const = np.full((8, 8, 3), 128, np.uint8)
    np.testing.assert_allclose(encode_images([const], (34, 34))[0], np.float16(128 / 255))
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(RGBError, match="encode mode 'hsv'"):
        encode_images([np.zeros((2, 2), np.uint8)], (2, 2), "hsv")
    with pytest.raises(RGBError, match=r"image 1: float64 array of shape \(2, 2\), expected uint8"):
        encode_images([np.zeros((2, 2), np.uint8), np.zeros((2, 2))], (2, 2))
    with pytest.raises(RGBError, match=r"image 0: uint8 array of shape \(2, 2, 4\)"):
        encode_images([np.zeros((2, 2, 4), np.uint8)], (2, 2))
