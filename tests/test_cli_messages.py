"""Every user mistake is one true line on stderr with exit code 2 (issue 12).

User text (paths, class folders, recipe keys) is printed as it is, never read as rich markup;
errors start on their first line; ``--debug`` adds the traceback but keeps exit code 2; the
package imports for a user whose home and package folder are read-only (numba's cache).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from conftest import one_error_line
from rich.markup import render
from typer.testing import CliRunner

from tmkt_data.cli import app
from tmkt_data.events import make_events
from tmkt_data.formats import aedat2, atis_bin
from tmkt_train.cli import app as train_app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _events(n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 10_000, n))
    return make_events(t, rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n))


# --- 1. user text is never markup -------------------------------------------------------------------------


def test_inspect_error_keeps_brackets_in_the_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "rec[old].bin").write_bytes(b"\x01")
    res = runner.invoke(app, ["inspect", "bad/rec[old].bin"])
    line = one_error_line(res)
    assert line.startswith("error: bad/rec[old].bin at byte 0:"), line


def test_inspect_table_keeps_bracketed_class_folder_in_its_title(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "[cls]").mkdir()
    atis_bin.write(tmp_path / "[cls]" / "a:b:c.bin", _events(), (34, 34))
    res = runner.invoke(app, ["inspect", "[cls]/a:b:c.bin"])
    assert res.exit_code == 0, res.output
    assert "[cls]/a:b:c.bin" in res.stdout  # neither markup nor an :emoji: code


def test_convert_error_names_the_bracketed_class_folder_on_its_first_line(tmp_path: Path) -> None:
    bad = tmp_path / "raw" / "train" / "[cls]" / "a.bin"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"xyz")
    res = runner.invoke(
        app, ["convert", "folder", str(tmp_path / "raw"), str(tmp_path / "o.zarr"), "--on-error", "fail"]
    )
    line = one_error_line(res)
    assert f"{bad}" in line, line


def test_convert_usage_error_has_no_blank_line_before_it(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    res = runner.invoke(app, ["convert", "nosuch", str(tmp_path / "raw"), str(tmp_path / "o.zarr")])
    assert "unknown dataset 'nosuch'" in one_error_line(res)


def test_pair_error_has_no_blank_line_before_it(tmp_path: Path) -> None:
    res = runner.invoke(app, ["pair", str(tmp_path / "none.zarr"), "digits"])
    assert "none.zarr" in one_error_line(res)


def test_recipe_error_names_runs_tables(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('[convert]\ndataset = "nmnist"\n\n[pair]\nrgb_kind = "digits"\n')
    res = runner.invoke(train_app, ["pipeline", str(recipe)])
    assert one_error_line(res) == f"error: {recipe}: no [[runs]]"


def test_pipeline_help_shows_runs_tables() -> None:
    res = runner.invoke(train_app, ["pipeline", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0, res.output
    assert "Run only these [[runs]] names." in res.stdout


@pytest.mark.parametrize("the_app", [app, train_app], ids=["tmkt-data", "tmkt-train"])
def test_no_help_text_loses_text_to_markup(the_app: typer.Typer) -> None:
    """typer reads help as rich markup: a bracketed word must be escaped (rich.markup.escape)."""
    group = typer.main.get_command(the_app)
    texts = [group.help or ""]
    for cmd in group.commands.values():
        texts.append(cmd.help or "")
        texts.extend(getattr(p, "help", None) or "" for p in cmd.params)
    for text in texts:
        assert render(text).plain == text.replace("\\[", "["), text


def test_debug_shows_the_traceback_and_keeps_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "odd.bin"
    path.write_bytes(b"\x01\x02")
    res = runner.invoke(app, ["--debug", "inspect", str(path)])
    assert res.exit_code == 2, res.output
    assert "Traceback" in res.stderr and "FormatError" in res.stderr and "odd.bin" in res.stderr


# --- 2. numba's cache when the package and the home folder are read-only ----------------------------------


posix_only = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions and user ids")


def _read_only_tree(top: Path) -> None:
    """No folder under ``top`` takes new files; a file named ``__pycache__`` stops even root."""
    for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
        (d / "__pycache__").write_bytes(b"")
    for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
        d.chmod(0o555)


def _writable_again(top: Path) -> None:
    for d in [top, *(p for p in top.rglob("*") if p.is_dir())]:
        d.chmod(0o755)


@posix_only
def test_inspect_runs_with_read_only_package_and_home(tmp_path: Path) -> None:
    pkg = tmp_path / "site"
    shutil.copytree(ROOT / "tmkt_data", pkg / "tmkt_data", ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cache").write_bytes(b"")  # ~/.cache/numba cannot be made
    temp = tmp_path / "tmp"
    temp.mkdir()
    rec = tmp_path / "rec.aedat"
    aedat2.write(rec, _events(200), (128, 128))
    env = {
        k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")
    }
    env.update(HOME=str(home), PYTHONPATH=str(pkg), TMPDIR=str(temp))
    _read_only_tree(pkg / "tmkt_data")
    home.chmod(0o555)
    try:
        res = subprocess.run(
            [sys.executable, "-m", "tmkt_data.cli", "inspect", str(rec), "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        home.chmod(0o755)
        _writable_again(pkg / "tmkt_data")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["events"] == 200
    # the kernels of the copy were cached in a private folder under TMPDIR
    cache = temp / f"tmkt-numba-{os.getuid()}"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert any(cache.rglob("aedat2._decode_body-*.nbi"))


def test_numba_cache_leaves_a_user_setting_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tmkt_data import _numba_cache

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setattr(_numba_cache, "_writable", lambda folder: False)
    assert _numba_cache.ensure_numba_cache() is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


@posix_only
def test_numba_cache_never_reuses_a_folder_others_can_write(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cache holds pickles numba loads: a planted, world-writable folder is passed over."""
    import tempfile

    import numba.core.config

    from tmkt_data import _numba_cache

    monkeypatch.setenv("NUMBA_CACHE_DIR", "x")  # so that monkeypatch restores the variable afterwards
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(numba.core.config, "CACHE_DIR", numba.core.config.CACHE_DIR)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    blocker = tmp_path / "a-file"  # no folder can be made under a file, even by root
    blocker.write_bytes(b"")
    monkeypatch.setattr(_numba_cache, "_KERNEL_DIRS", (blocker,))
    monkeypatch.setattr(_numba_cache, "_user_cache_dir", lambda: str(blocker / "numba"))
    planted = tmp_path / f"tmkt-numba-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    chosen = _numba_cache.ensure_numba_cache()
    assert chosen is not None and Path(chosen) != planted and Path(chosen).parent == tmp_path
    assert stat.S_IMODE(Path(chosen).stat().st_mode) == 0o700
    assert os.environ["NUMBA_CACHE_DIR"] == chosen and numba.core.config.CACHE_DIR == chosen


# --- 3. tmkt-train options ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny paired store and a one-step run on it: (store, run folder)."""
    from tmkt_data.convert import ConvertOptions, convert
    from tmkt_data.pairing import pair_store
    from tmkt_train.config import make_config
    from tmkt_train.trainer import fit

    root = tmp_path_factory.mktemp("messages")
    for folder, n in (("Train", 5), ("Test", 1)):
        for d in range(10):
            (root / "raw" / folder / str(d)).mkdir(parents=True)
            for i in range(n):
                atis_bin.write(
                    root / "raw" / folder / str(d) / f"{i + 1:05d}.bin", _events(seed=d * 10 + i), (34, 34)
                )
    store = root / "s.zarr"
    convert("nmnist", root / "raw", store, ConvertOptions(frames=2, size=(8, 8)))
    pair_store(store, "digits", None, val_fraction=0.2, seed=0)
    cfg = make_config(
        store=str(store), out=str(root / "run"), model="demo", epochs=1, batch_size=8, num_workers=0,
        max_steps_per_epoch=1,
    )  # fmt: skip
    fit(cfg, progress=False)
    return store, root / "run"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--device", "tpu"], "error: device = 'tpu': expected auto, cpu, cuda or cuda:N"),
        (["--workers", "-1"], "error: num_workers = -1: expected an integer >= 0"),
    ],
)
def test_fit_bad_option_is_one_line(
    run_dir: tuple[Path, Path], tmp_path: Path, flags: list[str], expected: str
) -> None:
    store, _ = run_dir
    out = tmp_path / "run"
    args = ["fit", str(store), "--out", str(out), "--model", "demo", "--epochs", "1", "--quiet", *flags]
    res = runner.invoke(train_app, args)
    assert one_error_line(res) == expected
    assert not out.exists()


def test_eval_batch_size_zero_is_one_line(run_dir: tuple[Path, Path]) -> None:
    store, run = run_dir
    res = runner.invoke(train_app, ["eval", str(run / "checkpoint.pt"), str(store), "--batch-size", "0"])
    assert one_error_line(res) == "error: batch_size = 0: expected a positive integer"


def test_eval_bad_device_is_one_line(run_dir: tuple[Path, Path]) -> None:
    store, run = run_dir
    res = runner.invoke(train_app, ["eval", str(run / "checkpoint.pt"), str(store), "--device", "tpu"])
    assert one_error_line(res) == "error: device = 'tpu': expected auto, cpu, cuda or cuda:N"


# --- usage errors: the same one line as every other mistake, not Typer's panel ---------------------------


@pytest.mark.parametrize(
    ("which", "args", "want"),
    [
        ("data", ["convert", "--nope"], "No such option: --nope"),
        ("data", ["convert", "nmnist"], "Missing argument 'raw_root'"),
        ("data", ["convert", "nmnist", "raw", "out.zarr", "--frames", "abc"], "Invalid value for '--frames'"),
        ("data", ["frobnicate"], "No such command 'frobnicate'"),
        ("train", ["fit", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line(which: str, args: list[str], want: str) -> None:
    res = runner.invoke(app if which == "data" else train_app, args)
    line = one_error_line(res)
    assert want in line and "--help" in line, line
    assert "╭" not in res.output


def test_usage_error_from_the_console_script() -> None:
    """The installed entry point too: one line on stderr, exit code 2, nothing on stdout."""
    res = subprocess.run([sys.executable, "-m", "tmkt_data.cli", "convert", "--nope"], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("error: No such option: --nope") and len(res.stderr.splitlines()) == 1
