"""CIFAR-10 and CIFAR-100, "python version" pickle batches.

CIFAR-10 (``cifar-10-python.tar.gz`` extracted)::

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5   train, 10,000 each
    <root>/cifar-10-batches-py/test_batch                      test
    <root>/cifar-10-batches-py/batches.meta                    label_names

CIFAR-100 (``cifar-100-python.tar.gz`` extracted)::

    <root>/cifar-100-python/train, test      fine_labels and coarse_labels
    <root>/cifar-100-python/meta             fine_label_names, coarse_label_names

``root`` may also be the ``cifar-10-batches-py`` / ``cifar-100-python`` folder
itself. Each batch is a pickled dict with ``data`` (uint8, ``(n, 3072)``: 1,024
red, then green, then blue values of a 32x32 image, row-major) and the label
list(s); keys may be bytes (the original Python 2 pickles) or str.

The pickles are read with a restricted unpickler that only rebuilds plain
Python values and numpy arrays, so a hostile file cannot run code.

* Classes: the meta file's label names (CIFAR-10 ``label_names``; CIFAR-100
  ``fine_label_names`` or, with ``labels="coarse"``, ``coarse_label_names``,
  the 20 superclasses that CEP-DVS uses).
* Split: official (``data_batch_*`` / ``train`` = train, ``test_batch`` /
  ``test`` = test).
* Source ids: ``"train/<i>"`` / ``"test/<i>"``, ``i`` the 0-based position in
  the split (CIFAR-10 train: batches 1..5 in order), zero-padded to 5 digits.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from tmkt_data.rgb import RGB_SOURCES, RGBError, RGBSet, no_options, require_root

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not plain data)")


def read_pickle(path: Path, expected: str) -> dict:
    """Load a CIFAR pickle (a dict) safely; RGBError naming the file when missing or malformed."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise RGBError(f"{path}: missing file, expected {expected}") from None
    except OSError as err:
        raise RGBError(f"{path}: cannot read ({err})") from None
    try:
        obj = _SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as err:  # any decoding failure is a malformed file
        raise RGBError(f"{path}: not a CIFAR python pickle ({err}), expected {expected}") from None
    if not isinstance(obj, dict):
        raise RGBError(f"{path}: pickle holds a {type(obj).__name__}, expected a dict ({expected})")
    return obj


def _get(d: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    have = ", ".join(sorted(k.decode() if isinstance(k, bytes) else str(k) for k in d))
    raise RGBError(f"{path}: no {key!r} entry (has {have})")


def _names(d: dict, key: str, path: Path) -> list[str]:
    names = _get(d, key, path)
    try:
        out = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except (TypeError, UnicodeDecodeError):
        raise RGBError(f"{path}: {key!r} is not a list of names") from None
    if not out or len(set(out)) != len(out):
        raise RGBError(f"{path}: {key!r} holds {len(out)} names, expected distinct class names")
    return out


def _batch(path: Path, label_key: str, n_classes: int, expected: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 32, 32, 3) uint8, labels (n,))`` of one batch file."""
    d = read_pickle(path, expected)
    data = np.asarray(_get(d, "data", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise RGBError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (n, 3072)")
    try:
        labels = np.asarray(_get(d, label_key, path), dtype=np.int64)
    except (TypeError, ValueError):
        raise RGBError(f"{path}: {label_key!r} is not a list of integers") from None
    if labels.shape != (data.shape[0],):
        raise RGBError(f"{path}: {labels.shape[0] if labels.ndim else 0} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise RGBError(f"{path}: labels outside 0..{n_classes - 1}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _folder(root: Path, name: str, marker: str) -> Path:
    if (root / name).is_dir():
        return root / name
    if (root / marker).exists():
        return root
    raise RGBError(f"{root / name}: missing folder, expected the extracted {name}/ (holding {marker})")


def _assemble(
    kind: str, root: Path, parts: list[tuple[str, np.ndarray, np.ndarray]], names: list[str], info: dict
) -> RGBSet:
    images = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([p[2] for p in parts])
    split, ids, seen = [], [], {"train": 0, "test": 0}
    for sp, imgs, _ in parts:
        base = seen[sp]
        seen[sp] += len(imgs)
        split += [sp] * len(imgs)
        ids += [f"{sp}/{base + i:05d}" for i in range(len(imgs))]
    return RGBSet(kind, str(root), images, labels, names, ids, split, info)


@RGB_SOURCES.register("cifar10")
def load_cifar10(root: str | Path | None, **options: Any) -> RGBSet:
    """Read CIFAR-10's python batches (see the module docstring)."""
    no_options("cifar10", options)
    base = _folder(require_root("cifar10", root), CIFAR10_FOLDER, "batches.meta")
    meta = base / "batches.meta"
    names = _names(read_pickle(meta, "CIFAR-10 batches.meta with label_names"), "label_names", meta)
    expected = "a CIFAR-10 batch (dict with data and labels)"
    parts = []
    for name in (*CIFAR10_TRAIN, "test_batch"):
        imgs, labs = _batch(base / name, "labels", len(names), expected)
        parts.append(("test" if name == "test_batch" else "train", imgs, labs))
    info = {"split": {"kind": "official", "train": list(CIFAR10_TRAIN), "test": "test_batch"}}
    return _assemble("cifar10", base, parts, names, info)


@RGB_SOURCES.register("cifar100")
def load_cifar100(root: str | Path | None, *, labels: str = "fine", **options: Any) -> RGBSet:
    """Read CIFAR-100's python pickles with ``labels="fine"`` (100 classes) or ``"coarse"`` (20)."""
    no_options("cifar100", options)
    if labels not in ("fine", "coarse"):
        raise RGBError(f"cifar100: labels {labels!r}, expected 'fine' or 'coarse'")
    base = _folder(require_root("cifar100", root), CIFAR100_FOLDER, "meta")
    meta = base / "meta"
    names = _names(
        read_pickle(meta, "CIFAR-100 meta with fine_label_names and coarse_label_names"),
        f"{labels}_label_names",
        meta,
    )
    expected = "a CIFAR-100 pickle (dict with data, fine_labels and coarse_labels)"
    parts = []
    for name in ("train", "test"):
        imgs, labs = _batch(base / name, f"{labels}_labels", len(names), expected)
        parts.append((name, imgs, labs))
    info = {"split": {"kind": "official", "train": "train", "test": "test"}, "labels": labels}
    return _assemble("cifar100", base, parts, names, info)
