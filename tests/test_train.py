"""tmkt-train: every method on a tiny paired store, resume equality, eval JSON, DDP, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cfg_for
from typer.testing import CliRunner

from tmkt_train.cli import app
from tmkt_train.data import RGBBank
from tmkt_train.trainer import fit

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("method", ["scratch", "finetune", "sliding", "tmkt"])
def test_each_method_runs_and_writes_outputs(paired_store: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / method
    summary = fit(cfg_for(paired_store, out, method=method), progress=False)
    assert summary["epochs"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    for r in rows:
        assert 0 <= r["test_acc"] <= 1 and 0 <= r["val_acc"] <= 1 and 0 <= r["data_wait_fraction"] <= 1
        # 6 per class, one (20%, rounded) carved for validation: 50, of which drop_last (the
        # default, as the reference) trains on the 3 full batches of 16
        assert r["samples"] == 48
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

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:  # 3 steps per epoch (50 samples, drop_last): mid-way through the last epoch
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
    assert rows[0]["samples"] == 48  # both ranks summed: 25 each, 3 full batches of 8 (drop_last)
    assert rows[0]["test_acc"] is not None


# ------------------------------------------------------------ reference training details and TensorBoard


def _spy_steps(monkeypatch) -> tuple[list[int], list[int]]:
    """Record each training step's batch size and each progress bar's total."""
    import tmkt_train.trainer as tr

    sizes: list[int] = []
    totals: list[int] = []
    real = tr.method_losses

    def losses(net, batch, *a, **k):
        sizes.append(int(batch.y.shape[0]))
        return real(net, batch, *a, **k)

    def bar(enabled, epoch, epochs, steps):
        totals.append(steps)
        return None

    monkeypatch.setattr(tr, "method_losses", losses)
    monkeypatch.setattr(tr, "_progress_bar", bar)
    return sizes, totals


@pytest.mark.parametrize(("drop_last", "batches"), [(True, [16, 16, 16]), (False, [16, 16, 16, 2])])
def test_drop_last_steps_schedule_and_progress_bar_agree(
    paired_store: Path, tmp_path: Path, monkeypatch, drop_last: bool, batches: list[int]
) -> None:
    import tmkt_train.trainer as tr

    sizes, totals = _spy_steps(monkeypatch)
    evaluated: list[int] = []
    real_eval = tr.evaluate

    def counting_eval(model, loader, *a, **k):
        evaluated.append(sum(len(b["labels"]) for b in loader))
        return real_eval(model, loader, *a, **k)

    monkeypatch.setattr(tr, "evaluate", counting_eval)
    out = tmp_path / "r"
    cfg = cfg_for(paired_store, out, method="scratch", warmup_epochs=1, drop_last=drop_last)
    fit(cfg, progress=True)
    assert sizes == batches * 2  # 50 training samples, batch 16
    assert totals == [len(batches)] * 2  # the bar's length is the steps actually run
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in rows] == [sum(batches)] * 2
    assert evaluated == [10, 20] * 2  # validation and test always keep every sample
    sched = torch.load(out / "checkpoint.pt", weights_only=False)["scheduler"]
    assert sched["last_epoch"] == 2 * len(batches)
    # the cosine reaches 0 exactly at the last step only if its total is the number of steps run
    assert sched["_last_lr"][0] == pytest.approx(0.0, abs=1e-12)


def test_drop_last_keeps_a_split_smaller_than_one_batch(
    paired_store: Path, tmp_path: Path, monkeypatch
) -> None:
    sizes, totals = _spy_steps(monkeypatch)
    out = tmp_path / "r"
    fit(cfg_for(paired_store, out, method="scratch", batch_size=64, warmup_epochs=1), progress=True)
    assert sizes == [50, 50] and totals == [1, 1]  # the lone partial batch is trained on, not dropped
    sched = torch.load(out / "checkpoint.pt", weights_only=False)["scheduler"]
    assert sched["last_epoch"] == 2 and sched["_last_lr"][0] == pytest.approx(0.0, abs=1e-12)


def test_default_optimizer_groups_and_resume_with_other_decay_1d(paired_store: Path, tmp_path: Path) -> None:
    from tmkt_train.trainer import TrainError

    out = tmp_path / "r"
    fit(cfg_for(paired_store, out, method="tmkt", epochs=1, max_steps_per_epoch=1), progress=False)
    groups = torch.load(out / "checkpoint.pt", weights_only=False)["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    with pytest.raises(TrainError, match="decay_1d"):
        fit(
            cfg_for(paired_store, out, method="tmkt", epochs=2, max_steps_per_epoch=1, decay_1d=True),
            resume=True,
            progress=False,
        )


@pytest.mark.parametrize("source", ["membrane", "spikes"])
def test_cka_features_reach_the_loss(paired_store: Path, tmp_path: Path, monkeypatch, source: str) -> None:
    import tmkt_train.steps as steps

    seen = []
    real = steps.cka_loss

    def spy(a, b, w=None):
        seen.append((a.detach().clone(), b.detach().clone()))
        return real(a, b, w)

    monkeypatch.setattr(steps, "cka_loss", spy)
    kw = {} if source == "membrane" else {"cka_features": "spikes"}  # membrane is the default
    fit(
        cfg_for(paired_store, tmp_path / "r", method="tmkt", epochs=1, max_steps_per_epoch=2, **kw),
        progress=False,
    )
    assert len(seen) == 2
    for a, b in seen:
        assert a.shape == b.shape == (3, 16, 32, 8, 8)  # T, B, demo's second conv at 16 x 16 input
        binary = bool(((a == 0) | (a == 1)).all() and ((b == 0) | (b == 1)).all())
        assert binary == (source == "spikes")
        if source == "membrane":  # potentials after the hard reset stay below the threshold 0.5
            assert a.max() < 0.5 and b.max() < 0.5 and (a != 0).any()


def _first_bn_reference(store: Path, weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased variance per channel of the first conv's output on the DVS training frames."""
    from tmkt_data.pairing import read_pairs
    from tmkt_train.data import StoreBatches

    train = read_pairs(store).dvs["train"]
    frames = torch.cat(
        [b["frames"] for b in StoreBatches(store, train, 1000, shuffle=False)]
    ).double()  # (N, T, 2, H, W)
    y = torch.nn.functional.conv2d(frames.flatten(0, 1), weight.double(), padding=1).numpy()
    y = y.transpose(1, 0, 2, 3).reshape(y.shape[1], -1)
    assert y.shape[1] == len(train) * 3 * 16 * 16
    return y.mean(1), y.var(1, ddof=1)


def test_bn_recalibration_sets_event_data_statistics(paired_store: Path, tmp_path: Path) -> None:
    for name, recal in (("plain", False), ("recal", True)):
        fit(
            cfg_for(paired_store, tmp_path / name, method="tmkt", epochs=1, bn_recalibrate=recal),
            progress=False,
        )
    got = {}
    for name in ("plain", "recal"):
        state = torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)["model"]
        got[name] = state
    prefix = "trunk.block1.op.module."
    for name in ("plain", "recal"):
        mean, var = _first_bn_reference(paired_store, got[name][prefix + "0.weight"])
        rm, rv = got[name][prefix + "1.running_mean"].double(), got[name][prefix + "1.running_var"].double()
        matches = np.allclose(rm, mean, rtol=1e-5, atol=1e-6) and np.allclose(rv, var, rtol=1e-5, atol=1e-6)
        # only the recalibrated run holds the statistics of the event data alone
        assert matches == (name == "recal")
    res = runner.invoke(
        app, ["eval", str(tmp_path / "recal" / "best.pt"), str(paired_store), "--device", "cpu"]
    )
    row = json.loads((tmp_path / "recal" / "metrics.jsonl").read_text().splitlines()[0])
    assert json.loads(res.stdout)["top1"] == row["test_acc"]  # the checkpoint keeps the recalibrated stats


EXPECTED_TB_TAGS = {
    "loss/cls_mix", "loss/cls_dvs", "loss/cka", "loss/mag", "loss/mrp", "loss/total",
    "accuracy/train", "accuracy/val", "accuracy/test", "accuracy/val_top5", "accuracy/test_top5",
    "train/lr", "train/event_ratio", "train/data_wait_fraction", "train/samples_per_s", "train/epoch_s",
    "c_t/0", "c_t/1", "c_t/2",
}  # fmt: skip


def test_tensorboard_event_files_hold_the_metrics(paired_store: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "r"
    res = runner.invoke(
        app, ["fit", str(paired_store), "--out", str(out), "--quiet", "--model", "demo", "--workers", "0",
              "--epochs", "2", "--batch-size", "16", "--method", "tmkt", "--tensorboard"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "tensorboard = true" in (out / "config.toml").read_text()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == EXPECTED_TB_TAGS
    for tag in EXPECTED_TB_TAGS:
        group, key = tag.split("/")
        if group == "loss":
            want = [r["loss"][key] for r in rows]
        elif group == "c_t":
            want = [r["c_t"][int(key)] for r in rows]
        elif group == "accuracy":
            want = [r[key + "_acc" if key in ("train", "val", "test") else key] for r in rows]
        else:
            want = [r[key] for r in rows]
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [0, 1]
        assert [e.value for e in events] == pytest.approx(want, rel=1e-6), tag
    assert rows[0]["c_t"] != rows[1]["c_t"]  # the step weights are trained (and logged per epoch)
    # a resumed run appends: every epoch appears once
    res = runner.invoke(
        app, ["fit", str(paired_store), "--out", str(out), "--quiet", "--model", "demo", "--workers", "0",
              "--epochs", "3", "--batch-size", "16", "--method", "tmkt", "--tensorboard", "--resume"]
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[2])
    events = acc.Scalars("loss/total")
    assert [e.step for e in events] == [0, 1, 2]
    assert events[2].value == pytest.approx(last["loss"]["total"], rel=1e-6)


@pytest.mark.parametrize("how", [["--tensorboard"], ["--set", "tensorboard=true"]])
def test_tensorboard_without_the_package_is_one_line(
    paired_store: Path, tmp_path: Path, monkeypatch, how: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises ImportError
    out = tmp_path / "r"
    res = runner.invoke(app, ["fit", str(paired_store), "--out", str(out), "--quiet", "--workers", "0", *how])
    assert res.exit_code == 2, res.output
    assert "tensorboard package is not installed" in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("world_size", [1, 2])
def test_store_batches_drop_last_keeps_full_batches_on_every_rank(
    paired_store: Path, world_size: int
) -> None:
    from torch.utils.data import DataLoader

    from tmkt_data.pairing import read_pairs
    from tmkt_train.data import StoreBatches

    train = read_pairs(paired_store).dvs["train"]
    assert len(train) == 50
    per_rank = 50 // world_size
    for rank in range(world_size):
        kw = dict(shuffle=True, seed=1, rank=rank, world_size=world_size, window_shards=1)
        keep = StoreBatches(paired_store, train, 7, **kw)
        drop = StoreBatches(paired_store, train, 7, drop_last=True, **kw)
        assert keep.window == 21  # one shard of 16 rounded up to 3 batches: several windows
        for epoch in (0, 1):
            keep.set_epoch(epoch)
            drop.set_epoch(epoch)
            full = [b["index"].numpy() for b in DataLoader(keep, batch_size=None, num_workers=0)]
            got = [b["index"].numpy() for b in DataLoader(drop, batch_size=None, num_workers=2)]
            assert len(got) == len(drop) == per_rank // 7  # 7 (one rank) or 3 (each of two ranks)
            assert all(len(b) == 7 for b in got)
            assert sum(len(b) for b in full) == per_rank and len(full) == len(keep)
            assert len(full[-1]) == per_rank % 7  # 1 or 4: the partial batch comes last
            # the same samples with the partial batch left out
            assert sorted(np.concatenate(got).tolist()) == sorted(np.concatenate(full[:-1]).tolist())


@pytest.mark.parametrize("world_size", [1, 2])
def test_store_batches_passes_visit_every_sample_once_per_pass(paired_store: Path, world_size: int) -> None:
    """passes=3: an epoch is three passes, pass r of epoch e in the order of epoch 3e + r."""
    from tmkt_data.pairing import read_pairs
    from tmkt_train.batches import epoch_order, rank_slice
    from tmkt_train.data import StoreBatches

    train = read_pairs(paired_store).dvs["train"]
    kw = dict(shuffle=True, seed=4, world_size=world_size, window_shards=1)
    for epoch in (0, 2):
        seen = []
        for rank in range(world_size):
            ds = StoreBatches(paired_store, train, 8, passes=3, drop_last=True, rank=rank, **kw)
            got = np.concatenate(ds.batches(epoch))
            assert len(ds.batches(epoch)) == len(ds) == (3 * len(train) // world_size) // 8
            order = np.concatenate(
                [epoch_order(train, ds.shard_samples, 4, 3 * epoch + r, True) for r in range(3)]
            )
            mine = rank_slice(order, rank, world_size)
            # the rank's share of the three pass orders, less one partial batch (windows permute)
            left = Counter(mine.tolist())
            left.subtract(Counter(got.tolist()))
            assert min(left.values()) >= 0 and 0 <= len(mine) - len(got) < 8
            seen.append(got)
        counts = np.bincount(np.concatenate(seen), minlength=int(train.max()) + 1)[train]
        assert counts.max() <= 3 and counts.sum() >= 3 * len(train) - world_size * 8
        if world_size == 1:
            ds1 = StoreBatches(paired_store, train, 8, passes=1, drop_last=True, **kw)
            assert not np.array_equal(np.concatenate(ds1.batches(epoch)), got[: 8 * len(ds1)]) or epoch == 0
    with pytest.raises(ValueError, match="passes 0"):
        StoreBatches(paired_store, train, 8, shuffle=True, passes=0)


def test_train_repeat_multiplies_the_steps(paired_store: Path, tmp_path: Path) -> None:
    from tmkt_train.trainer import read_metrics

    cfg = cfg_for(paired_store, tmp_path / "r", method="scratch", epochs=1, train_repeat=3, batch_size=8)
    fit(cfg, progress=False)
    rows = read_metrics(tmp_path / "r" / "metrics.jsonl")
    assert rows[0]["samples"] == (3 * 50 // 8) * 8
