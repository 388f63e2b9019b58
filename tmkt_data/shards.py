"""Direct decoding of a tmkt store's ``frames`` shard files, without torch.

:class:`ShardReader` reads samples of one shard file at a time: when ``frames`` has
the codec layout :func:`tmkt_data.store.create_store` writes (one sample per inner
chunk, ``bytes`` + ``blosc``, the shard index at the file's end), it reads the
index and the samples' compressed bytes with ``pread`` and Blosc-decompresses each
sample straight into the output; any other layout is read through ``zarr``. A
reader holds no open file between calls; create one per process (lazily, in the
process that reads). Used by :class:`tmkt_data.loader.StoreBatches` (batches) and
:class:`tmkt_data.dataset.FrameDataset` (single samples).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.store import StoreError, shard_file

__all__ = ["ShardReader"]

_EMPTY = np.uint64(2**64 - 1)  # offset/length of a chunk the shard does not hold (all fill value)


def _direct_layout(meta: dict[str, Any], frame_shape: tuple[int, ...], shard_samples: int) -> dict | None:
    """Facts for decoding shard files without zarr, or None if ``frames`` is laid out otherwise.

    Accepted: one ``sharding_indexed`` codec with one sample per inner chunk, inner
    codecs ``bytes`` (little endian) + ``blosc``, index ``bytes`` (little) + ``crc32c``
    at the end, default chunk keys with ``/``: what :func:`tmkt_data.store.create_store` writes.
    """
    try:
        (codec,) = meta["codecs"]
        conf = codec["configuration"]
        inner = [c["name"] for c in conf["codecs"]]
        index = [c["name"] for c in conf["index_codecs"]]
        ok = (
            codec["name"] == "sharding_indexed"
            and list(conf["chunk_shape"]) == [1, *frame_shape]
            and list(meta["chunk_grid"]["configuration"]["chunk_shape"]) == [shard_samples, *frame_shape]
            and inner == ["bytes", "blosc"]
            and conf["codecs"][0].get("configuration", {}).get("endian", "little") == "little"
            and index in (["bytes", "crc32c"], ["bytes"])
            and conf["index_codecs"][0].get("configuration", {}).get("endian", "little") == "little"
            and conf.get("index_location", "end") == "end"
            and meta["chunk_key_encoding"]["name"] == "default"
            and meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/") == "/"
        )
        if not ok:
            return None
        dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        fill = meta.get("fill_value", 0)
        return {"dtype": dtype, "fill": 0 if fill is None else fill, "crc": index[-1] == "crc32c"}
    except (KeyError, TypeError, ValueError):
        return None


class _Fetched:
    """The samples of one block as read from its shard: compressed (direct) or decoded (zarr).

    ``decode_into(sel, out)`` writes the block's samples ``sel`` (positions in the
    block) into ``out`` (a C-contiguous ``(len(sel), T, 2, H, W)`` array): one Blosc
    decompression per sample straight into ``out``, or one copy for zarr-decoded blocks.
    """

    __slots__ = ("buf", "frames", "lengths", "offsets", "reader", "rows", "sfile")

    def __init__(self, reader: ShardReader, sfile: Path, rows: np.ndarray) -> None:
        self.reader, self.sfile, self.rows = reader, sfile, rows
        self.frames: np.ndarray | None = None
        self.buf: memoryview | None = None
        self.offsets = self.lengths = np.empty(0, dtype=np.int64)

    def decode_into(self, sel: np.ndarray, out: np.ndarray) -> None:
        if self.frames is not None:
            np.take(self.frames, sel, axis=0, out=out)
            return
        from numcodecs import blosc

        flat = out.reshape(len(sel), -1).view(np.uint8)
        nbytes = self.reader.sample_bytes
        for j, i in enumerate(sel.tolist()):
            a = int(self.offsets[i])
            if a < 0:
                out[j] = self.reader.layout["fill"]
                continue
            src = self.buf[a : a + int(self.lengths[i])]
            # bytes 4-8 of the Blosc header: the decompressed size
            if len(src) < 16 or int.from_bytes(src[4:8], "little") != nbytes:
                raise StoreError(f"{self.sfile}: chunk of sample row {int(self.rows[i])} has the wrong size")
            blosc.decompress(src, flat[j])


class ShardReader:
    """Reads the samples of one shard file at a time (see :meth:`fetch`); one per process."""

    def __init__(self, path: Path, frame_shape: tuple[int, ...], dtype: str, shard_samples: int) -> None:
        self.path = path
        self.frame_shape = tuple(frame_shape)
        self.shard_samples = shard_samples
        meta = json.loads((path / "frames" / "zarr.json").read_text())
        self.layout = _direct_layout(meta, self.frame_shape, shard_samples)
        self.dtype = self.layout["dtype"] if self.layout else np.dtype(dtype)
        self.sample_bytes = int(np.prod(self.frame_shape)) * self.dtype.itemsize
        self._zarr: Any = None
        self._files: dict[int, Path] = {}  # shard -> file (pathlib joins cost ~10 us per read)

    def read(self, k: int, rows: np.ndarray) -> np.ndarray:
        """Frames ``(len(rows), T, 2, H, W)`` of shard ``k``'s local sample rows, in the order given."""
        out = np.empty((len(rows), *self.frame_shape), dtype=self.dtype)
        self.fetch(k, rows).decode_into(np.arange(len(rows)), out)
        return out

    def fetch(self, k: int, rows: np.ndarray) -> _Fetched:
        """Shard ``k``'s local rows ``rows``: one read of their byte range (zarr: decoded frames)."""
        sfile = self._files.get(k)
        if sfile is None:
            sfile = self._files[k] = shard_file(self.path, k)
        got = _Fetched(self, sfile, rows)
        if self.layout is None:
            got.frames = self._read_zarr(k, rows)
        else:
            self._read_direct(k, rows, got)
        return got

    def _read_zarr(self, k: int, rows: np.ndarray) -> np.ndarray:
        if self._zarr is None:
            import zarr

            self._zarr = zarr.open_group(str(self.path), mode="r")["frames"]
        start = k * self.shard_samples
        lo, hi = int(rows.min()), int(rows.max()) + 1
        block = np.asarray(self._zarr[start + lo : start + hi])
        if len(rows) == hi - lo and np.array_equal(rows, np.arange(lo, hi)):
            return block
        return np.take(block, rows - lo, axis=0)

    def _read_direct(self, k: int, rows: np.ndarray, got: _Fetched) -> None:
        n_index = self.shard_samples
        sfile = got.sfile
        got.offsets = np.full(len(rows), -1, dtype=np.int64)  # -1: chunk not stored (fill value)
        got.lengths = np.zeros(len(rows), dtype=np.int64)
        try:
            fd = os.open(sfile, os.O_RDONLY)
        except FileNotFoundError:
            return  # zarr does not write a shard whose chunks all equal the fill value
        try:
            size = os.fstat(fd).st_size
            tail = 16 * n_index + (4 if self.layout["crc"] else 0)
            if size < tail:
                raise StoreError(f"{sfile}: {size} bytes, shorter than its {tail}-byte index; run verify")
            raw_index = os.pread(fd, tail, size - tail)
            if self.layout["crc"]:
                import google_crc32c

                crc = np.uint32(google_crc32c.value(raw_index[:-4])).tobytes()
                if crc != raw_index[-4:]:
                    raise StoreError(f"{sfile}: shard index checksum mismatch; run tmkt-data verify")
            index = np.frombuffer(raw_index, dtype="<u8", count=2 * n_index).reshape(n_index, 2)
            sel = index[rows]
            present = sel[:, 0] != _EMPTY
            if not present.any():
                return
            starts, lengths = sel[present, 0].astype(np.int64), sel[present, 1].astype(np.int64)
            base = int(starts.min())
            end = int((starts + lengths).max())
            if end > size - tail:
                raise StoreError(f"{sfile}: chunk extends past the shard data; run tmkt-data verify")
            got.buf = memoryview(os.pread(fd, end - base, base))
        finally:
            os.close(fd)
        got.offsets[present] = starts - base
        got.lengths[present] = lengths
