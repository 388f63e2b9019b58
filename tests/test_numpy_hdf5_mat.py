"""NumPy (.npy/.npz), HDF5 and MATLAB (.mat) event readers and writers."""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from conftest import REAL_NMNIST_TONIC, check_read_outcome, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from tmkt_data.errors import EventsError, FormatError
from tmkt_data.events import EVENT_DTYPE
from tmkt_data.formats import detect_format, hdf5_file, mat_file, numpy_file, read_events

NMNIST = REAL_NMNIST_TONIC
FUZZ = fuzz_settings(50)
MODULES = {"npy": numpy_file, "hdf5": hdf5_file, "mat": mat_file}
SUFFIX = {"npz": ".npz", "npy": ".npy", "hdf5": ".h5", "mat": ".mat"}


def synthetic(n: int = 200, seed: int = 0, w: int = 64, h: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 10**6, n))
    ev["t"] -= ev["t"][0]
    ev["x"] = rng.integers(0, w, n)
    ev["y"] = rng.integers(0, h, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def real_or_synthetic() -> tuple[np.ndarray, tuple[int, int], int]:
    if NMNIST.is_file():
        from tmkt_data.formats import atis_bin

        rec = atis_bin.read(NMNIST)
        return rec.events, rec.sensor_size, rec.t0_abs
    return synthetic(), (64, 48), 654


def write_with(kind: str, path: Path, ev, size, **kw) -> None:
    MODULES["npy" if kind in ("npy", "npz") else kind].write(path, ev, size, **kw)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", ["npz", "npy", "hdf5", "mat"])
def test_round_trip(tmp_path: Path, kind: str) -> None:
    ev, size, t0 = real_or_synthetic()
    path = tmp_path / f"events{SUFFIX[kind]}"
    write_with(kind, path, ev, size, t0_abs=t0)
    assert detect_format(path) == ("npy" if kind in ("npy", "npz") else kind)
    rec = read_events(path)
    np.testing.assert_array_equal(rec.events, ev)
    assert rec.t0_abs == t0 and rec.events.dtype == EVENT_DTYPE
    if kind != "npy":  # a bare .npy does not store the sensor size
        assert rec.sensor_size == tuple(size) and rec.metadata["sensor_size_from"] == "file"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert path.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode


@fuzz_settings(25)
@given(
    kind=st.sampled_from(["npz", "npy", "hdf5", "mat"]),
    n=st.integers(0, 50),
    seed=st.integers(0, 1000),
    t0=st.integers(-(2**40), 2**40),
)
def test_round_trip_random(tmp_path: Path, kind: str, n: int, seed: int, t0: int) -> None:
    ev = synthetic(n, seed) if n else np.zeros(0, dtype=EVENT_DTYPE)
    path = tmp_path / f"r{SUFFIX[kind]}"
    write_with(kind, path, ev, (64, 48), t0_abs=t0)
    rec = MODULES["npy" if kind in ("npy", "npz") else kind].read(path, sensor_size=(64, 48))
    np.testing.assert_array_equal(rec.events, ev)
    if n:
        assert rec.t0_abs == t0


def test_mat_writer_is_cep_dvs_style(tmp_path: Path) -> None:
    ev = synthetic(20)
    path = tmp_path / "c.mat"
    mat_file.write(path, ev, (64, 48), t0_abs=5)
    m = scipy.io.loadmat(path)
    assert m["x"].shape == (20, 1) and m["x"].dtype == np.float64
    assert set(np.unique(m["p"]).tolist()) <= {-1.0, 1.0}
    np.testing.assert_array_equal(m["p"].ravel() > 0, ev["p"] > 0)
    np.testing.assert_array_equal(m["ts"].ravel(), ev["t"] + 5)
    mat_file.write(path, ev, (64, 48), signed_polarity=False)
    assert set(np.unique(scipy.io.loadmat(path)["p"]).tolist()) <= {0.0, 1.0}


def test_hdf5_writer_layout(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    hdf5_file.write(path, synthetic(10), (64, 48))
    with h5py.File(path) as f:
        assert sorted(f["events"].keys()) == ["p", "t", "x", "y"]
        assert int(f["events"].attrs["width"]) == 64 and int(f["events"].attrs["height"]) == 48


# --------------------------------------------------------------------------- hand-made layouts


@pytest.mark.parametrize(
    "fields",
    [
        [("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")],  # tonic N-MNIST
        [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "<i2")],  # tonic CIFAR10-DVS
        [("x", "<i2"), ("y", "<i2"), ("p", "?"), ("t", "<i8")],  # tonic DVS Gesture
        [("ts", "<u8"), ("x", "<u2"), ("y", "<u2"), ("polarity", "<i1")],
    ],
)
def test_npy_field_orders_and_aliases(tmp_path: Path, fields) -> None:
    arr = np.zeros(4, dtype=fields)
    tname = "t" if "t" in arr.dtype.names else "ts"
    pname = "p" if "p" in arr.dtype.names else "polarity"
    arr[tname] = [30, 10, 20, 40]
    arr["x"] = [1, 2, 3, 4]
    arr["y"] = [5, 6, 7, 8]
    arr[pname] = [1, 0, 1, 0] if arr.dtype[pname].kind in "bu" else [1, -1, 1, -1]
    path = tmp_path / "tonic.npy"
    np.save(path, arr)
    rec = numpy_file.read(path)
    assert rec.t0_abs == 10 and rec.events["t"].tolist() == [0, 10, 20, 30]
    assert rec.events["x"].tolist() == [2, 3, 1, 4] and rec.events["p"].tolist() == [0, 1, 1, 0]
    assert rec.sensor_size == (5, 9) and rec.metadata["resorted"] is True
    assert rec.metadata["fields"] == {"t": tname, "x": "x", "y": "y", "p": pname}


def test_npz_layouts_and_time_units(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    np.savez(
        path,
        ts=np.array([0.5, 1.5, 2.0]),
        x=[1, 2, 3],
        y=[0, 0, 1],
        polarity=[-1, 1, -1],
        sensor_size=[8, 4, 2],
    )
    with pytest.raises(FormatError, match="fractional microseconds; pass time_unit"):
        numpy_file.read(path)
    rec = numpy_file.read(path, time_unit="ms")
    assert rec.events["t"].tolist() == [0, 1000, 1500] and rec.t0_abs == 500
    assert rec.sensor_size == (8, 4) and rec.metadata["layout"] == "columns"
    assert numpy_file.read(path, time_unit="s").events["t"].tolist() == [0, 10**6, 1_500_000]
    with pytest.raises(EventsError, match="time_unit 'h'"):
        numpy_file.read(path, time_unit="h")

    one = np.zeros(2, dtype=[("timestamp", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    one["timestamp"] = [7, 9]
    np.savez(path, whatever=one)
    rec = numpy_file.read(path, sensor_size=(3, 3))
    assert rec.metadata["layout"] == "structured" and rec.metadata["member"] == "whatever"
    assert rec.sensor_size == (3, 3) and rec.t0_abs == 7


def test_hdf5_layouts(tmp_path: Path) -> None:
    arr = np.zeros(3, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    arr["t"], arr["x"], arr["y"], arr["p"] = [5, 3, 9], [1, 2, 3], [0, 1, 2], [1, 0, 1]
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("meta/notes", data=np.arange(3))
        d = f.create_dataset("data/table", data=arr)
        d.attrs["sensor_size"] = np.array([10, 8, 2])
        g = f.create_group("other")
        g["t"], g["x"], g["y"], g["p"] = [1, 2], [0, 1], [0, 1], [0, 1]
        g.attrs["width"], g.attrs["height"] = 4, 4
    rec = hdf5_file.read(path)
    assert rec.metadata["key"] == "/data/table" and rec.metadata["layout"] == "compound"
    assert rec.sensor_size == (10, 8) and rec.events["t"].tolist() == [0, 2, 6] and rec.t0_abs == 3
    other = hdf5_file.read(path, key="other")
    assert other.metadata["layout"] == "columns" and other.sensor_size == (4, 4) and len(other) == 2
    with pytest.raises(FormatError, match="no object 'nope'"):
        hdf5_file.read(path, key="nope")

    path2 = tmp_path / "eu.h5"  # event_utils style: float seconds, xs/ys/ps at the root
    with h5py.File(path2, "w") as f:
        f["xs"], f["ys"], f["ts"], f["ps"] = [1, 2], [3, 4], [0.25, 0.5], [-1, 1]
        f.attrs["sensor_size"] = [6, 5]
    rec = hdf5_file.read(path2, time_unit="s")
    assert rec.metadata["key"] == "/" and rec.sensor_size == (6, 5)
    assert rec.events["t"].tolist() == [0, 250_000] and rec.events["p"].tolist() == [0, 1]


def test_mat_layouts(tmp_path: Path) -> None:
    cols = {"x": np.array([1.0, 2, 3]), "y": np.array([0.0, 1, 2]), "ts": np.array([10.0, 20, 30])}
    top = tmp_path / "top.mat"
    scipy.io.savemat(top, {**cols, "p": np.array([-1.0, 1, 1]), "label": 3})
    rec = mat_file.read(top)
    assert rec.events["p"].tolist() == [0, 1, 1] and rec.t0_abs == 10 and rec.sensor_size == (4, 3)
    assert rec.metadata["mat_version"] == "5" and rec.metadata["struct"] is None

    st_path = tmp_path / "struct.mat"
    scipy.io.savemat(st_path, {"sample": {**cols, "p": np.array([True, False, True])}, "names": ["a", "b"]})
    rec = mat_file.read(st_path)
    assert rec.metadata["struct"] == "sample" and rec.events["p"].tolist() == [1, 0, 1]

    nested = tmp_path / "nested.mat"
    scipy.io.savemat(
        nested,
        {"outer": {"inner": {"x": [1], "y": [2], "t": np.array([5], np.int64), "pol": [1]}}},
        do_compression=True,
    )
    rec = mat_file.read(nested, key="outer", sensor_size=(10, 10))
    assert len(rec) == 1 and rec.t0_abs == 5 and rec.metadata["fields"]["p"] == "pol"

    v4 = tmp_path / "v4.mat"
    scipy.io.savemat(v4, {**cols, "p": np.array([0.0, 1, 0])}, format="4")
    rec = mat_file.read(v4)
    assert rec.metadata["mat_version"] == "4" and rec.events["p"].tolist() == [0, 1, 0]

    v73 = tmp_path / "v73.mat"
    with h5py.File(v73, "w", userblock_size=512) as f:
        for k, v in {**cols, "p": np.array([1.0, -1, 1])}.items():
            f[k] = v.reshape(1, -1)  # MATLAB stores column vectors as (1, N) datasets
    with open(v73, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116))
    assert detect_format(v73) == "mat"
    rec = mat_file.read(v73)
    assert rec.metadata["mat_version"] == "7.3" and rec.source_format == "mat"
    assert rec.events["p"].tolist() == [1, 0, 1]


# --------------------------------------------------------------------------- bad files


def test_npy_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "o.npy"
    np.save(path, np.array([1, "a", None], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match="Python objects"):
        numpy_file.read(path)
    np.save(path, np.arange(10))
    with pytest.raises(FormatError, match="not structured"):
        numpy_file.read(path)
    good = np.zeros(100, dtype=[("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    np.save(path, good)
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(FormatError, match=r"declares shape \(100,\).*only \d+ bytes follow") as err:
        numpy_file.read(path)
    assert err.value.offset == data.index(b"\n") + 1  # end of the padded header
    path.write_bytes(b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 50)
    with pytest.raises(FormatError, match="bad .npy header"):
        numpy_file.read(path)


def test_npy_giant_shape_is_refused_before_allocation(tmp_path: Path) -> None:
    dtype = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (10**12,)}
    path = tmp_path / "g.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\x00" * 64)
    with pytest.raises(FormatError, match="declares shape \\(1000000000000,\\)"):
        numpy_file.read(path)


def test_npz_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "b.npz"
    np.savez(path, t=[1, 2], x=[1, 2], y=[1, 2], p=[0, 2])
    with pytest.raises(FormatError, match="'p' takes values \\{0, 2\\}, expected"):
        numpy_file.read(path)
    np.savez(path, t=[1, 2], ts=[1, 2], x=[1, 2], y=[1, 2], p=[0, 1])
    with pytest.raises(FormatError, match="both 't' and 'ts'"):
        numpy_file.read(path)
    np.savez(path, t=[1, 2], x=[1, 2, 3], y=[1, 2], p=[0, 1])
    with pytest.raises(FormatError, match="'x' has 3 values but 't' has 2"):
        numpy_file.read(path)
    np.savez(path, t=[1, 2], x=[-1, 2], y=[1, 2], p=[0, 1])
    with pytest.raises(FormatError, match="'x' ranges -1..2"):
        numpy_file.read(path)
    np.savez(path, t=[np.nan, 2], x=[1, 2], y=[1, 2], p=[0, 1])
    with pytest.raises(FormatError, match="NaN"):
        numpy_file.read(path)
    np.savez(path, a=[1], b=[2])
    with pytest.raises(FormatError, match="neither one structured event array nor separate"):
        numpy_file.read(path)
    np.savez(path, t=[1, 2], x=[1, 2], y=[1, 2], p=[0, 1], sensor_size=[1, 1])
    with pytest.raises(FormatError, match="outside the sensor of width 1"):
        numpy_file.read(path)
    # a stored member whose central-directory size is inflated
    np.savez(path, t=[1, 2], x=[1, 2], y=[1, 2], p=[0, 1])
    data = bytearray(path.read_bytes())
    cd = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 0x7FFFFFFF)
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="declares 2147483647 bytes"):
        numpy_file.read(path)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FormatError, match="not a readable .npz"):
        numpy_file.read(path)


def test_hdf5_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "b.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 200)
    with pytest.raises(FormatError, match="cannot open as HDF5"):
        hdf5_file.read(path)
    with h5py.File(path, "w") as f:
        f["a"] = np.arange(3)
    with pytest.raises(FormatError, match="no event table"):
        hdf5_file.read(path)
    with h5py.File(path, "w") as f:
        f["t"], f["x"], f["y"] = [1], [1], [1]
        f["p"] = np.array([b"on"])
    with pytest.raises(FormatError, match="'p' has dtype \\|S2"):
        hdf5_file.read(path)
    with h5py.File(path, "w") as f:  # a declared size the file cannot hold (unwritten chunks)
        g = f.create_group("events")
        for k in "txyp":
            g.create_dataset(k, shape=(10**10,), dtype="<i8", chunks=(1024,))
    with pytest.raises(FormatError, match="implausible"):
        hdf5_file.read(path)


def test_mat_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "b.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x01IM" + b"\x0e\x00\x00\x00\xff\xff\xff\x7f")
    with pytest.raises(FormatError, match="declares 2147483647 bytes"):
        mat_file.read(path)
    scipy.io.savemat(path, {"x": np.arange(5.0), "y": np.arange(5.0)})
    with pytest.raises(FormatError, match="no event variables"):
        mat_file.read(path)
    scipy.io.savemat(path, {"x": ["ab"], "y": [1.0], "ts": [1.0], "p": [1.0]})
    with pytest.raises(FormatError, match="'x' is object"):
        mat_file.read(path)
    # an unknown data type code makes scipy.io.loadmat crash the interpreter (SIGSEGV);
    # the Python parser reports it
    cols = {k: np.arange(50.0)[:, None] for k in ("x", "y", "ts", "p")}
    scipy.io.savemat(path, cols)
    data = bytearray(path.read_bytes())
    real_tag = len(data) - 8 - 400  # last variable's real-part tag (miDOUBLE, 400 bytes)
    assert struct.unpack_from("<II", data, real_tag) == (9, 400)
    struct.pack_into("<I", data, real_tag, 0xB909)
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="real part element has type 47369"):
        mat_file.read(path)
    # MAT v4 with a giant declared size (scipy allocates it before reading)
    path.write_bytes(struct.pack("<5i", 0, 50000, 50000, 0, 2) + b"x\x00" + b"\x00" * 64)
    with pytest.raises(FormatError, match="needs 20000000000 bytes"):
        mat_file.read(path)


def test_empty_files(tmp_path: Path) -> None:
    for name in ("e.npy", "e.npz", "e.h5", "e.mat"):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(FormatError, match="empty"):
            read_events(path)


def test_sniff() -> None:
    assert numpy_file.sniff(b"\x93NUMPY\x01\x00") and not numpy_file.sniff(b"PK\x03\x04")
    assert hdf5_file.sniff(b"\x89HDF\r\n\x1a\n") and not hdf5_file.sniff(b"MATLAB 7.3 MAT-file")
    assert mat_file.sniff(b"MATLAB 5.0 MAT-file, Platform") and mat_file.sniff(b"MATLAB 7.3 MAT-file")
    assert not mat_file.sniff(b"\x00\x00\x00\x00")


# --------------------------------------------------------------------------- fuzz


PREFIX = {
    "npy": b"\x93NUMPY",
    "npz": b"PK\x03\x04",
    "hdf5": b"\x89HDF\r\n\x1a\n",
    "mat": b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x01IM",
}


@FUZZ
@given(kind=st.sampled_from(sorted(PREFIX)), prefix=st.booleans(), data=st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path: Path, kind: str, prefix: bool, data: bytes) -> None:
    path = tmp_path / f"r{SUFFIX[kind]}"
    path.write_bytes((PREFIX[kind] if prefix else b"") + data)
    check_read_outcome(path, "npy" if kind == "npz" else kind)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("valid")
    ev = synthetic(30)
    out = {}
    for kind in ("npz", "npy", "hdf5", "mat"):
        path = d / f"v{SUFFIX[kind]}"
        write_with(kind, path, ev, (64, 48))
        out[kind] = path.read_bytes()
    path = d / "z.npz"
    numpy_file.write(path, ev, (64, 48), compressed=True)
    out["npz_deflate"] = path.read_bytes()
    path = d / "s.mat"
    scipy.io.savemat(
        path, {"s": {"x": [1.0, 2], "y": [1.0, 2], "ts": [3.0, 4], "p": [-1.0, 1]}}, do_compression=True
    )
    out["mat_struct"] = path.read_bytes()
    return out


@fuzz_settings(150)
@given(
    kind=st.sampled_from(["npz", "npy", "hdf5", "mat", "npz_deflate", "mat_struct"]),
    op=st.sampled_from(["flip", "set", "truncate", "insert"]),
    pos=st.integers(0, 10**6),
    val=st.binary(min_size=1, max_size=8),
)
def test_fuzz_mutated_valid_files(
    tmp_path: Path, valid_files, kind: str, op: str, pos: int, val: bytes
) -> None:
    data = bytearray(valid_files[kind])
    pos %= len(data) if op != "flip" or pos % 3 else min(len(data), 1024)
    if op == "flip":
        data[pos] ^= val[0] or 1
    elif op == "set":
        data[pos : pos + len(val)] = val
    elif op == "truncate":
        del data[pos:]
    else:
        data[pos:pos] = val
    base = kind.split("_")[0]
    path = tmp_path / f"m{SUFFIX[base]}"
    path.write_bytes(bytes(data))
    check_read_outcome(path, "npy" if base == "npz" else base)
