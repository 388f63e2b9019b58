"""tmkt-train: every method on a tiny paired store, resume equality, eval JSON, DDP, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tmkt_data.convert import ConvertOptions, convert
from tmkt_data.formats import atis_bin
from tmkt_data.pairing import pair_store
from tmkt_train.cli import app
from tmkt_train.config import make_config
from tmkt_train.data import RGBBank
from tmkt_train.trainer import fit

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def digit_events(d: int, seed: int) -> np.ndarray:
    """A 34x34 recording whose event pattern depends on the class: a blob at a digit-specific place."""
    from tmkt_data.events import make_events

    rng = np.random.default_rng(seed)
    n = 600
    cx, cy = 6 + 3 * (d % 5) * 1.5, 8 + 16 * (d // 5)
    x = np.clip(rng.normal(cx, 2.0, n), 0, 33).astype(int)
    y = np.clip(rng.normal(cy, 2.0, n), 0, 33).astype(int)
    t = np.sort(rng.integers(0, 100_000, n))
    t -= t[0]
    return make_events(t, x, y, rng.integers(0, 2, n))


@pytest.fixture(scope="module")
def paired_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    tree = root / "raw"
    for folder, n in (("Train", 6), ("Test", 2)):
        for d in range(10):
            (tree / folder / str(d)).mkdir(parents=True)
            for i in range(n):
                atis_bin.write(
                    tree / folder / str(d) / f"{i + 1:05d}.bin", digit_events(d, 100 * d + i), (34, 34)
                )
    store = root / "s.zarr"
    convert("nmnist", tree, store, ConvertOptions(frames=3, size=(16, 16), shard_samples=16))
    pair_store(store, "digits", None, val_fraction=0.2, seed=0)
    return store


def cfg_for(store: Path, out: Path, **kw):  # noqa: ANN201
    base = dict(store=str(store), out=str(out), model="demo", epochs=2, batch_size=16, num_workers=0, lr=0.02)
    base.update(kw)
    return make_config(**base)


@pytest.mark.parametrize("method", ["scratch", "finetune", "sliding", "tmkt"])
def test_each_method_runs_and_writes_outputs(paired_store: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / method
    summary = fit(cfg_for(paired_store, out, method=method), progress=False)
    assert summary["epochs"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    for r in rows:
        assert 0 <= r["test_acc"] <= 1 and 0 <= r["val_acc"] <= 1 and 0 <= r["data_wait_fraction"] <= 1
        assert r["samples"] == 50  # 6 per class, one (20%, rounded) carved for validation
        assert np.isfinite(r["loss"]["total"])
    expected_terms = {
        "scratch": {"cls_dvs"},
        "finetune": {"cls_dvs"},
        "sliding": {"cls_mix", "cls_dvs", "cka"},
        "tmkt": {"cls_mix", "cls_dvs", "cka", "mag", "mrp"},
    }[method]
    assert set(rows[0]["loss"]) == expected_terms | {"total"}
    if method == "finetune":
        assert [r["train_on"] for r in rows] == ["rgb", "dvs"]
    for name in ("checkpoint.pt", "best.pt", "curves.png", "config.toml"):
        assert (out / name).exists()


def test_ablation_flags_remove_terms(paired_store: Path, tmp_path: Path) -> None:
    fit(cfg_for(paired_store, tmp_path / "r", method="tmkt", epochs=1, mag=False, cka=False), progress=False)
    row = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])
    assert set(row["loss"]) == {"cls_mix", "cls_dvs", "mrp", "total"}


def test_tmkt_learns_the_tiny_task(paired_store: Path, tmp_path: Path) -> None:
    summary = fit(
        cfg_for(paired_store, tmp_path / "r", method="scratch", epochs=8, warmup_epochs=1), progress=False
    )
    assert summary["test_acc_last"] > 0.3  # chance is 0.1; the blobs are easy to tell apart


def test_resume_after_a_crash_matches_an_uninterrupted_run(
    paired_store: Path, tmp_path: Path, monkeypatch
) -> None:
    ref = fit(cfg_for(paired_store, tmp_path / "ref", method="tmkt", epochs=3), progress=False)
    import tmkt_train.trainer as tr

    real = tr.method_losses
    calls = {"n": 0}

    def crashing(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 8:  # epoch 2 (0-based 1) of 3 steps per epoch, mid-way
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tr, "method_losses", crashing)
    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        fit(cfg_for(paired_store, out, method="tmkt", epochs=3), progress=False)
    monkeypatch.setattr(tr, "method_losses", real)
    resumed = fit(cfg_for(paired_store, out, method="tmkt", epochs=3), resume=True, progress=False)
    rows_ref = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    rows_res = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows_res] == [0, 1, 2]
    for a, b in zip(rows_ref, rows_res, strict=True):
        assert a["loss"] == b["loss"] and a["test_acc"] == b["test_acc"] and a["val_acc"] == b["val_acc"]
    assert ref["test_acc_last"] == resumed["test_acc_last"]
    sa = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=False)["model"]
    sb = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_eval_prints_json(paired_store: Path, tmp_path: Path) -> None:
    fit(cfg_for(paired_store, tmp_path / "r", method="scratch", epochs=1), progress=False)
    res = runner.invoke(app, ["eval", str(tmp_path / "r" / "best.pt"), str(paired_store), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["samples"] == 20 and info["split"] == "test"
    assert set(info["per_class"]) == {str(d) for d in range(10)}
    assert 0 <= info["top1"] <= info["top5"] <= 1


def test_cli_fit_with_recipe_and_flags(paired_store: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[train]\nmethod = "tmkt"\nmodel = "demo"\nepochs = 5\nbatch_size = 16\nnum_workers = 0\n'
    )
    out = tmp_path / "run"
    args = [
        "fit",
        str(paired_store),
        "--out",
        str(out),
        "--config",
        str(recipe),
        "--epochs",
        "1",
        "--r-m",
        "0.3",
    ]
    res = runner.invoke(app, [*args, "--quiet", "--no-mrp"])
    assert res.exit_code == 0, res.output
    text = (out / "config.toml").read_text()
    assert (
        "epochs = 1" in text and "r_m = 0.3" in text and "mrp = false" in text and 'method = "tmkt"' in text
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "epochs_total=3"], "unknown option 'epochs_total'"),
        (["--time-steps", "10"], "holds T = 3"),
        (["--method", "distill"], "method 'distill'"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    paired_store: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    res = runner.invoke(app, ["fit", str(paired_store), "--out", str(tmp_path / "r"), "--quiet", *extra])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_store_without_pairs_and_foreign_checkpoint(paired_store: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare.zarr"
    import shutil

    shutil.copytree(paired_store, bare)
    shutil.rmtree(bare / "pairs")
    res = runner.invoke(app, ["fit", str(bare), "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 2 and "no pairs/ group" in res.stderr
    fit(cfg_for(paired_store, tmp_path / "run", method="scratch", epochs=1), progress=False)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    ckpt["meta"]["num_classes"] = 7
    torch.save(ckpt, tmp_path / "other.pt")
    res = runner.invoke(app, ["eval", str(tmp_path / "other.pt"), str(paired_store)])
    assert res.exit_code == 2 and "num_classes = 7" in res.stderr
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    res = runner.invoke(app, ["fit", str(paired_store), "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 2 and "--resume" in res.stderr
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


def test_nan_loss_names_the_term(paired_store: Path, tmp_path: Path, monkeypatch) -> None:
    import tmkt_train.steps as steps

    monkeypatch.setattr(steps, "mag_loss", lambda logits, mask: logits.sum() * float("nan"))
    res = runner.invoke(
        app, ["fit", str(paired_store), "--out", str(tmp_path / "r"), "--quiet", "--model", "demo",
              "--workers", "0", "--epochs", "2", "--batch-size", "16", "--method", "tmkt"]
    )  # fmt: skip
    assert res.exit_code == 2
    assert "loss term 'mag' is nan" in res.stderr and "training stopped" in res.stderr
    res = runner.invoke(app, ["fit", str(paired_store), "--out", str(tmp_path / "s"), "--lr", "nan"])
    assert res.exit_code == 2 and "lr = nan" in res.stderr


def test_partners_always_share_the_class(paired_store: Path) -> None:
    from tmkt_data.pairing import read_pairs

    bank = RGBBank.from_pairs(read_pairs(paired_store), torch.device("cpu"))
    y = torch.arange(10).repeat(50)
    g = torch.Generator().manual_seed(0)
    rows = bank.draw(y, g)
    assert torch.equal(bank.labels[rows], y)
    assert len(set(rows.tolist())) > 100  # drawn from the whole pool, anew each time


@pytest.mark.slow
def test_ddp_two_gloo_processes(paired_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "tmkt_train.cli", "fit", str(paired_store), "--out", str(out), "--method", "tmkt", "--model", "demo",
           "--epochs", "1", "--batch-size", "16", "--workers", "0", "--device", "cpu", "--quiet"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    assert rows[0]["samples"] == 50  # both ranks summed: 25 each
    assert rows[0]["test_acc"] is not None
