"""Helpers shared by several test modules: the real sample files, fuzzing, tiny trees and stores.

Plain functions and constants are imported (``from conftest import REAL, needs_real``: pytest
puts ``tests/`` on ``sys.path``); fixtures (``live_pid``, ``paired_store``) need no import.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from tmkt_data.errors import FormatError
from tmkt_data.events import EVENT_DTYPE, Recording, make_events

# --------------------------------------------------------------------------- real sample files

#: Real recordings (N-MNIST from tonic and SLAYER, an AEDAT 4.0 sample): ``../shared/data/real``
#: next to the repository; tests that need them skip, naming the path, when it is absent.
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
#: tonic's N-MNIST sample (4325 events, no recorded digit)
REAL_NMNIST_TONIC = REAL / "nmnist_tonic" / "sample_nmnist.bin"
#: SLAYER's N-MNIST samples ``<k>.bs2`` and their digits
REAL_SLAYER_LABELS = {"1": 5, "2": 0, "3": 4, "4": 1, "6": 2}
#: the AEDAT 4.0 sample of tonic's test data
REAL_AEDAT4 = REAL / "aedat4_tonic" / "sample.aedat4"


def _missing_reason(paths: tuple[Path, ...]) -> str:
    missing = [p for p in paths if not p.exists()]
    return f"real sample data not available at {missing[0] if missing else REAL}"


def needs_real(*paths: Path) -> pytest.MarkDecorator:
    """Skip marker: the test needs ``paths`` (default: the real sample folder itself)."""
    paths = paths or (REAL,)
    return pytest.mark.skipif(not all(p.exists() for p in paths), reason=_missing_reason(paths))


def require_real(path: Path = REAL) -> Path:
    """``path``, or skip the running test saying where the real sample data is expected."""
    if not path.exists():
        pytest.skip(_missing_reason((path,)))
    return path


# --------------------------------------------------------------------------- fuzzing


def fuzz_settings(max_examples: int) -> settings:
    """Hypothesis settings of the reader fuzz tests: no deadline, ``tmp_path`` allowed."""
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )


@functools.cache
def _fuzz_dir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="tmkt_fuzz_"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def fuzz_path(name: str) -> Path:
    """A file path in one temporary folder for the whole run (removed at exit), for fuzz tests
    that write a file per example without taking the function-scoped ``tmp_path``."""
    return _fuzz_dir() / name


def check_read_outcome(path: Path, fmt: str) -> Recording | None:
    """Read ``path`` as ``fmt``: either a :class:`FormatError` naming the file (None) or a
    recording of canonical events (returned for further checks). Anything else fails the test."""
    from tmkt_data.formats import read_events

    try:
        rec = read_events(path, format=fmt)
    except FormatError as err:
        assert str(path) in str(err)
        return None
    assert isinstance(rec, Recording) and rec.events.dtype == EVENT_DTYPE
    return rec


# --------------------------------------------------------------------------- files and recordings


def put_bytes(tmp_path: Path, data: bytes, name: str = "f.aedat") -> Path:
    """``data`` written to ``tmp_path / name``."""
    p = tmp_path / name
    p.write_bytes(data)
    return p


def event_lists(rec: Recording) -> tuple[list[int], list[int], list[int], list[int]]:
    """(x, y, p, t) of a recording as lists, for comparing with hand-computed values."""
    ev = rec.events
    return ev["x"].tolist(), ev["y"].tolist(), ev["p"].tolist(), ev["t"].tolist()


def one_error_line(res) -> str:  # a click/typer Result
    """The run exited with 2 and printed exactly one line, starting with ``error:``, on stderr."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.stderr.startswith("error: "), repr(res.stderr)  # no blank line before it
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture()
def live_pid():
    """The pid of a running process that is not this one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


# --------------------------------------------------------------------------- tiny trees and stores


def make_nmnist_tree(root: Path, per_digit: int = 2, seed: int = 0) -> Path:
    """An N-MNIST tree: synthetic 34x34 recordings (``per_digit`` train, 1 test per digit), plus
    the real ones when available."""
    from tmkt_data.demo import sweeping_bar
    from tmkt_data.formats import atis_bin

    for folder in ("Train", "Test"):
        for d in range(10):
            (root / folder / str(d)).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for folder, n in (("Train", per_digit), ("Test", 1)):
        for d in range(10):
            for i in range(n):
                ev = sweeping_bar(
                    (34, 34), duration_us=int(rng.integers(50_000, 300_000)), seed=seed + 97 * d + i
                )
                atis_bin.write(root / folder / str(d) / f"{i + 1:05d}.bin", ev, (34, 34))
    if REAL.is_dir():
        for k, label in REAL_SLAYER_LABELS.items():
            shutil.copy(REAL / "nmnist_slayer" / f"{k}.bs2", root / "Train" / str(label) / f"9000{k}.bin")
        shutil.copy(REAL_NMNIST_TONIC, root / "Test" / "3" / "90000.bin")
    return root


def digit_events(d: int, seed: int) -> np.ndarray:
    """A 34x34 recording whose event pattern depends on the class: a blob at a digit-specific place."""
    rng = np.random.default_rng(seed)
    n = 600
    cx, cy = 6 + 3 * (d % 5) * 1.5, 8 + 16 * (d // 5)
    x = np.clip(rng.normal(cx, 2.0, n), 0, 33).astype(int)
    y = np.clip(rng.normal(cy, 2.0, n), 0, 33).astype(int)
    t = np.sort(rng.integers(0, 100_000, n))
    t -= t[0]
    return make_events(t, x, y, rng.integers(0, 2, n))


def write_digit_tree(tree: Path, train: int = 6, test: int = 2) -> Path:
    """An N-MNIST tree of :func:`digit_events` recordings (learnable classes), ``train`` and
    ``test`` per digit."""
    from tmkt_data.formats import atis_bin

    for folder, n in (("Train", train), ("Test", test)):
        for d in range(10):
            (tree / folder / str(d)).mkdir(parents=True)
            for i in range(n):
                atis_bin.write(
                    tree / folder / str(d) / f"{i + 1:05d}.bin", digit_events(d, 100 * d + i), (34, 34)
                )
    return tree


@pytest.fixture(scope="module")
def paired_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted (6 train + 2 test :func:`digit_events` recordings per digit, 16x16, 3 frames)
    store paired with sklearn digits (20% validation)."""
    from tmkt_data.convert import ConvertOptions, convert
    from tmkt_data.pairing import pair_store

    root = tmp_path_factory.mktemp("train")
    tree = write_digit_tree(root / "raw")
    store = root / "s.zarr"
    convert("nmnist", tree, store, ConvertOptions(frames=3, size=(16, 16), shard_samples=16))
    pair_store(store, "digits", None, val_fraction=0.2, seed=0)
    return store


def set_store_attrs(store: Path, **attrs) -> None:
    """Set root attributes of ``store`` as tmkt writes them: the root ``zarr.json`` and its recorded
    crc32c (a plain-zarr edit of the attributes reads as damage)."""
    import json

    from tmkt_data.store import write_root_attrs

    doc = json.loads((store / "zarr.json").read_bytes())
    write_root_attrs(store, {**doc["attributes"], **attrs}, doc=doc)


def cfg_for(store: Path, out: Path, **kw):
    """A quick training config (demo model, 2 epochs, batch 16, no workers) for ``store``."""
    from tmkt_train.config import make_config

    base = dict(store=str(store), out=str(out), model="demo", epochs=2, batch_size=16, num_workers=0, lr=0.02)
    base.update(kw)
    return make_config(**base)
