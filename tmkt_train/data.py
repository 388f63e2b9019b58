"""Streaming a paired store into training: shard-aligned batches, partners drawn on the device.

``StoreBatches`` yields batches of DVS frames in their stored dtype (uint8,
uint16 or float16: small to move) with labels and sample indices. Its order is
a pure function of (seed, epoch): shards in shuffled order, samples shuffled
inside each shard, so a batch mostly touches one shard and each shard file is
decoded once per worker. Ranks take equal contiguous parts of that order (every
rank runs the same number of steps); DataLoader workers take every n-th batch,
which keeps the loader's output order deterministic.

``RGBBank`` holds the encoded RGB images and the class pools on the device and
draws a partner of the same class for every DVS sample, anew at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info


def epoch_order(indices: np.ndarray, shard_samples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Sample order of one epoch: shards shuffled, samples shuffled within each shard."""
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    if not shuffle or idx.size == 0:
        return idx
    rng = np.random.default_rng([int(seed), int(epoch), 0x746D6B74])
    shard = idx // shard_samples
    groups = np.split(idx, np.flatnonzero(np.diff(shard)) + 1)
    return np.concatenate([rng.permutation(groups[i]) for i in rng.permutation(len(groups))])


def rank_slice(order: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s equal, contiguous share of ``order`` (the remainder is left out)."""
    if world_size <= 1:
        return order
    per = len(order) // world_size
    return order[rank * per : (rank + 1) * per]


class StoreBatches(IterableDataset):
    """Batches ``{"frames", "labels", "index"}`` of the given store samples, in epoch order.

    Args:
        store: path of a complete tmkt store.
        indices: sample indices to visit (e.g. the pairing index's train split).
        batch_size: samples per batch (the last batch of an epoch may be smaller).
        shuffle: shuffle shards and samples (training) or keep index order (evaluation).
        seed: base of the epoch order.
        rank, world_size: this process's share under DistributedDataParallel.
    """

    def __init__(
        self,
        store: str,
        indices: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        import zarr

        super().__init__()
        self.store = str(store)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        g = zarr.open_group(self.store, mode="r")
        self.shard_samples = int(g.attrs["shard_samples"])
        self.labels = np.asarray(g["labels"][:], dtype=np.int64)
        self._frames = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self) -> list[np.ndarray]:
        """This rank's batches of the current epoch."""
        order = rank_slice(
            epoch_order(self.indices, self.shard_samples, self.seed, self.epoch, self.shuffle),
            self.rank,
            self.world_size,
        )
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def __len__(self) -> int:
        n = len(rank_slice(self.indices, self.rank, self.world_size))
        return -(-n // self.batch_size)

    def _read(self, idx: np.ndarray, cache: dict) -> np.ndarray:
        """Frames of ``idx`` read through whole-shard blocks (the last block is cached)."""
        if self._frames is None:
            import zarr

            self._frames = zarr.open_group(self.store, mode="r")["frames"]
        S = self.shard_samples
        out = np.empty((len(idx), *self._frames.shape[1:]), dtype=self._frames.dtype)
        shard = idx // S
        for s in np.unique(shard):
            if cache.get("shard") != s:
                cache["shard"] = s
                cache["block"] = self._frames[s * S : (s + 1) * S]
            sel = shard == s
            out[sel] = cache["block"][idx[sel] - s * S]
        return out

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        cache: dict = {}
        for k, idx in enumerate(self.batches()):
            if k % nw != wid:
                continue
            yield {
                "frames": torch.from_numpy(self._read(idx, cache)),
                "labels": torch.from_numpy(self.labels[idx]),
                "index": torch.from_numpy(idx),
            }


@dataclass
class RGBBank:
    """Encoded RGB images and class pools on the device; draws same-class partners.

    Attributes:
        images: (M, 2, H, W) float16 on the device.
        labels: (M,) int64 DVS class of each image.
        pool_offsets: (C + 1,) CSR offsets; pool_rgb: (P,) image rows grouped by class.
    """

    images: Tensor
    labels: Tensor
    pool_offsets: Tensor
    pool_rgb: Tensor

    @classmethod
    def from_pairs(cls, pairs, device: torch.device) -> RGBBank:  # noqa: ANN001 - tmkt_data.pairing.Pairs
        images = np.asarray(pairs.rgb_images[:], dtype=np.float16)
        return cls(
            torch.from_numpy(images).to(device),
            torch.from_numpy(np.asarray(pairs.rgb_labels, dtype=np.int64)).to(device),
            torch.from_numpy(np.asarray(pairs.pool_offsets, dtype=np.int64)).to(device),
            torch.from_numpy(np.asarray(pairs.pool_rgb, dtype=np.int64)).to(device),
        )

    def draw(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Row of a uniformly drawn pool image of class ``y[b]`` for each b, (B,) int64."""
        lo, hi = self.pool_offsets[y], self.pool_offsets[y + 1]
        u = torch.rand(y.shape[0], device=y.device, generator=generator)
        pos = lo + torch.minimum((u * (hi - lo)).long(), (hi - lo - 1).clamp(min=0))
        return self.pool_rgb[pos]

    def sequences(self, rows: Tensor, T: int) -> Tensor:
        """The partners as (B, T, 2, H, W) float32: the image repeated over T steps."""
        return self.images[rows].float().unsqueeze(1).expand(-1, T, -1, -1, -1)

    def check_labels(self, rows: Tensor, y: Tensor) -> None:
        """Raise if any drawn partner's class differs from its DVS sample's."""
        if not torch.equal(self.labels[rows], y):
            raise RuntimeError("an RGB partner has another class than its DVS sample")
