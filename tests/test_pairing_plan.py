"""The pure pairing planner and the pairing settings, on hand-built label and split arrays (no store)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from tmkt_data.pairing import (
    DvsSamples,
    InstanceLink,
    PairIndex,
    PairingError,
    PairingPlan,
    PairSettings,
    RgbCatalog,
    check_index,
    match_classes,
    n_keep_for,
    n_val_for,
    plan_pairing,
)

CLASSES = ["a", "b", "c"]


def dvs_samples(train: list[int], test: list[int], *, invalid: int = 0, other: int = 0) -> DvsSamples:
    """``train[c]`` train and ``test[c]`` test samples of class ``c``, then ``invalid`` invalid
    train samples of class 0 and ``other`` samples of class 0 in a split named ``"extra"``."""
    labels, split, valid, ids = [], [], [], []
    for c, name in enumerate(CLASSES):
        for sp, n in (("train", train[c]), ("test", test[c])):
            for k in range(n):
                labels.append(c)
                split.append(sp)
                valid.append(True)
                ids.append(f"{sp}/{name}/{k}")
    for k in range(invalid):
        labels, split, valid, ids = [*labels, 0], [*split, "train"], [*valid, False], [*ids, f"bad/{k}"]
    for k in range(other):
        labels, split, valid, ids = [*labels, 0], [*split, "extra"], [*valid, True], [*ids, f"extra/{k}"]
    return DvsSamples(CLASSES, np.array(labels, np.int64), np.array(valid), split, ids, size=(8, 8))


def rgb_catalog(train: int = 6, test: int = 2, classes: list[str] = CLASSES) -> RgbCatalog:
    """``train`` + ``test`` images per class, ids ``"<class>/<k>"`` (k < train: RGB train split)."""
    labels, split, ids = [], [], []
    for c, name in enumerate(classes):
        for k in range(train + test):
            labels.append(c)
            split.append("train" if k < train else "test")
            ids.append(f"{name}/{k}")
    return RgbCatalog(list(classes), np.array(labels, np.int64), split, ids)


def plan(
    dvs: DvsSamples, rgb: RgbCatalog | None = None, link: InstanceLink | None = None, **kw: Any
) -> PairingPlan:
    rgb = rgb or rgb_catalog()
    match = match_classes(dvs.classes, rgb.class_names, None, drop_unmatched=True)
    return plan_pairing(dvs, rgb, match, PairSettings(rgb_kind="test", **kw), link)


def per_class(p: PairingPlan, dvs: DvsSamples, split: str) -> list[int]:
    return np.bincount(dvs.labels[p.dvs[split]], minlength=len(CLASSES)).tolist()


# ---------------------------------------------------------------- splits and counts


def test_val_and_train_counts_per_class_by_fraction() -> None:
    dvs = dvs_samples([10, 5, 2], [3, 1, 0], invalid=2, other=1)
    p = plan(dvs, val_fraction=0.2, dvs_fraction=0.5, seed=1)
    n_val = [n_val_for(n, 0.2) for n in (10, 5, 2)]
    assert per_class(p, dvs, "val") == n_val == [2, 1, 0]
    assert per_class(p, dvs, "train") == [
        n_keep_for(n - v, 0.5) for n, v in zip((10, 5, 2), n_val, strict=True)
    ]
    assert per_class(p, dvs, "test") == [3, 1, 0]
    np.testing.assert_array_equal(p.dvs["test"], np.flatnonzero(np.asarray(dvs.split) == "test"))
    chosen = np.concatenate(list(p.dvs.values()))
    assert dvs.valid[chosen].all() and len(np.unique(chosen)) == len(chosen)  # invalid and "extra" left out
    assert any("2 invalid DVS sample(s)" in w for w in p.warnings)
    assert any("['extra'] are neither train nor test" in w for w in p.warnings)
    assert any("gives 1 class(es) no validation sample" in w and "'c'" in w for w in p.warnings)
    # pools: every RGB train image of the class (no instance link: nothing excluded)
    assert np.diff(p.pool_offsets).tolist() == [6, 6, 6] and p.pool_excluded == 0
    assert p.eval_source_images is None and len(p.eval_rgb) == 0 and p.partners is None
    assert [r["pool"] for r in p.per_class(dvs.labels)] == [6, 6, 6]


def test_per_class_counts_and_nesting() -> None:
    dvs = dvs_samples([9, 7, 8], [1, 1, 1])
    vals, trains = [], []
    for n in (1, 2, 4, 6):
        p = plan(dvs, val_per_class=1, dvs_per_class=n, seed=5)
        assert per_class(p, dvs, "val") == [1, 1, 1] and per_class(p, dvs, "train") == [n, n, n]
        assert p.selection == {
            "val_fraction": None, "val_per_class": 1, "dvs_fraction": 1.0, "dvs_per_class": n,
            "exclude_eval_sources": True,
        }  # fmt: skip
        vals.append(set(p.dvs["val"].tolist()))
        trains.append(set(p.dvs["train"].tolist()))
    assert all(v == vals[0] for v in vals)  # val does not depend on the train budget
    assert all(a < b for a, b in zip(trains, trains[1:], strict=False))  # more samples add to the fewer
    # the fraction's order: dvs_per_class N keeps the first N of what a fraction keeps
    frac = {
        f: set(plan(dvs, val_per_class=1, dvs_fraction=f, seed=5).dvs["train"].tolist()) for f in (0.3, 0.7)
    }
    assert frac[0.3] < frac[0.7] and trains[0] <= frac[0.3]
    # another seed, another selection
    assert set(plan(dvs, val_per_class=1, dvs_per_class=2, seed=6).dvs["train"].tolist()) != trains[1]


def test_short_classes_and_bad_settings() -> None:
    dvs = dvs_samples([9, 3, 8], [1, 1, 1])
    with pytest.raises(
        PairingError, match=r"--val-per-class 1 with --dvs-per-class 3 needs 4 .*: 'b' \(3\)$"
    ):
        plan(dvs, val_per_class=1, dvs_per_class=3)
    with pytest.raises(
        PairingError, match=r"--dvs-per-class 3 needs 3 .* after --val-fraction 0.5; .*: 'b' \(3, 2 to val\)$"
    ):
        plan(dvs, val_fraction=0.5, dvs_per_class=3)
    with pytest.raises(PairingError, match=r"--dvs-fraction 0.5 and --dvs-per-class 2: give one of them"):
        plan(dvs, dvs_fraction=0.5, dvs_per_class=2)


def test_dropped_class_and_plan_is_pure() -> None:
    dvs = dvs_samples([4, 4, 4], [1, 1, 1])
    rgb = rgb_catalog(classes=["a", "b", "zebra"])
    labels_before = dvs.labels.copy()
    p = plan(dvs, rgb, seed=2)
    assert p.dvs_classes_dropped == ["c"] and per_class(p, dvs, "train")[2] == 0
    assert set(p.rgb_labels.tolist()) == {0, 1} and all(not i.startswith("zebra") for i in p.rgb_ids)
    np.testing.assert_array_equal(dvs.labels, labels_before)
    q = plan(dvs, rgb, seed=2)
    assert q.pairing_id == p.pairing_id and all(np.array_equal(q.dvs[s], p.dvs[s]) for s in p.dvs)
    assert plan(dvs, rgb, seed=2, encode_mode="gray").pairing_id != p.pairing_id


# ---------------------------------------------------------------- pools and eval sources


def linked(dvs: DvsSamples, test_offset: int) -> InstanceLink:
    """DVS train sample k of class c shows RGB image k of class c, test sample k image k + test_offset."""
    by_sample = []
    for c, sid in zip(dvs.labels.tolist(), dvs.ids, strict=True):
        sp, _, k = sid.split("/")
        by_sample.append(f"{dvs.classes[c]}/{int(k) + (test_offset if sp == 'test' else 0)}")
    return InstanceLink("test rule", by_sample=by_sample)


def test_eval_sources_kept_out_of_pools() -> None:
    dvs = dvs_samples([5, 5, 5], [2, 2, 2])
    rgb = rgb_catalog(train=8, test=2)
    link = linked(dvs, test_offset=5)  # test sources: RGB-train images 5 and 6
    p = plan(dvs, rgb, link, val_per_class=1, seed=3)
    sources = {link.by_sample[i] for sp in ("val", "test") for i in p.dvs[sp].tolist()}
    assert {p.rgb_ids[r] for r in p.eval_rgb.tolist()} == sources
    pooled = {p.rgb_ids[r] for r in p.pool_rgb.tolist()}
    assert not pooled & sources
    assert {link.by_sample[i] for i in p.dvs["train"].tolist()} <= pooled  # train sources stay in
    assert p.pool_excluded == p.eval_source_images == len(sources) == p.excluded_per_class.sum()
    assert [r["excluded"] for r in p.per_class(dvs.labels)] == [3, 3, 3]  # 1 val + 2 test sources
    assert np.diff(p.pool_offsets).tolist() == [5, 5, 5]
    assert p.partners is None  # the link is used for the pools without --instance
    assert any("kept out of the pools" in w for w in p.warnings)
    # kept: every RGB-train image pooled, the same DVS splits, another id
    k = plan(dvs, rgb, link, val_per_class=1, seed=3, exclude_eval_sources=False)
    assert np.diff(k.pool_offsets).tolist() == [8, 8, 8] and k.pool_excluded == 0
    assert k.eval_source_images == len(sources) and any("--keep-eval-sources" in w for w in k.warnings)
    assert all(np.array_equal(k.dvs[s], p.dvs[s]) for s in p.dvs) and k.pairing_id != p.pairing_id
    # with --instance: partners per split, labels equal
    i = plan(dvs, rgb, link, val_per_class=1, seed=3, instance=True)
    for sp in ("train", "val", "test"):
        assert [i.rgb_ids[r] for r in i.partners[sp].tolist()] == [
            link.by_sample[j] for j in i.dvs[sp].tolist()
        ]
    assert i.partner_counts()["test"] == {"paired": 6, "missing": 0}


def test_eval_sources_only_count_rgb_train_images() -> None:
    dvs = dvs_samples([3, 3, 3], [1, 1, 1])
    rgb = rgb_catalog(train=4, test=4)
    p = plan(dvs, rgb, linked(dvs, test_offset=6), val_fraction=0.0)  # test sources: RGB-test images
    assert len(p.eval_rgb) == 3 and p.eval_source_images == 0 and p.pool_excluded == 0
    assert np.diff(p.pool_offsets).tolist() == [4, 4, 4]


def test_wrong_class_partners_and_empty_pools() -> None:
    dvs = dvs_samples([3, 3, 3], [1, 1, 1])
    rgb = rgb_catalog(train=4, test=0)
    by_sample = list(linked(dvs, test_offset=3).by_sample)
    test_a = dvs.ids.index("test/a/0")
    by_sample[test_a] = "b/3"  # a class-a test sample linked to a class-b image
    link = InstanceLink("test rule", by_sample=by_sample)
    with pytest.raises(
        PairingError, match=r"1 DVS sample\(s\) would pair with an RGB image of another class"
    ):
        plan(dvs, rgb, link, instance=True)
    p = plan(dvs, rgb, link, val_fraction=0.0)  # without --instance the wrong link is dropped
    assert {p.rgb_ids[r] for r in p.eval_rgb.tolist()} == {"b/3", "c/3"} and p.pool_excluded == 2
    assert np.diff(p.pool_offsets).tolist() == [4, 3, 3]
    # every RGB-train image of a class is an eval source: that class has no pool
    with pytest.raises(PairingError, match=r"class\(es\) 'a', 'b', 'c' have DVS training samples but no RGB.*"
                       r"3 were kept out as sources"):  # fmt: skip
        plan(dvs, rgb_catalog(train=1, test=0), linked(dvs, test_offset=0), val_fraction=0.0)


def test_check_index_on_a_plan() -> None:
    dvs = dvs_samples([5, 5, 5], [2, 2, 2])
    rgb = rgb_catalog(train=8, test=2)
    p = plan(dvs, rgb, linked(dvs, test_offset=5), val_per_class=1)
    ix = p.index(dvs)
    check_index(ix, "here")
    bad_pool = p.pool_rgb.copy()
    bad_pool[0] = p.pool_rgb[-1]
    with pytest.raises(PairingError, match=r"here: pool of class 'a' holds RGB image \d+ of class 2"):
        check_index(dataclasses.replace(ix, pool_rgb=bad_pool), "here")
    with pytest.raises(
        PairingError, match=r"class 'a' has 1 DVS val sample\(s\), expected val_per_class = 2"
    ):
        check_index(dataclasses.replace(ix, selection={**ix.selection, "val_per_class": 2}), "x")
    assert isinstance(ix, PairIndex)


# ---------------------------------------------------------------- settings


def test_settings_from_recipe_table() -> None:
    s = PairSettings.from_mapping(
        {"rgb_kind": "digits", "val_per_class": 2, "dvs_fraction": 1, "grayscale": True}
    )
    assert s.val_fraction is None and s.dvs_fraction == 1.0 and s.encode_mode == "gray"
    rec = s.to_mapping()
    assert list(rec) == [
        "rgb_kind", "rgb_root", "val_fraction", "val_per_class", "dvs_fraction", "dvs_per_class",
        "exclude_eval_sources", "seed", "instance", "class_map", "options", "grayscale", "drop_unmatched",
        "split_array",
    ]  # fmt: skip
    assert PairSettings.from_mapping(rec) == s  # a record reads back as the same settings
    assert PairSettings.from_mapping({"rgb_kind": "digits"}).val_fraction == 0.1
    assert PairSettings.from_mapping({"rgb_kind": "d", "rgb_root": "x"}, rgb_root="y").rgb_root == "y"
    for table, msg in (
        ({"rgb_kind": "digits", "colour": True}, r"unknown key\(s\) colour"),
        ({"rgb_kind": "digits", "instance": "yes"}, r"instance 'yes': expected true or false"),
        ({"rgb_kind": "digits", "grayscale": 1}, r"grayscale 1: expected true or false"),
        ({"rgb_kind": "digits", "dvs_fraction": "half"}, r"--dvs-fraction 'half': expected 0 < F <= 1"),
        ({"rgb_kind": "digits", "val_fraction": 0.2, "val_per_class": 1}, r"give one of them"),
        ({"rgb_kind": "digits", "options": 3}, r"options 3: expected a table"),
        ({}, r"rgb_kind None"),
    ):
        with pytest.raises(PairingError, match=msg):
            PairSettings.from_mapping(table)
