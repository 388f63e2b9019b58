"""tmkt_data: event-camera recordings to training-ready frame tensors."""

from tmkt_data.binning import to_frames
from tmkt_data.errors import EventsError, FormatError, TmktError
from tmkt_data.events import EVENT_DTYPE, Recording, make_events
from tmkt_data.formats import FORMATS, detect_format, read_events

__version__ = "0.1.0"

__all__ = [
    "EVENT_DTYPE",
    "FORMATS",
    "EventsError",
    "FormatError",
    "Recording",
    "TmktError",
    "__version__",
    "detect_format",
    "make_events",
    "read_events",
    "to_frames",
]
