"""Frame resizing against torch.nn.functional.interpolate, the recipe it reproduces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tmkt_data.errors import EventsError
from tmkt_data.resize import resize_frames


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((10, 2, 128, 128), (48, 48)),  # CIFAR10-DVS recipe
        ((10, 2, 180, 240), (48, 48)),  # N-Caltech101, non-square
        ((12, 2, 250, 250), (28, 28)),  # N-Omniglot crop
        ((3, 2, 34, 34), (32, 32)),
        ((1, 2, 34, 34), (64, 64)),  # upsampling
        ((2, 1, 5, 7), (9, 3)),  # mixed up/down
        ((1, 1, 1, 1), (4, 4)),
    ],
)
def test_bilinear_equals_torch_interpolate(shape: tuple, size: tuple) -> None:
    x = np.random.default_rng(sum(shape)).poisson(2.0, shape).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x), size=size, mode="bilinear").numpy()
    got = resize_frames(x, size, "bilinear")
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)  # float32 rounding only


def test_area_and_none() -> None:
    x = np.random.default_rng(1).random((2, 2, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(
        resize_frames(x, (4, 4), "area"), x.reshape(2, 2, 4, 2, 4, 2).mean((3, 5)), rtol=1e-6
    )
    assert np.array_equal(resize_frames(x, (4, 4), "none"), x)
    assert np.array_equal(resize_frames(x, (8, 8)), x)  # same size: untouched
    with pytest.raises(EventsError, match="nearest"):
        resize_frames(x, (4, 4), "nearest")
