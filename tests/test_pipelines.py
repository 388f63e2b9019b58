"""End-to-end recipes: each shipped ``pipelines/*.toml`` on a tiny tree in its dataset's real layout.

Every real-dataset recipe runs convert -> pair -> one short ``tmkt`` training epoch on the CPU
against a small event tree written in the dataset's exact layout and byte format, and an RGB
tree of the matching source in its real format; a second call must skip every step.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from test_layouts import OMNI_T0, caltech_tree, cifar_tree, omniglot_recording, rand_events
from test_rgb import _pickle, write_images

from tmkt_data.formats import mat_file
from tmkt_data.layouts import cepdvs as cepdvs_layout
from tmkt_data.layouts import cifar10dvs as cifar_layout
from tmkt_train.config import ConfigError
from tmkt_train.pipeline import PipelineError, load_pipeline, run_configs, run_pipeline

RECIPES = Path(__file__).resolve().parents[1] / "pipelines"
SMOKE = {"epochs": 1, "batch_size": 4, "max_steps_per_epoch": 1, "num_workers": 0, "warmup_epochs": 0}
CIFAR100_COARSE = list(cepdvs_layout.CLASSES)  # the 20 superclasses in coarse-label order


# ---------------------------------------------------------------- RGB trees in the sources' formats


def write_cifar10_balanced(root: Path, per_batch: int = 10) -> Path:
    """``cifar-10-batches-py`` whose every batch holds every class (labels ``i % 10``)."""
    base = root / "cifar-10-batches-py"
    names = [c.encode() for c in cifar_layout.CLASSES]
    _pickle(
        base / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    )
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(per_batch)]
        _pickle(
            base / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": []}
        )
    return root


def write_cifar100_coarse(root: Path, n_train: int = 40, n_test: int = 20) -> Path:
    """``cifar-100-python`` with the 20 real superclass names; every superclass in train and test."""
    base = root / "cifar-100-python"
    fine = [f"fine{i}".encode() for i in range(100)]
    _pickle(
        base / "meta",
        {b"fine_label_names": fine, b"coarse_label_names": [c.encode() for c in CIFAR100_COARSE]},
    )
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", n_test)):
        coarse = [i % 20 for i in range(n)]
        fine_labels = [c * 5 + (i // 20) % 5 for i, c in enumerate(coarse)]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        _pickle(base / name, {b"data": data, b"fine_labels": fine_labels, b"coarse_labels": coarse})
    return root


# ---------------------------------------------------------------- helpers


def tmp_recipe(tmp_path: Path, name: str, edit: Any = None) -> Path:
    """A copy of a shipped recipe (optionally edited) so the test never writes beside it."""
    text = (RECIPES / f"{name}.toml").read_text()
    if edit is not None:
        text = edit(text)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def run_twice(recipe: Path, raw: Path | None, rgb: Path | None, out: Path, overrides: dict[str, Any]):
    """Run the recipe, then run it again with the same arguments; returns both results and logs."""
    results = []
    for _ in range(2):
        lines: list[str] = []
        rows = run_pipeline(
            recipe, raw_root=str(raw) if raw else None, rgb_root=str(rgb) if rgb else None, out=str(out),
            overrides=dict(overrides), only=["tmkt"], progress=False, log=lines.append, seeds=[42],
        )  # fmt: skip
        results.append((rows, lines))
    return results


def acc_ok(value: Any) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def check_outputs(recipe: Path, out: Path, results: list, *, n_classes: int, pairs: dict[str, int]) -> None:
    """The first call converted, paired and trained; the second skipped every step.

    ``pairs``: the expected DVS train/val/test counts of the pairing; a split left empty
    by the dataset's split rules has no accuracy (None), the others a number in [0, 1].
    """
    (rows, lines), (rows2, lines2) = results
    rec = load_pipeline(recipe)
    size, T = rec.convert["size"], rec.convert["frames"]

    # one row: the selected run, the overridden seed, one finished epoch
    assert len(rows) == 1
    row = rows[0]
    assert (row["run"], row["method"], row["seed"]) == ("tmkt", "tmkt", 42)
    assert (row["epochs"], row["best_epoch"]) == (1, 0)
    for key, split in (("val_acc_at_best", "val"), ("test_acc_at_best", "test"), ("test_acc_last", "test")):
        assert acc_ok(row[key]) if pairs[split] else row[key] is None, (key, row)

    # the store: the recipe's frame shape, complete, paired
    g = zarr.open_group(str(out / "store.zarr"), mode="r")
    assert g.attrs["status"] == "complete"
    assert tuple(g.attrs["frame_shape"]) == (T, 2, size, size)
    assert g["frames"].shape == (sum(pairs.values()), T, 2, size, size)
    assert len(g.attrs["classes"]) == n_classes
    assert "pairs" in g and "rgb" in g
    attrs = dict(g["pairs"].attrs)
    assert attrs["split_totals"] == pairs
    assert attrs["pipeline_settings"]["rgb_kind"] == rec.pair["rgb_kind"]

    # the run folder: metrics, curves, config, checkpoint
    run_dir = out / "runs" / "tmkt_seed42"
    assert Path(row["out"]) == run_dir
    assert (run_dir / "curves.png").stat().st_size > 0
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "config.toml").is_file()
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["tmkt_seed42"]  # seeds and only
    assert (out / "results.json").is_file()
    assert any(re.match(r"convert: \d+ samples \(0 failed\)", m) for m in lines), lines
    assert any(m.startswith("pair: ") and str(pairs) in m for m in lines), lines
    assert any(m.startswith("train: tmkt seed 42 ->") for m in lines), lines

    # the second call skips every step and reports the same result
    assert len(lines2) == 3, lines2
    assert lines2[0].startswith("convert:") and lines2[0].endswith("is up to date, skipped")
    assert lines2[1].startswith("pair:") and lines2[1].endswith("is up to date, skipped")
    assert lines2[2].startswith("train:") and lines2[2].endswith("is complete, skipped")
    assert (run_dir / "metrics.jsonl").read_text().splitlines() == metrics

    def strip(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "step_s"} for r in rs]

    assert strip(rows2) == strip(rows)


# ---------------------------------------------------------------- the four real-dataset recipes


@pytest.mark.slow
def test_ncaltech101_recipe(tmp_path: Path) -> None:
    # 10 recordings per class: the per-class sorted 90% split gives 9 train + 1 test (fewer
    # than 10 give no test sample), and validation takes round(0.1 * 9) = 1 of the 9
    classes = ["accordion", "BACKGROUND_Google", "Faces_easy"]
    caltech_tree(tmp_path / "raw", dict.fromkeys(classes, 10))
    data = tmp_path / "rgb" / "101_ObjectCategories"
    # stock Caltech101 also has Faces, which N-Caltech101 lacks: the shipped class map ignores it
    for i, cls in enumerate([*classes, "Faces"]):
        write_images(data / cls, [f"image_{k:04d}.jpg" for k in range(1, 11)], size=(30, 24), seed=i)
    recipe = tmp_recipe(tmp_path, "ncaltech101")
    out = tmp_path / "out"
    results = run_twice(recipe, tmp_path / "raw", tmp_path / "rgb", out, SMOKE)
    check_outputs(recipe, out, results, n_classes=3, pairs={"train": 24, "val": 3, "test": 3})
    g = zarr.open_group(str(out / "store.zarr"), mode="r")
    assert g.attrs["classes"] == ["BACKGROUND_Google", "Faces_easy", "accordion"]
    assert {m["dvs"]: m["rgb"] for m in g["pairs"].attrs["class_mapping"]} == {c: [c] for c in classes}
    assert g["pairs"].attrs["rgb_classes_unused"] == ["Faces"]


@pytest.mark.slow
def test_cifar10dvs_recipe(tmp_path: Path) -> None:
    # all 10 class folders are required; 3 recordings each are all train under the per-class
    # 90% split (ceil(2.7) = 3) and too few for a validation sample (round(0.3) = 0), so the run
    # trains and reports no val/test accuracy (the N-Caltech101 test covers evaluation)
    cifar_tree(tmp_path / "raw", range(3))
    write_cifar10_balanced(tmp_path / "rgb")
    recipe = tmp_recipe(tmp_path, "cifar10dvs")
    out = tmp_path / "out"
    results = run_twice(recipe, tmp_path / "raw", tmp_path / "rgb", out, SMOKE)
    check_outputs(recipe, out, results, n_classes=10, pairs={"train": 30, "val": 0, "test": 0})
    g = zarr.open_group(str(out / "store.zarr"), mode="r")
    assert g.attrs["classes"] == list(cifar_layout.CLASSES)
    assert all(m["how"] == "name" for m in g["pairs"].attrs["class_mapping"])


def write_cepdvs_tree(root: Path, per_class: int) -> None:
    """``pathFile.csv`` + ``data/MAT/img/<i>.mat``, ``per_class`` files for each of the 20 superclasses."""
    img = root / "data" / "MAT" / "img"
    img.mkdir(parents=True)
    lines = ["index image fine_label coarse_label superclass"]
    idx = 0
    for c, cls in enumerate(cepdvs_layout.CLASSES):
        for _ in range(per_class):
            mat_file.write(img / f"{idx}.mat", rand_events(12, 128, 128, seed=idx), (128, 128))
            lines.append(f"{idx} train/{cls}/img{idx}.png {idx % 100} {c} {cls}")
            idx += 1
    (root / "pathFile.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_cepdvs_recipe(tmp_path: Path) -> None:
    # all 20 superclasses are required; with the 250/350 split, 3 files per class are all train
    # (ceil(5/7 * 3) = 3) and too few for a validation sample: no val/test accuracy
    write_cepdvs_tree(tmp_path / "raw", 3)
    write_cifar100_coarse(tmp_path / "rgb")
    recipe = tmp_recipe(tmp_path, "cepdvs")
    out = tmp_path / "out"
    results = run_twice(recipe, tmp_path / "raw", tmp_path / "rgb", out, SMOKE)
    check_outputs(recipe, out, results, n_classes=20, pairs={"train": 60, "val": 0, "test": 0})
    g = zarr.open_group(str(out / "store.zarr"), mode="r")
    attrs = dict(g["pairs"].attrs)
    assert [m["rgb"] for m in attrs["class_mapping"]] == [[c] for c in CIFAR100_COARSE]
    assert attrs["class_map"]["source"] == "shipped:cifar100coarse_cepdvs.toml"
    assert attrs["pool_sizes"] == dict.fromkeys(CIFAR100_COARSE, 2)  # coarse labels: 40 train images / 20


def test_nomniglot_recipe(tmp_path: Path) -> None:
    # two background characters and one evaluation character, one recording of four drawings
    # each and four Omniglot images each. The recipe uses the drawers split on both sides, so
    # every character trains on its first three drawings and tests on the fourth (the official
    # background/evaluation split would test only a class never trained on). Three training
    # drawings per class leave no validation sample (round(0.3) = 0).
    chars = {
        ("background", "Greek", "character01"): 1,
        ("background", "Greek", "character02"): 2,
        ("evaluation", "Angelic", "character01"): 3,
    }
    for (split, alphabet, char), seed in chars.items():
        folder = tmp_path / "raw" / f"dvs_{split}" / alphabet / char
        omniglot_recording(folder, f"{seed:04d}", seed)
        rows = ["index,start,end"] + [
            f"{k},{OMNI_T0 + 10_000 + 245_000 * k},{OMNI_T0 + 10_000 + 245_000 * (k + 1)}" for k in range(4)
        ]
        (folder / f"{seed:04d}.csv").write_text("\n".join(rows) + "\n")
        write_images(
            tmp_path / "rgb" / f"images_{split}" / alphabet / char,
            [f"{seed:04d}_{k:02d}.png" for k in range(1, 5)], (105, 105), "1", seed=seed,
        )  # fmt: skip
    recipe = tmp_recipe(tmp_path, "nomniglot")
    out = tmp_path / "out"
    results = run_twice(recipe, tmp_path / "raw", tmp_path / "rgb", out, SMOKE)
    check_outputs(recipe, out, results, n_classes=3, pairs={"train": 9, "val": 0, "test": 3})
    g = zarr.open_group(str(out / "store.zarr"), mode="r")
    assert g.attrs["classes"] == ["Angelic/character01", "Greek/character01", "Greek/character02"]
    assert [str(v) for v in g["split_drawers"][:]] == (["train"] * 3 + ["test"]) * 3
    attrs = dict(g["pairs"].attrs)
    assert attrs["dvs_split_array"] == "split_drawers"
    assert attrs["counts"]["test"] == dict.fromkeys(g.attrs["classes"], 1)
    assert attrs["pool_sizes"] == dict.fromkeys(g.attrs["classes"], 3)


# ---------------------------------------------------------------- the embedded demo


def test_demo_recipe_small_cut(tmp_path: Path) -> None:
    """The demo recipe on 12 recordings per class: 100 classes, 5 val + 5 train events per class
    (the recipe's counts), the val sources out of the RGB pools, one tmkt run."""
    recipe = tmp_recipe(
        tmp_path,
        "demo",
        lambda t: t.replace("per_class = { train = 30, test = 10 }", "per_class = { train = 11, test = 1 }"),
    )
    rec = load_pipeline(recipe)
    assert rec.synth["per_class"] == {"train": 11, "test": 1} and (rec.jobs, rec.threads) == (2, 1)
    out = tmp_path / "out"
    overrides = {"epochs": 1, "max_steps_per_epoch": 1, "num_workers": 0}
    (rows, lines), (_, lines2) = run_twice(recipe, None, None, out, overrides)
    assert any(m.startswith("synth: 1200 digitpairs images") for m in lines), lines
    assert any(m.startswith("synth:") and m.endswith("is up to date, skipped") for m in lines2), lines2
    g = zarr.open_group(str(out / "store.zarr"), mode="r")
    assert g.attrs["n_samples"] == 1200
    assert tuple(g.attrs["frame_shape"]) == (4, 2, 16, 32)
    assert len(g.attrs["classes"]) == 100
    attrs = dict(g["pairs"].attrs)
    assert attrs["split_totals"] == {"train": 500, "val": 500, "test": 100}
    assert attrs["pool_excluded"] == 500  # each validation sample's source image left its class's pool
    row = rows[0]
    assert (row["run"], row["seed"], row["epochs"]) == ("tmkt", 42, 1)
    assert (
        acc_ok(row["test_acc_at_best"]) and acc_ok(row["val_acc_at_best"]) and acc_ok(row["train_acc_last"])
    )


# ---------------------------------------------------------------- bad input


def test_unknown_recipe_key_is_named(tmp_path: Path) -> None:
    recipe = tmp_recipe(tmp_path, "ncaltech101", lambda t: t.replace("[pair]\n", "[pair]\ncolour = true\n"))
    with pytest.raises(PipelineError, match=r"\[pair\]: unknown key\(s\) colour"):
        run_pipeline(recipe, raw_root=str(tmp_path), out=str(tmp_path / "out"), log=None)
    recipe = tmp_recipe(
        tmp_path, "cifar10dvs", lambda t: t.replace("[train]\n", "[train]\nlearning_rate = 1.0\n")
    )
    with pytest.raises(ConfigError, match="learning_rate"):
        run_pipeline(recipe, raw_root=str(tmp_path), out=str(tmp_path / "out"), log=None)
    assert not (tmp_path / "out").exists()  # nothing written before the recipe is checked


@pytest.mark.parametrize("name", ["ncaltech101", "cifar10dvs", "cepdvs", "nomniglot"])
def test_real_recipe_needs_raw_root(tmp_path: Path, name: str) -> None:
    recipe = tmp_recipe(tmp_path, name)
    with pytest.raises(PipelineError, match=r"pass --raw-root"):
        run_pipeline(recipe, out=str(tmp_path / "out"), log=None)
    assert not (tmp_path / "out" / "store.zarr").exists()


def test_shipped_recipes_load() -> None:
    for path in sorted(RECIPES.glob("*.toml")):
        rec = load_pipeline(path)
        assert rec.runs and all(r.get("seeds") for r in rec.runs)


def test_seeds_override_replaces_every_runs_seeds(tmp_path: Path) -> None:
    rec = load_pipeline(RECIPES / "cifar10dvs.toml", out=tmp_path)
    default = run_configs(rec, tmp_path / "s.zarr", "pid", {})
    assert len(default) == 12 and {c.seed for _, _, c in default} == {42, 1024, 90210}
    one = run_configs(rec, tmp_path / "s.zarr", "pid", {"epochs": 1}, seeds=[7])
    assert [(n, c.seed, c.epochs) for n, _, c in one] == [
        ("scratch", 7, 1), ("finetune", 7, 1), ("sliding", 7, 1), ("tmkt", 7, 1)
    ]  # fmt: skip
    assert Path(one[-1][2].out) == tmp_path / "runs" / "tmkt_seed7"
