"""Per-sample arrays written by tmkt_data.store without zarr-python, against zarr-python's own files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from tmkt_data.store import write_sample_array

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
