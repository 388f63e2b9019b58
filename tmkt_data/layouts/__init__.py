"""Dataset layouts: one module per dataset tree, each exposing ``NAME``, ``scan(root, **options)``.

``scan`` returns a :class:`~tmkt_data.layouts.base.DatasetIndex`; the module
docstring documents the exact tree it expects.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from tmkt_data.layouts.base import DatasetIndex, LayoutError, SampleSpec, load_sample

#: Layout names accepted by ``tmkt-data convert``.
LAYOUTS = ("cifar10dvs", "ncaltech101", "nmnist", "dvsgesture", "nomniglot", "cepdvs", "folder")


def scan(dataset: str, root: str | Path, **options: Any) -> DatasetIndex:
    """Index the dataset tree at ``root`` laid out as ``dataset`` (one of :data:`LAYOUTS`)."""
    if dataset not in LAYOUTS:
        raise LayoutError(f"unknown dataset {dataset!r}, expected one of {', '.join(LAYOUTS)}")
    root = Path(root).resolve()
    if not root.is_dir():
        raise LayoutError(f"{root}: raw root is not a folder")
    module = importlib.import_module(f"tmkt_data.layouts.{dataset}")
    return module.scan(root, **options)


__all__ = ["LAYOUTS", "DatasetIndex", "LayoutError", "SampleSpec", "load_sample", "scan"]
