"""Store files written by tmkt_data.store without zarr-python, against zarr-python's own files (whatever zarr is installed)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from tmkt_data.store import encode_shard, frames_compressor, write_sample_array

CASES = {
    "int64": np.array([0, -5, 2**40, 7], dtype=np.int64),
    "int32": np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.int32),
    "bool": np.array([True, False, False, True]),
    "string": np.array(["airplane/cifar10_airplane_0", "", "Öl/ünïcode_é", "a" * 300], dtype=object),
    "one": np.array([42], dtype=np.int64),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_files_as_zarr_python(tmp_path: Path, name: str) -> None:
    values = CASES[name]
    ours, theirs = tmp_path / "ours.zarr", tmp_path / "theirs.zarr"
    zarr.open_group(str(ours), mode="w", zarr_format=3)
    write_sample_array(ours, name, values)
    g = zarr.open_group(str(theirs), mode="w", zarr_format=3)
    data = values.astype(np.dtypes.StringDType()) if values.dtype == object else values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g.create_array(name, data=data, chunks=(len(values),), dimension_names=("sample",))
    assert json.loads((ours / name / "zarr.json").read_text()) == json.loads(
        (theirs / name / "zarr.json").read_text()
    )
    assert (ours / name / "c" / "0").read_bytes() == (theirs / name / "c" / "0").read_bytes()
    back = zarr.open_group(str(ours), mode="r")[name][:]
    np.testing.assert_array_equal(np.asarray(back).astype(values.dtype), values)


def test_replacing_an_array_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    zarr.open_group(str(store), mode="w", zarr_format=3)
    write_sample_array(store, "labels", np.arange(5, dtype=np.int32))
    write_sample_array(store, "labels", np.arange(5, 10, dtype=np.int32))
    np.testing.assert_array_equal(zarr.open_group(str(store), mode="r")["labels"][:], np.arange(5, 10))
    assert sorted(p.name for p in (store / "labels").rglob("*")) == ["0", "c", "zarr.json"]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float16", "float32"])
@pytest.mark.parametrize("n", [5, 8])
def test_shard_bytes_equal_zarr_python(tmp_path: Path, dtype: str, n: int) -> None:
    """encode_shard gives the bytes the installed zarr-python writes for the same frames
    (a full shard and one with absent trailing chunks)."""
    frames = np.random.default_rng(n).poisson(1.5, (n, 3, 2, 6, 7)).astype(dtype) + 1
    g = zarr.open_group(str(tmp_path / "z.zarr"), mode="w", zarr_format=3)
    arr = g.create_array(
        "frames",
        shape=frames.shape,
        chunks=(1, *frames.shape[1:]),
        shards=(8, *frames.shape[1:]),
        dtype=dtype,
        compressors=frames_compressor(dtype),
        fill_value=0,
    )
    arr[:] = frames
    theirs = (tmp_path / "z.zarr" / "frames" / "c" / "0" / "0" / "0" / "0" / "0").read_bytes()
    assert encode_shard(frames, 8, dtype) == theirs
