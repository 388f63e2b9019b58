"""Streaming a paired store into training: store batches, partners drawn on the device.

The store reader (``StoreBatches``, with its order helpers ``epoch_order`` and
``rank_slice``) lives in :mod:`tmkt_train.batches` and is re-exported here: batches of
DVS frames in their stored dtype (uint8, uint16 or float16: small to move) with
labels and sample indices, in an order that is a pure function of (seed, epoch,
rank, world_size), equal step counts on every rank, and batches that mix the
classes of several shards.

``RGBBank`` holds the encoded RGB images and the class pools on the device and
draws a partner of the same class for every DVS sample, anew at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tmkt_train.batches import StoreBatches, epoch_order, rank_slice

__all__ = ["RGBBank", "StoreBatches", "epoch_order", "rank_slice"]


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
    def from_pairs(cls, pairs, device: torch.device) -> RGBBank:  # tmkt_data.pairing.Pairs
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
