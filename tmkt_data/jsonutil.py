"""JSON of numpy values: the one ``default=`` hook the metadata and report writers share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def json_default(o: Any) -> Any:
    """numpy scalars and arrays and paths as plain JSON values (``json.dumps(default=...)``)."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
