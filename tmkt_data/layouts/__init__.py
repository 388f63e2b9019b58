"""Dataset layouts: one module per dataset tree, each exposing ``NAME``, ``scan(root, **options)``.

``scan`` returns a :class:`~tmkt_data.layouts.base.DatasetIndex`; the module
docstring documents the exact tree it expects. Each module registers its ``scan``
in :data:`LAYOUTS` (``@LAYOUTS.register(NAME)``); they are imported on the first lookup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tmkt_data.layouts.base import DatasetIndex, LayoutError, SampleSpec, load_sample
from tmkt_data.registry import Registry
from tmkt_data.sizes import parse_size_wh

#: Layout name (accepted by ``tmkt-data convert``) -> its ``scan(root, **options)``.
LAYOUTS: Registry[Callable[..., DatasetIndex]] = Registry(
    "dataset",
    LayoutError,
    modules=[
        f"tmkt_data.layouts.{name}"
        for name in ("cifar10dvs", "ncaltech101", "nmnist", "dvsgesture", "nomniglot", "cepdvs", "folder")
    ],
)


def check_layout_options(
    options: Any, name: Callable[[str], str] = lambda key: f"layout option {key}"
) -> dict[str, Any]:
    """The layout options with the shared ones checked, before any file is read.

    ``sensor_size`` (W, H: ``S``, ``"W,H"`` or ``[W, H]``) becomes ``[W, H]``; ``train_ratio``
    must be a number in (0, 1]. Other keys are left to the layout's ``scan``.

    Raises:
        LayoutError: not a table, or a bad value (one line, the option named by ``name(key)``).
    """
    if not isinstance(options, Mapping):
        raise LayoutError(f"layout options {options!r}: expected a table of KEY = VALUE")
    out = dict(options)
    if out.get("sensor_size") is not None:
        out["sensor_size"] = list(parse_size_wh(out["sensor_size"], name("sensor_size"), error=LayoutError))
    ratio = out.get("train_ratio")
    if ratio is not None and not (
        isinstance(ratio, int | float)
        and not isinstance(ratio, bool)
        and math.isfinite(ratio)
        and 0 < ratio <= 1
    ):
        raise LayoutError(f"{name('train_ratio')} {ratio!r}: expected a number, 0 < ratio <= 1")
    return out


def scan(dataset: str, root: str | Path, **options: Any) -> DatasetIndex:
    """Index the dataset tree at ``root`` laid out as ``dataset`` (one of :data:`LAYOUTS`)."""
    layout_scan = LAYOUTS.get(dataset)
    options = check_layout_options(options)
    root = Path(root).resolve()
    if not root.is_dir():
        raise LayoutError(f"{root}: raw root is not a folder")
    return layout_scan(root, **options)


__all__ = [
    "LAYOUTS",
    "DatasetIndex",
    "LayoutError",
    "SampleSpec",
    "check_layout_options",
    "load_sample",
    "scan",
]
