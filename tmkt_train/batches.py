"""The training reader of a tmkt frame store (layout in ``docs/store-format.md``), in torch.

:class:`StoreBatches` is a ``torch.utils.data.IterableDataset`` of batches of
chosen store samples, used by ``tmkt_train`` (``DataLoader(ds, batch_size=None)``)::

    ds = StoreBatches("cifar10dvs.zarr", train_indices, 64, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=None, num_workers=2, pin_memory=True)
    for epoch in range(epochs):
        ds.set_epoch(epoch)          # before creating the epoch's iterator
        for batch in loader:         # {"frames": (B, T, 2, H, W), "labels": (B,), "index": (B,)}
            ...

Items are dicts of torch tensors: ``frames`` in the stored dtype (uint8, uint16,
float16, ...), ``labels`` and ``index`` (global sample indices into the store),
int64. Inside DataLoader workers the frames are allocated in shared memory, so
they reach the main process without a copy.

Order: a pure function of ``(seed, epoch, rank, world_size)`` (see
:meth:`StoreBatches.windows`):

1. :func:`epoch_order`: each pass over the indices in random order. Store samples are
   sorted by sample id, so a shard holds mostly one class: the order is a uniform
   permutation of the whole pass, so that every window (below) draws from every shard
   and every batch mixes the classes of the whole training split. Only when one window
   holds a whole pass in a single process are the samples kept shard by shard (shards
   in random order, samples shuffled inside each): the window's permutation then mixes
   the whole pass anyway, and each shard is read in one piece;
2. :func:`rank_slice`: rank r takes the r-th of ``world_size`` equal, contiguous
   parts (the remainder is left out), so every rank runs the same number of steps;
3. :func:`window_batches`: the rank's part is cut into consecutive *windows* of
   about ``window_shards`` shards' worth of samples (the unit one worker reads and
   decodes: memory, not mixing), samples are permuted inside each window and batches
   are consecutive slices of a window.

DataLoader workers take whole windows (window w: worker ``w % num_workers``);
each worker reads each shard of its window once (the compressed bytes of the
window's samples, one ``pread`` per shard, kept until the window ends) and
decompresses every sample once, straight into its batch. Each worker's sequence
is fixed, so the loader's output order is deterministic for a given number of
workers (it differs from the single-process order, which :meth:`StoreBatches.batches`
lists). With ``shuffle=False`` (evaluation) nothing is permuted: batches follow
index order.

:class:`~tmkt_data.store.ShardReader` decodes shard files directly (the index at the file's end,
one Blosc decompression per sample) when ``frames`` has tmkt's codec layout and
reads through ``zarr`` otherwise; it is opened lazily in the process that reads. It checks
every sample chunk against the crc32c recorded in its shard's completion record
(``docs/store-format.md``, Checksums): a damaged or missing shard stops the iteration with a
one-line :class:`~tmkt_data.store.StoreError` naming the file and ``tmkt-data verify`` (from a
DataLoader worker too), before the batch holding the sample is made.
With ``persistent_workers=True`` the workers keep the epoch they were started
with: use the default ``persistent_workers=False`` so ``set_epoch`` reaches them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from tmkt_data.store import ShardReader, geometry_of, open_store, store_location
from tmkt_data.store.frames import FetchedShard

__all__ = ["StoreBatches", "epoch_order", "n_batches", "rank_slice", "window_batches"]

_ORDER_SALT = 0x746D6B74  # "tmkt": seed material of the shard/sample order
_WINDOW_SALT = 0x77696E64  # "wind": seed material of the in-window permutation


def _worker() -> tuple[int, int]:
    """(worker id, number of workers) of the calling DataLoader worker; (0, 1) outside one."""
    info = get_worker_info()
    return (0, 1) if info is None else (int(info.id), int(info.num_workers))


def epoch_order(
    indices: np.ndarray,
    shard_samples: int,
    seed: int,
    epoch: int,
    shuffle: bool,
    *,
    by_shard: bool = False,
) -> np.ndarray:
    """Sample order of one pass: a uniform permutation of ``indices``, or with ``by_shard``
    shards in random order and samples shuffled within each shard (``shuffle=False``:
    sorted indices)."""
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    if not shuffle or idx.size == 0:
        return idx
    rng = np.random.default_rng([int(seed), int(epoch), _ORDER_SALT])
    if not by_shard:
        return rng.permutation(idx)
    shard = idx // shard_samples
    groups = np.split(idx, np.flatnonzero(np.diff(shard)) + 1)
    return np.concatenate([rng.permutation(groups[i]) for i in rng.permutation(len(groups))])


def rank_slice(order: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s equal, contiguous share of ``order`` (the remainder is left out)."""
    if world_size <= 1:
        return order
    per = len(order) // world_size
    return order[rank * per : (rank + 1) * per]


def window_batches(
    order: np.ndarray,
    batch_size: int,
    window: int,
    shard_samples: int,
    *,
    seed: int,
    epoch: int,
    rank: int,
    shuffle: bool,
) -> list[list[np.ndarray]]:
    """``order`` cut into windows of ``window`` samples, each cut into batches of ``batch_size``.

    With ``shuffle`` the samples of window ``w`` are permuted first (seeded by
    ``(seed, epoch, rank, w)``). Inside a batch, samples are grouped by shard (stable),
    so each shard's samples are decoded as one run. Every sample of ``order``
    appears in exactly one batch.
    """
    out: list[list[np.ndarray]] = []
    for w, a in enumerate(range(0, len(order), window)):
        win = order[a : a + window]
        if shuffle:
            rng = np.random.default_rng([int(seed), int(epoch), int(rank), w, _WINDOW_SALT])
            win = win[rng.permutation(len(win))]
        batches = []
        for i in range(0, len(win), batch_size):
            b = win[i : i + batch_size]
            batches.append(b[np.argsort(b // shard_samples, kind="stable")])
        out.append(batches)
    return out


def n_batches(n: int, batch_size: int, window: int) -> int:
    """Batches :func:`window_batches` makes of ``n`` samples."""
    full, rest = divmod(n, window)
    return full * -(-window // batch_size) + -(-rest // batch_size)


def _shared_empty(shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, torch.Tensor]:
    """A torch tensor in shared memory (as DataLoader's collate makes them) and a numpy view of it:
    sending it from a worker to the main process then needs no copy."""
    tdtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    numel = int(np.prod(shape))
    try:
        storage = torch.empty(0, dtype=tdtype)._typed_storage()._new_shared(numel)
        t = torch.empty(0, dtype=tdtype).new(storage).view(shape)
    except (AttributeError, RuntimeError):  # private API moved: allocate, then move (one copy)
        t = torch.empty(shape, dtype=tdtype).share_memory_()
    return t.numpy(), t


class _WindowShards:
    """The shards one window's samples live in, each read once (lazily) and kept while the window lasts."""

    def __init__(self, reader: ShardReader, samples: np.ndarray) -> None:
        self.reader = reader
        S = reader.shard_samples
        samples = np.sort(samples)
        shard = samples // S
        cuts = np.flatnonzero(np.diff(shard)) + 1
        #: shard -> its local rows in this window (sorted), and the fetched shard bytes
        self.rows = {int(p[0] // S): p - (p[0] // S) * S for p in np.split(samples, cuts) if p.size}
        self.fetched: dict[int, FetchedShard] = {}

    def decode_into(self, idx: np.ndarray, out: np.ndarray) -> None:
        """Frames of the window's samples ``idx`` into ``out`` (``(len(idx), T, 2, H, W)``)."""
        S = self.reader.shard_samples
        shard = idx // S
        bounds = [0, *(np.flatnonzero(np.diff(shard)) + 1).tolist(), len(idx)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            k = int(shard[a])
            rows = self.rows[k]
            got = self.fetched.get(k)
            if got is None:
                got = self.fetched[k] = self.reader.fetch(k, rows)
            got.decode_into(np.searchsorted(rows, idx[a:b] - k * S), out[a:b])


class StoreBatches(IterableDataset):
    """Batches ``{"frames", "labels", "index"}`` of the given store samples (see the module doc).

    Args:
        store: a complete tmkt store: a folder, or a URL (``s3://bucket/c10.zarr``).
        indices: sample indices to visit (e.g. the pairing index's train split), each once per pass.
        passes: passes over ``indices`` per epoch, each in its own shuffled order (pass ``r``
            of epoch ``e`` in the order of epoch ``e * passes + r``): longer epochs for small
            training sets, so evaluation runs less often for the same number of steps.
        batch_size: samples per batch (the last batch of the rank's epoch may be smaller).
        drop_last: leave out the rank's last batch when it is smaller than ``batch_size``
            (training; evaluation keeps every sample). With fewer samples than
            ``batch_size`` that leaves no batch at all.
        shuffle: shuffle shards, samples and windows (training) or keep index order (evaluation).
        seed: base of the epoch order (non-negative).
        rank, world_size: this process's share under DistributedDataParallel.
        window_shards: a window (the samples one worker reads and decodes together, and
            the batches are cut from) holds this many shards' worth of samples,
            ``window_shards * shard_samples`` rounded up to a multiple of ``batch_size``, so
            only the rank's last batch can be partial. Memory: about this many compressed
            shards per DataLoader worker. Batches mix the classes of the whole pass
            whatever its value (:func:`epoch_order`).

    Raises:
        StoreError: store missing, not a tmkt store or incomplete; while iterating, a shard file
            or record that is missing or does not match its checksums.
        ValueError: bad batch_size, window_shards, seed, rank/world_size, or an index
            outside the store.
    """

    def __init__(
        self,
        store: str | os.PathLike[str],
        indices: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        window_shards: int = 8,
        drop_last: bool = False,
        passes: int = 1,
    ) -> None:
        super().__init__()
        if passes < 1:
            raise ValueError(f"passes {passes}: expected 1 or more")
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: expected a positive number")
        if window_shards < 1:
            raise ValueError(f"window_shards {window_shards}: expected 1 or more")
        if seed < 0:
            raise ValueError(f"seed {seed}: expected a non-negative integer")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} of world_size {world_size}: expected 0 <= rank < world_size")
        self.path = store_location(store)
        group = open_store(self.path)
        geo = geometry_of(group)
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= geo.n_samples):
            raise ValueError(f"{self.path}: sample indices must lie in [0, {geo.n_samples})")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.window_shards = int(window_shards)
        self.drop_last = bool(drop_last)
        self.passes = int(passes)
        self.epoch = 0
        self.shard_samples = int(geo.shard_samples)
        self.frame_shape = tuple(int(v) for v in geo.frame_shape)
        self.dtype = np.dtype(geo.dtype)
        #: samples per window: window_shards shards' worth, rounded up to whole batches
        self.window = -(-self.window_shards * self.shard_samples // self.batch_size) * self.batch_size
        #: labels of every store sample
        self.labels = np.asarray(group["labels"][:], dtype=np.int64)
        self._reader: ShardReader | None = None
        self._reader_pid = -1

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows (call before each epoch)."""
        self.epoch = int(epoch)

    def windows(self, epoch: int | None = None) -> list[list[np.ndarray]]:
        """This rank's windows of ``epoch`` (default: the current one), each a list of batches."""
        epoch = self.epoch if epoch is None else int(epoch)
        # pass r of epoch e follows the order of epoch e * passes + r (passes = 1: epoch e's);
        # shard by shard only where one window holds the whole pass (it mixes everything then)
        by_shard = self.world_size == 1 and len(self.indices) <= self.window
        orders = [
            epoch_order(self.indices, self.shard_samples, self.seed, epoch * self.passes + r, self.shuffle,
                        by_shard=by_shard)
            for r in range(self.passes)
        ]  # fmt: skip
        order = rank_slice(np.concatenate(orders), self.rank, self.world_size)
        wins = window_batches(
            order,
            self.batch_size,
            self.window,
            self.shard_samples,
            seed=self.seed,
            epoch=epoch,
            rank=self.rank,
            shuffle=self.shuffle,
        )
        # windows hold whole batches, so only the last window's last batch can be partial
        if self.drop_last and wins and len(wins[-1][-1]) < self.batch_size:
            wins[-1].pop()
            if not wins[-1]:
                wins.pop()
        return wins

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` in single-process order (window by window)."""
        return [b for win in self.windows(epoch) for b in win]

    def __len__(self) -> int:
        """Batches per epoch on this rank (equal on every rank)."""
        n = len(rank_slice(np.tile(self.indices, self.passes), self.rank, self.world_size))
        if self.drop_last:
            return n // self.batch_size
        return n_batches(n, self.batch_size, self.window)

    @property
    def reader(self) -> ShardReader:
        """The calling process's :class:`ShardReader` of the store (opened on first use)."""
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader = ShardReader(self.path, self.frame_shape, self.dtype.str, self.shard_samples)
            self._reader_pid = os.getpid()
        return self._reader

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        wid, nw = _worker()
        reader = self.reader
        shared = get_worker_info() is not None
        for w, batches in enumerate(self.windows()):
            if w % nw != wid:
                continue
            shards = _WindowShards(reader, np.concatenate(batches))
            for idx in batches:
                shape = (len(idx), *self.frame_shape)
                if shared:
                    view, frames = _shared_empty(shape, reader.dtype)
                else:
                    view = np.empty(shape, dtype=reader.dtype)
                    frames = torch.from_numpy(view)
                shards.decode_into(idx, view)
                yield {
                    "frames": frames,
                    "labels": torch.from_numpy(self.labels[idx]),
                    "index": torch.from_numpy(idx),
                }
            del shards  # the window's shard bytes

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None  # opened again in the process that iterates
        state["_reader_pid"] = -1
        return state
