"""Format detection from magic bytes and extensions, and read_events dispatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tmkt_data import FormatError, detect_format, read_events

MAGIC = {
    "aedat4": (b"#!AER-DAT4.0\r\n", ".aedat4"),
    "aedat31": (b"#!AER-DAT3.1\r\n", ".aedat"),
    "aedat2": (b"#!AER-DAT2.0\r\n", ".aedat"),
    "npy": (b"\x93NUMPY\x01\x00", ".npy"),
    "hdf5": (b"\x89HDF\r\n\x1a\n", ".h5"),
    "mat": (b"MATLAB 5.0 MAT-file, Platform: x", ".mat"),
}


@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_magic_wins_over_extension(tmp_path: Path, fmt: str) -> None:
    magic, _ = MAGIC[fmt]
    path = tmp_path / "misnamed.bin"  # an extension that says ATIS
    path.write_bytes(magic + b"\x00" * 64)
    assert detect_format(path) == fmt


@pytest.mark.parametrize(
    ("suffix", "fmt"),
    [(".bin", "atis_bin"), (".bs2", "atis_bin"), (".npz", "npy"), (".hdf5", "hdf5"), (".dat", "aedat2")],
)
def test_extension_fallback(tmp_path: Path, suffix: str, fmt: str) -> None:
    path = tmp_path / f"x{suffix}"
    path.write_bytes(b"\x01\x02\x03\x04\x05")
    assert detect_format(path) == fmt


def test_unknown_extension_names_file_and_expected(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("t,x,y,p\n")
    with pytest.raises(FormatError, match=r"events\.csv.*extension '\.csv' not one of"):
        detect_format(path)


def test_empty_and_missing(tmp_path: Path) -> None:
    empty = tmp_path / "e.bin"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        read_events(empty)
    with pytest.raises(FormatError, match="not found"):
        read_events(tmp_path / "missing.aedat4")
    with pytest.raises(FormatError, match="folder"):
        read_events(tmp_path)


def test_unknown_format_name(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"\x00" * 5)
    with pytest.raises(FormatError, match="unknown format 'evt3'"):
        read_events(path, format="evt3")


def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    # 5 ATIS bytes: x=3, y=4, ON, t=5 in a file with an unrelated extension
    path = tmp_path / "a.raw"
    path.write_bytes(bytes([3, 4, 0x80, 0, 5]))
    rec = read_events(path, format="atis_bin")
    assert len(rec) == 1
    assert (int(rec.events["x"][0]), int(rec.events["y"][0]), int(rec.events["p"][0])) == (3, 4, 1)
    assert rec.t0_abs == 5 and rec.events["t"][0] == 0
    assert rec.events.dtype.names == ("t", "x", "y", "p") and rec.events["t"].dtype == np.int64
