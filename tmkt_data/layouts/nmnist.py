"""N-MNIST (``docs/formats.md`` §4.1): ATIS 40-bit ``.bin`` recordings in the official Train/Test folders.

Expected tree (as ``Train.zip`` and ``Test.zip`` extract)::

    <root>/Train/0/00002.bin
    <root>/Train/0/...
    ...
    <root>/Train/9/...
    <root>/Test/0/00004.bin
    ...
    <root>/Test/9/...

* ``Train`` and ``Test`` must both exist and each must hold the ten digit
  folders ``0`` ... ``9`` (a missing one is an error). A digit folder may be
  empty (handy for partial copies), but the tree must hold at least one
  ``.bin`` file overall. Other entries (hidden files, extra folders) are
  ignored. Files are the ``*.bin`` directly in a digit folder.
* Classes ``"0"`` ... ``"9"``, label = digit. Sensor 34 x 34, passed to the
  ATIS reader (``read_options["sensor_size"]``), so an event outside it is an
  error at load time.
* Split: official, ``Train`` = train, ``Test`` = test.

Sample ids are ``"<Train|Test>/<digit>/<file stem>"`` (``"Train/3/00012"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmkt_data.layouts import LAYOUTS
from tmkt_data.layouts.base import (
    DatasetIndex,
    LayoutError,
    SampleSpec,
    ascii_sorted,
    read_source_metadata,
    require_dir,
)
from tmkt_data.mapping import check_no_options

NAME = "nmnist"
LAYOUT_VERSION = 1

CLASSES = tuple(str(d) for d in range(10))
SENSOR_SIZE = (34, 34)
SPLIT_FOLDERS = (("Train", "train"), ("Test", "test"))


@LAYOUTS.register(NAME)
def scan(root: Path, **options: Any) -> DatasetIndex:
    """Index an N-MNIST tree (see the module docstring).

    Raises:
        LayoutError: missing ``Train``/``Test`` or digit folder, no ``.bin`` at all, unknown option.
    """
    check_no_options(NAME, options, LayoutError)
    root = Path(root)
    samples: list[SampleSpec] = []
    counts: dict[str, dict[str, int]] = {}
    for folder, split in SPLIT_FOLDERS:
        base = require_dir(root / folder, f"N-MNIST {folder}/<digit>/*.bin")
        counts[split] = {}
        for label, digit in enumerate(CLASSES):
            ddir = require_dir(base / digit, f"N-MNIST {folder}/{digit}/*.bin (digit folders 0-9)")
            names = ascii_sorted(
                [e.name for e in ddir.iterdir() if e.is_file() and e.suffix.lower() == ".bin"]
            )
            counts[split][digit] = len(names)
            for name in names:
                samples.append(
                    SampleSpec(
                        sample_id=f"{folder}/{digit}/{Path(name).stem}",
                        path=f"{folder}/{digit}/{name}",
                        label=label,
                        split=split,
                    )
                )
    if not samples:
        raise LayoutError(
            f"{root}: no .bin recordings, expected N-MNIST Train/<digit>/*.bin and Test/<digit>/*.bin"
        )
    samples.sort(key=lambda s: s.sample_id)
    notes: dict[str, Any] = {"layout_version": LAYOUT_VERSION}
    meta = read_source_metadata(root)  # a simulator's tree in this layout must stay marked synthetic
    if meta is not None:
        notes["source_metadata_file"], notes["source_metadata"] = meta
    return DatasetIndex(
        dataset=NAME,
        root=root,
        classes=list(CLASSES),
        samples=samples,
        sensor_size=SENSOR_SIZE,
        read_options={"format": "atis_bin", "sensor_size": SENSOR_SIZE},
        split_info={"kind": "official", "train": "Train/", "test": "Test/", "counts": counts},
        notes=notes,
    )
