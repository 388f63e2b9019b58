"""tmkt_data: event-camera recordings to training-ready frame tensors.

``FrameDataset`` (a map-style dataset over a frame store, ``tmkt_data/dataset.py``) is
imported on first use, so ``import tmkt_data`` does not load zarr.
"""

from typing import TYPE_CHECKING, Any

from tmkt_data._numba_cache import ensure_numba_cache

ensure_numba_cache()  # before the first @njit(cache=True) kernel below is defined

from tmkt_data.binning import to_frames  # noqa: E402
from tmkt_data.errors import EventsError, FormatError, TmktError  # noqa: E402
from tmkt_data.events import EVENT_DTYPE, Recording, make_events  # noqa: E402
from tmkt_data.formats import FORMATS, detect_format, read_events  # noqa: E402

if TYPE_CHECKING:
    from tmkt_data.dataset import FrameDataset

__version__ = "0.1.0"

__all__ = [
    "EVENT_DTYPE",
    "FORMATS",
    "EventsError",
    "FormatError",
    "FrameDataset",
    "Recording",
    "TmktError",
    "__version__",
    "detect_format",
    "make_events",
    "read_events",
    "to_frames",
]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``FrameDataset`` imports zarr, which ``import tmkt_data`` should not pay for."""
    if name == "FrameDataset":
        from tmkt_data.dataset import FrameDataset

        return FrameDataset
    raise AttributeError(f"module 'tmkt_data' has no attribute {name!r}")
