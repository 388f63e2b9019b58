"""tmkt_data.FrameDataset: values against zarr-python, splits, RGB partners, transforms, workers, errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from tmkt_data import FrameDataset, TmktError
from tmkt_data.dataset import DatasetError, DatasetIndexError
from tmkt_data.pairing import pair_store, read_pairs
from tmkt_data.store import StoreError, StoreGeometry, create_store, finalize_store, sample_row, write_shard

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [str(d) for d in range(10)]


def build_store(
    path: Path, dtype: str, frame_shape: tuple[int, ...], per_class: dict[str, int], shard: int, seed: int
) -> Path:
    """A store of random frames, ``per_class[split]`` samples of each of the 10 digit classes per split,
    sorted by sample id (so by split, then class); sample 5 invalid (zero frames); an alternative
    split ``split_drawers`` (the first two samples of each class and split are ``test``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for split in sorted(per_class):
        for c in range(10):
            for i in range(per_class[split]):
                rows.append((f"{split}/{c}/{i:03d}", c, split, "test" if i < 2 else "train"))
    n = len(rows)
    geo = StoreGeometry(n, frame_shape, dtype, shard)
    create_store(path, geo, {"dataset": "nmnist", "classes": CLASSES})
    if np.dtype(dtype).kind == "f":
        frames = rng.random((n, *frame_shape)).astype(dtype)
    else:
        frames = rng.integers(0, 400, (n, *frame_shape)).astype(dtype)
    frames[5] = 0
    for k in range(geo.n_shards):
        a, b = geo.shard_range(k)
        meta = [
            sample_row(sid, c, sp, valid=i != 5, alt_splits={"drawers": dr})
            for i, (sid, c, sp, dr) in enumerate(rows[a:b], start=a)
        ]
        write_shard(path, k, frames[a:b], meta, "test")
    finalize_store(path)
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Unpaired, uint16 counts (3, 2, 5, 7), 4 samples per shard, last shard partial (90 samples)."""
    root = tmp_path_factory.mktemp("dataset_plain")
    return build_store(root / "plain.zarr", "uint16", (3, 2, 5, 7), {"test": 3, "train": 6}, 4, seed=1)


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """float16 frames (2, 2, 12, 12), paired with the embedded digits (val carved from train)."""
    root = tmp_path_factory.mktemp("dataset_paired")
    store = build_store(root / "paired.zarr", "float16", (2, 2, 12, 12), {"test": 2, "train": 6}, 8, seed=2)
    pair_store(store, "digits", None, val_fraction=0.2, seed=0)
    return store


def group(store: Path) -> zarr.Group:
    return zarr.open_group(str(store), mode="r")


def strings(arr) -> np.ndarray:
    return np.asarray(arr[:], dtype=object).astype(str)


def store_split(store: Path, array: str, part: str) -> np.ndarray:
    g = group(store)
    return np.flatnonzero((strings(g[array]) == part) & g["valid"][:])


def check_values(ds: FrameDataset, store: Path) -> None:
    """Every item's frames and label equal zarr-python's reading of the store."""
    g = group(store)
    frames, labels = g["frames"], g["labels"][:]
    for i in range(len(ds)):
        x, y = ds[i]
        s = int(ds.indices[i])
        want = np.asarray(frames[s]).astype(np.float32)
        assert x.dtype == np.float32 and x.shape == want.shape == ds.frame_shape
        np.testing.assert_array_equal(x, want)
        assert isinstance(y, int) and y == int(labels[s]) == int(ds.labels[i])


@pytest.mark.parametrize("split", ["train", "test"])
def test_unpaired_values_labels_lengths(plain: Path, split: str) -> None:
    ds = FrameDataset(plain, split)
    want = store_split(plain, "split", split)
    assert len(ds) == len(want) and np.array_equal(ds.indices, want)
    assert 5 not in ds.indices.tolist()  # the invalid sample is left out
    assert ds.classes == CLASSES and ds.pairs is None
    check_values(ds, plain)
    x, _ = ds[-1]  # negative indices count from the end
    np.testing.assert_array_equal(x, ds[len(ds) - 1][0])


def test_paired_splits_follow_the_pairing(paired: Path) -> None:
    pairs = read_pairs(paired)
    seen: list[int] = []
    for split in ("train", "val", "test"):
        ds = FrameDataset(paired, split)
        assert np.array_equal(ds.indices, pairs.dvs[split]) and len(ds) == len(pairs.dvs[split]) > 0
        seen.extend(ds.indices.tolist())
        check_values(ds, paired)
    assert len(seen) == len(set(seen))  # train, val and test partition the paired samples
    # ARRAY:PART ignores the pairing: the store's whole train split holds the pairing's train and val
    whole = FrameDataset(paired, "split:train")
    assert np.array_equal(whole.indices, store_split(paired, "split", "train"))
    assert set(whole.indices.tolist()) == set(pairs.dvs["train"].tolist()) | set(pairs.dvs["val"].tolist())


@pytest.mark.parametrize("spec", ["split_drawers:test", "drawers:test", "split_drawers:train"])
def test_alternative_splits(plain: Path, spec: str) -> None:
    ds = FrameDataset(plain, spec)
    part = spec.split(":")[1]
    assert np.array_equal(ds.indices, store_split(plain, "split_drawers", part))
    assert len(ds) == (40 if part == "test" else 50 - 1)  # 2 + 2 per class are drawers-test; sample 5 invalid
    check_values(ds, plain)


def test_rgb_partners_deterministic_and_of_the_class(paired: Path) -> None:
    g = group(paired)
    images, rgb_labels = g["rgb/images"], g["rgb/labels"][:]
    off, pool = g["pairs/pool_offsets"][:], g["pairs/pool_rgb"][:]
    ds = FrameDataset(paired, "train", rgb=True)
    again = FrameDataset(paired, "train", rgb=True)
    rows = []
    for i in range(len(ds)):
        x, r, y = ds[i]
        row = ds.partner(i)
        rows.append(row)
        assert row == again.partner(i) == ds.partner(i)  # a pure function of (seed, epoch, sample)
        assert rgb_labels[row] == y and row in pool[off[y] : off[y + 1]]
        assert r.dtype == np.float32 and r.shape == ds.rgb_shape == (2, 12, 12)
        np.testing.assert_array_equal(r, np.asarray(images[row]).astype(np.float32))
        np.testing.assert_array_equal(x, np.asarray(g["frames"][int(ds.indices[i])]).astype(np.float32))
    assert len(set(rows)) > 10  # drawn, not a fixed image per class
    ds.set_epoch(1)
    assert [ds.partner(i) for i in range(len(ds))] != rows  # a new epoch draws anew
    other = FrameDataset(paired, "train", rgb=True, seed=5)
    assert [other.partner(i) for i in range(len(ds))] != rows
    test = FrameDataset(paired, "test", rgb=True)  # partners for evaluation splits come from the same pools
    _, _, y = test[0]
    assert rgb_labels[test.partner(0)] == y


def test_transforms_are_applied(paired: Path) -> None:
    plain = FrameDataset(paired, "val", rgb=True)
    ds = FrameDataset(
        paired,
        "val",
        rgb=True,
        transform=lambda x: x[::-1].sum(),
        target_transform=lambda y: f"class {y}",
        rgb_transform=lambda r: r[0] * 2,
    )
    for i in range(len(ds)):
        x, r, y = plain[i]
        tx, tr, ty = ds[i]
        assert tx == pytest.approx(float(x[::-1].sum())) and ty == f"class {y}"
        np.testing.assert_array_equal(tr, r[0] * 2)


@pytest.mark.parametrize("rgb", [False, True])
def test_dataloader_workers_match_sequential(paired: Path, rgb: bool) -> None:
    import torch
    from torch.utils.data import DataLoader

    ds = FrameDataset(paired, "train", rgb=rgb)
    ds[0]  # open the readers in this process: workers must open their own
    seq = list(DataLoader(ds, batch_size=8, num_workers=0))
    par = list(DataLoader(ds, batch_size=8, num_workers=2))
    assert len(seq) == len(par) == -(-len(ds) // 8)
    for a, b in zip(seq, par, strict=True):
        assert len(a) == len(b) == (3 if rgb else 2)
        for u, v in zip(a, b, strict=True):
            assert torch.equal(u, v)
    frames = torch.cat([b[0] for b in par]).numpy()
    assert frames.dtype == np.float32 and frames.shape == (len(ds), *ds.frame_shape)
    want = np.stack([np.asarray(group(paired)["frames"][int(s)]) for s in ds.indices]).astype(np.float32)
    np.testing.assert_array_equal(frames, want)
    assert torch.cat([b[-1] for b in par]).tolist() == ds.labels.tolist()


def test_pickle_round_trip(paired: Path) -> None:
    ds = FrameDataset(paired, "train", rgb=True)
    first = ds[3]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._reader is None  # handles are reopened by the process that reads
    for u, v in zip(first, copy[3], strict=True):
        np.testing.assert_array_equal(u, v)


def test_iteration_protocol_stops_at_the_end(plain: Path) -> None:
    ds = FrameDataset(plain, "test")
    assert len(list(ds)) == len(ds)  # __getitem__ raises an IndexError past the end


def test_errors(plain: Path, paired: Path, tmp_path: Path) -> None:
    cases = [
        (
            (plain, "training"),
            "expected train, val, test or ARRAY:PART with ARRAY one of split, split_drawers",
        ),
        ((plain, "nosuch:train"), "no split array 'nosuch'"),
        ((plain, "split:"), "no PART after ':'"),
        ((plain, "split_drawers:holdout"), "holds no 'holdout' samples (it holds test, train)"),
        ((plain, "val"), "run `tmkt-data pair"),
        ((paired, "split:val"), "'val' comes from a pairing index"),
        ((plain, 3), "expected train, val, test"),
    ]
    for args, msg in cases:
        with pytest.raises(DatasetError) as err:
            FrameDataset(*args)
        assert msg in str(err.value) and "\n" not in str(err.value)
        assert isinstance(err.value, TmktError)
    with pytest.raises(DatasetError, match="rgb=True needs RGB partners"):
        FrameDataset(plain, "train", rgb=True)
    with pytest.raises(StoreError, match="no such store"):
        FrameDataset(tmp_path / "missing.zarr")
    ds = FrameDataset(plain, "test")
    for bad in (len(ds), -len(ds) - 1, 1.5, "0"):
        with pytest.raises(DatasetIndexError) as err:
            ds[bad]
        assert isinstance(err.value, IndexError) and isinstance(err.value, TmktError)
    with pytest.raises(DatasetError, match="rgb=False"):
        ds.partner(0)


def test_no_torch_import(paired: Path) -> None:
    code = (
        "import sys, tmkt_data\n"
        "from tmkt_data import FrameDataset\n"
        f"ds = FrameDataset({str(paired)!r}, 'train', rgb=True)\n"
        "x, r, y = ds[0]\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    bare = subprocess.run(
        [sys.executable, "-c", "import sys, tmkt_data; assert 'zarr' not in sys.modules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bare.returncode == 0, bare.stderr  # FrameDataset is imported on first use
