"""User mistakes of convert, show, verify, fit and recipes: one line, exit code 2, nothing half-written.

Issue 12 item 4 (each case was a traceback with exit code 1), and issue 11 item 5: the options
of ``tmkt-data convert`` / ``synth`` and of a recipe's ``[convert]`` / ``[synth]`` tables are
checked by one function each (:meth:`ConvertOptions.from_mapping`, :meth:`SynthJob.from_mapping`),
so a recipe fails when it is loaded, before any step runs.
"""

from __future__ import annotations

import errno
import shutil
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line
from typer.testing import CliRunner

from tmkt_data.cli import app
from tmkt_data.convert import ConvertError, ConvertOptions, convert
from tmkt_data.events import make_events
from tmkt_data.formats import atis_bin
from tmkt_data.store import open_store
from tmkt_train.cli import app as train_app

runner = CliRunner()


def _tree(root: Path, *, splits: bool = True, per_class: int = 3) -> Path:
    """A folder-layout tree of 34x34 ATIS recordings: two classes, under train/ and test/ or not."""
    tops = [root / "train", root / "test"] if splits else [root]
    for top in tops:
        for c in ("a", "b"):
            (top / c).mkdir(parents=True)
            for i in range(per_class):
                rng = np.random.default_rng([zlib.crc32(top.name.encode()), ord(c), i])  # same data every run
                t = np.sort(rng.integers(0, 10_000, 60))
                ev = make_events(t, rng.integers(0, 34, 60), rng.integers(0, 34, 60), rng.integers(0, 2, 60))
                atis_bin.write(top / c / f"{i}.bin", ev, (34, 34))
    return root


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tree(tmp_path_factory.mktemp("mistakes") / "raw")


@pytest.fixture(scope="module")
def store(raw: Path) -> Path:
    out = raw.parent / "ok.zarr"
    convert("folder", raw, out, ConvertOptions(frames=3), workers=1)
    return out


def _convert(raw: Path, out: Path, *args: str):
    return runner.invoke(app, ["convert", "folder", str(raw), str(out), "--frames", "3", *args])


# --------------------------------------------------------------------------- convert options


def test_convert_sensor_size_option_that_is_not_a_size_is_one_line(raw: Path, tmp_path: Path) -> None:
    res = _convert(raw, tmp_path / "o.zarr", "-o", "sensor_size=abc")
    assert (
        one_error_line(res) == "error: --option sensor_size 'abc': expected S or W,H with positive integers"
    )
    assert not (tmp_path / "o.zarr").exists()


def test_convert_sensor_size_option_of_one_number_is_a_square_sensor(raw: Path, tmp_path: Path) -> None:
    res = _convert(raw, tmp_path / "o.zarr", "-o", "sensor_size=34")
    assert res.exit_code == 0, res.output
    g = open_store(tmp_path / "o.zarr")
    assert g.attrs["params"]["sensor_size"] == [34, 34] and g["frames"].shape[-2:] == (34, 34)


def test_convert_train_ratio_option_that_is_not_a_number_is_one_line(raw: Path, tmp_path: Path) -> None:
    res = _convert(raw, tmp_path / "o.zarr", "-o", "train_ratio=abc")
    assert one_error_line(res) == "error: --option train_ratio 'abc': expected a number, 0 < ratio <= 1"


def test_convert_negative_workers_is_one_line_and_writes_nothing(raw: Path, tmp_path: Path) -> None:
    res = _convert(raw, tmp_path / "o.zarr", "--workers", "-1")
    assert one_error_line(res) == "error: --workers -1: expected a positive number of threads"
    assert list(tmp_path.iterdir()) == []  # no in-progress store, no lock file


def test_convert_resize_none_with_a_size_is_refused(raw: Path, tmp_path: Path) -> None:
    """It wrote 34x34 frames into a store whose attributes said 16x16."""
    res = _convert(raw, tmp_path / "o.zarr", "--resize", "none", "--size", "16")
    line = one_error_line(res)
    assert line.startswith("error: --resize 'none' with --size [16, 16]: expected a resize method"), line
    assert not (tmp_path / "o.zarr").exists()


def test_convert_store_inside_its_raw_tree_is_refused_up_front(tmp_path: Path) -> None:
    """Without train/ and test/, the store became a class folder: the resume failed on it."""
    tree = _tree(tmp_path / "raw", splits=False)
    res = _convert(tree, tree / "s.zarr")
    line = one_error_line(res)
    assert f"{tree / 's.zarr'}: the store is inside the raw tree {tree}" in line, line
    assert not (tree / "s.zarr").exists()


# --------------------------------------------------------------------------- output paths


@pytest.mark.parametrize("top", ["/proc", "/sys"])
def test_convert_output_under_a_kernel_file_system_is_one_line(raw: Path, top: str) -> None:
    res = _convert(raw, Path(top) / "o.zarr")
    assert (
        one_error_line(res) == f"error: cannot write {top}/o.zarr: {top} is a kernel file system, not storage"
    )


def test_convert_output_below_a_regular_file_is_one_line(raw: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    res = _convert(raw, tmp_path / "afile" / "o.zarr")
    assert one_error_line(res) == (
        f"error: cannot write {tmp_path / 'afile' / 'o.zarr'}: {tmp_path / 'afile'} is a file, not a folder"
    )


def test_convert_output_on_a_read_only_file_system_is_one_line(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tmkt_data import outputs

    def read_only(**kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(kwargs["dir"]))

    monkeypatch.setattr(outputs, "tempfile", types.SimpleNamespace(TemporaryFile=read_only))
    res = _convert(raw, tmp_path / "ro" / "o.zarr")
    assert one_error_line(res) == f"error: cannot write {tmp_path / 'ro' / 'o.zarr'}: Read-only file system"
    assert list(tmp_path.iterdir()) == []


def test_convert_full_disk_is_one_line_and_a_resume_finishes_the_same_store(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the second shard file is written: half of it lands in its temporary file."""
    out = tmp_path / "o.zarr"
    write_bytes = Path.write_bytes
    shard_writes = []

    def filling(self: Path, data: bytes) -> int:
        if (out / "frames") in self.parents:
            shard_writes.append(self)
            if len(shard_writes) == 2:
                write_bytes(self, bytes(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", filling)
    res = _convert(raw, out, "--shard-samples", "4", "--workers", "1")
    assert len(shard_writes) == 2
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    progress, error = [ln for ln in res.stderr.splitlines() if ln.strip()]  # the bar, then one line
    assert progress.startswith("convert ") and "4/12 files" in progress, progress
    assert error == (
        f"error: cannot write {out}: No space left on device (disk full); "
        "free some space, then run the same command again to resume"
    )
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    res = _convert(raw, out, "--shard-samples", "4", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "resuming: 4 of 12 samples already converted" in res.stderr
    assert runner.invoke(app, ["verify", str(out)]).exit_code == 0
    fresh = tmp_path / "fresh.zarr"
    assert _convert(raw, fresh, "--shard-samples", "4", "--workers", "1").exit_code == 0
    a, b = open_store(out), open_store(fresh)
    assert a.attrs["params_hash"] == b.attrs["params_hash"]
    for name in ("frames", "labels", "split", "valid", "sample_id", "n_events"):
        np.testing.assert_array_equal(np.asarray(a[name][:]), np.asarray(b[name][:]), err_msg=name)


def test_show_out_under_proc_is_one_line(store: Path) -> None:
    res = runner.invoke(app, ["show", str(store), "0", "--out", "/proc/x.png"])
    assert (
        one_error_line(res) == "error: cannot write /proc/x.png: /proc is a kernel file system, not storage"
    )


# --------------------------------------------------------------------------- damaged stores


def _damaged_copy(store: Path, tmp_path: Path, member: str) -> Path:
    bad = tmp_path / "bad.zarr"
    shutil.copytree(store, bad)
    (bad / member).write_text("{not json")
    return bad


@pytest.mark.parametrize(
    "command",
    [["verify"], ["fit", "--out", "RUN", "--model", "demo", "--epochs", "1", "--quiet"]],
    ids=["verify", "fit"],
)
def test_store_whose_frames_metadata_is_not_json_is_one_line(
    store: Path, tmp_path: Path, command: list[str]
) -> None:
    bad = _damaged_copy(store, tmp_path, "frames/zarr.json")
    args = [command[0], str(bad), *[str(tmp_path / "run") if a == "RUN" else a for a in command[1:]]]
    res = runner.invoke(app if command[0] == "verify" else train_app, args)
    assert one_error_line(res) == (
        f"error: {bad}: damaged store (frames/zarr.json: not valid JSON); delete it and convert again"
    )
    assert not (tmp_path / "run").exists()


def test_inspect_store_whose_root_metadata_is_not_json_says_damaged_store(
    store: Path, tmp_path: Path
) -> None:
    """It was called "a folder, expected an event file"."""
    bad = _damaged_copy(store, tmp_path, "zarr.json")
    res = runner.invoke(app, ["inspect", str(bad)])
    assert one_error_line(res) == (
        f"error: {bad}: damaged store (zarr.json: not valid JSON); delete it and convert again"
    )


# --------------------------------------------------------------------------- one parser per command


def test_convert_options_of_command_line_and_recipe_are_one_parse(tmp_path: Path) -> None:
    from tmkt_train.pipeline import convert_options, load_pipeline

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[convert]\ndataset = "folder"\nsize = [16, 32]\nsplit_by = "time"\nfilters = ["denoise=5000"]\n'
        'options = { sensor_size = [36, 20] }\n[pair]\nrgb_kind = "digits"\n'
        '[[runs]]\nname = "a"\nmethod = "scratch"\n'
    )
    from_recipe = convert_options(load_pipeline(recipe))
    from_cli = ConvertOptions.from_mapping(
        {
            "size": "16,32",
            "split_by": "time",
            "filters": ["denoise=5000"],
            "options": {"sensor_size": "36,20"},
        }
    )
    assert from_recipe == from_cli
    assert from_cli == ConvertOptions(
        frames=10,
        split_by="time",
        size=(16, 32),
        filters=("denoise=5000",),
        layout_options={"sensor_size": [36, 20]},
    )
    with pytest.raises(
        ConvertError, match=r"^convert options: unknown key\(s\) frame; expected some of frames"
    ):
        ConvertOptions.from_mapping({"frame": 3})


@pytest.mark.parametrize(
    ("table", "key", "value", "expected"),
    [
        ("convert", "frames", '"six"', "[convert] frames = 'six': expected a positive number of frames"),
        ("convert", "size", "[0, 3]", "[convert] size = [0, 3]: expected S or H,W with positive integers"),
        (
            "convert",
            "options",
            '{ sensor_size = "abc" }',
            "[convert] options.sensor_size = 'abc': expected S or W,H",
        ),
        ("convert", "dataset", '"nosuch"', "[convert] dataset = 'nosuch': expected one of cifar10dvs"),
        ("[runs]", "seeds", "1", "[[runs]] #1 seeds = 1: expected a list of integers >= 0"),
        ("synth", "sensor", '"abc"', "[synth] sensor = 'abc': expected S or W,H with positive integers"),
        ("synth", "limit", '"all"', "[synth] limit = 'all': expected a positive integer"),
        ("synth", "layout", '"nmnist"', "the nmnist layout reads a 34x34 sensor, got 40x40"),
    ],
    ids=["frames", "size", "sensor_size", "dataset", "seeds", "synth-sensor", "synth-limit", "synth-layout"],
)
def test_recipe_bad_value_fails_when_loaded_before_any_step(
    tmp_path: Path, table: str, key: str, value: str, expected: str
) -> None:
    """`frames = "six"` or `seeds = 1` failed only after synth, convert and pair had run."""
    tables = {
        "synth": {"rgb_kind": '"digits"', "per_class": "1", "sensor": "40", "render": "28"},
        "convert": {"dataset": '"folder"', "frames": "2"},
        "pair": {"rgb_kind": '"digits"'},
        "[runs]": {"name": '"a"', "method": '"scratch"', "epochs": "1"},
    }
    tables[table][key] = value
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()) for name, kv in tables.items())
    )
    out = tmp_path / "out"
    res = runner.invoke(train_app, ["pipeline", str(recipe), "--out", str(out)])
    line = one_error_line(res)
    assert expected in line, line
    assert not out.exists()
