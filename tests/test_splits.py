"""One per-class split for the dataset layouts and the RGB sources (issue 11): hand-computed counts,
the two sides of a pair agree, and a store converted with the old float-unsafe split is refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import zarr

from tmkt_data import make_events
from tmkt_data.convert import ConvertError, ConvertOptions, convert
from tmkt_data.formats import atis_bin
from tmkt_data.layouts import scan
from tmkt_data.rgb import load_rgb
from tmkt_data.splits import per_class_split, split_within_groups, train_count


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [
        (100, 0.55, 55),  # 0.55 * 100 = 55.00000000000001 in floats: a plain ceil gives 56
        (25, 0.56, 14),  # 14.000000000000002
        (25, 0.28, 7),  # 7.000000000000001
        (100, 0.07, 7),  # 7.000000000000001
        (10, 0.9, 9),
        (1000, 0.9, 900),
        (11, 0.9, 10),  # 9.9 -> 10
        (350, 250 / 350, 250),
        (20, 0.75, 15),
        (7, 0.5, 4),  # 3.5 -> 4
        (1, 0.1, 1),
        (3, 1.0, 3),
        (0, 0.9, 0),
    ],
)
def test_train_count_by_hand(n: int, ratio: float, expected: int) -> None:
    assert train_count(n, ratio) == expected
    assert per_class_split(n, ratio) == ["train"] * expected + ["test"] * (n - expected)


def test_the_float_error_cases_are_real() -> None:
    assert math.ceil(0.55 * 100) == 56 and math.ceil(0.56 * 25) == 15  # what the old layout split gave


def test_split_within_groups() -> None:
    assert split_within_groups(["a", "b", "a", "a", "b"], 0.5) == ["train", "train", "train", "test", "test"]


def test_layouts_and_rgb_sources_use_the_one_split() -> None:
    import tmkt_data.layouts.base as layouts_base
    import tmkt_data.layouts.folder as folder
    import tmkt_data.rgb.caltech101 as caltech101
    import tmkt_data.rgb.digits as digits
    import tmkt_data.rgb.imagefolder as imagefolder
    import tmkt_data.rgb.omniglot as omniglot
    import tmkt_data.splits as splits

    for mod in (layouts_base, folder, caltech101, digits, imagefolder):
        assert mod.per_class_split is splits.per_class_split
    assert omniglot.split_within_groups is layouts_base.split_within_groups is splits.split_within_groups


def _events(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = 20
    return make_events(np.sort(rng.integers(0, 5_000, n)), rng.integers(0, 8, n), rng.integers(0, 8, n),
                       rng.integers(0, 2, n))  # fmt: skip


def test_event_and_rgb_sides_split_alike_at_0_55(tmp_path: Path) -> None:
    from PIL import Image

    n = 100
    for i in range(n):
        (tmp_path / "dvs" / "cls").mkdir(parents=True, exist_ok=True)
        (tmp_path / "dvs" / "cls" / f"s{i:03d}.bin").write_bytes(b"")  # not read: sensor_size is given
        (tmp_path / "rgb" / "cls").mkdir(parents=True, exist_ok=True)
        Image.new("L", (2, 2)).save(tmp_path / "rgb" / "cls" / f"s{i:03d}.png")
    index = scan("folder", tmp_path / "dvs", train_ratio=0.55, sensor_size=[8, 8])
    rgb = load_rgb("imagefolder", tmp_path / "rgb", train_ratio=0.55)
    dvs_split = [s.split for s in sorted(index.samples, key=lambda s: s.path)]
    assert dvs_split.count("train") == 55
    assert dvs_split == list(rgb.split)


def test_store_split_the_old_way_is_refused_not_mixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store converted before the fix, at a ratio that hit the float error, holds another sample list:
    convert says so (index_hash) instead of resuming into it."""
    import tmkt_data.layouts.folder as folder

    raw = tmp_path / "raw"
    (raw / "a").mkdir(parents=True)
    for i in range(25):
        atis_bin.write(raw / "a" / f"{i:02d}.bin", _events(i), (8, 8))
    opts = ConvertOptions(
        frames=2, shard_samples=8, layout_options={"train_ratio": 0.56, "sensor_size": [8, 8]}
    )

    def old_split(n: int, ratio: float) -> list[str]:
        k = math.ceil(ratio * n)
        return ["train"] * k + ["test"] * (n - k)

    with monkeypatch.context() as m:
        m.setattr(folder, "per_class_split", old_split)
        convert("folder", raw, tmp_path / "old.zarr", opts, workers=1)
    with pytest.raises(ConvertError, match="another sample list"):
        convert("folder", raw, tmp_path / "old.zarr", opts, workers=1)
    res = convert("folder", raw, tmp_path / "old.zarr", opts, workers=1, overwrite=True)
    assert res.n_samples == 25
    split = [str(v) for v in zarr.open_group(str(tmp_path / "old.zarr"), mode="r")["split"][:]]
    assert split.count("train") == 14


@pytest.mark.parametrize("layout", ["cifar10dvs", "ncaltech101", "folder", "cepdvs"])
@pytest.mark.parametrize("bad", ["abc", 0, 1.5, [0.5]])
def test_layouts_refuse_a_bad_train_ratio_in_one_line(tmp_path: Path, layout: str, bad: object) -> None:
    """One LayoutError naming the option and the value, for every layout."""
    from tmkt_data.layouts import LayoutError, scan

    with pytest.raises(LayoutError, match=r"train_ratio .*0 < ratio <= 1$"):
        scan(layout, tmp_path, train_ratio=bad)
