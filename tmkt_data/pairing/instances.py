"""Instance links: which RGB image a DVS recording shows (or was simulated from).

N-MNIST/MNIST and N-Caltech101/Caltech101 link by file name (:data:`INSTANCE_RULES`);
synthetic stores link to the RGB source they were simulated from through the
simulator's samples table (:func:`synthetic_sources`). :func:`resolve_link` picks the
link for a store and an RGB source; :class:`InstanceLink` answers per sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tmkt_data.pairing.common import PairingError


def _nmnist_mnist(
    sample_id: str, dvs_class: str, rgb_ids: dict[str, int], rgb_classes: list[str]
) -> str | None:
    """N-MNIST ``"Train/3/00012"`` -> MNIST ``"train/00011"``: file number k is MNIST index k - 1.

    Assumes N-MNIST numbers its files 1-based over the MNIST order of the same
    split (not verified against the full archive). It is consistent with what
    we can check: SLAYER's N-MNIST train samples ``1, 2, 3, 4, 6`` carry labels
    5, 0, 4, 1, 2, which are MNIST train images 0, 1, 2, 3, 5; 0-based
    numbering would give 0, 4, 1, 9, 1. A label mismatch under this rule is an
    error with ``instance=True``, so a wrong convention cannot pass silently.
    """
    parts = sample_id.split("/")
    if len(parts) != 3 or parts[0] not in ("Train", "Test") or not parts[2].isdigit() or int(parts[2]) < 1:
        return None
    return f"{'train' if parts[0] == 'Train' else 'test'}/{int(parts[2]) - 1:05d}"


def _ncaltech_caltech(
    sample_id: str, dvs_class: str, rgb_ids: dict[str, int], rgb_classes: list[str]
) -> str | None:
    """N-Caltech101 ``"<class>/image_0001"`` -> Caltech101 ``"<rgb class>/image_0001.jpg"``."""
    stem = sample_id.rsplit("/", 1)[-1]
    for rc in rgb_classes:
        for ext in (".jpg", ".jpeg"):
            cand = f"{rc}/{stem}{ext}"
            if cand in rgb_ids:
                return cand
    return None


#: (store dataset, RGB source) -> instance rule (sample id -> RGB source id) and its description.
INSTANCE_RULES: dict[tuple[str, str], tuple[Callable[..., str | None], str]] = {
    ("nmnist", "mnist"): (
        _nmnist_mnist,
        "N-MNIST <Train|Test>/<digit>/<k> <-> MNIST <train|test> index k - 1 (1-based file numbers)",
    ),
    ("ncaltech101", "caltech101"): (
        _ncaltech_caltech,
        "N-Caltech101 <class>/image_NNNN <-> Caltech101 <mapped class>/image_NNNN.jpg",
    ),
}

#: The instance link of a synthetic store (see :func:`synthetic_sources`).
SYNTHETIC_RULE = (
    "synthetic store: the sample's source_path is a file of the simulator's samples table "
    "(attrs.source_metadata.samples), whose source_id is the RGB image it was simulated from"
)


def synthetic_sources(
    attrs: dict[str, Any], source_paths: list[str] | None, rgb_kind: str
) -> tuple[list[str | None] | None, str | None]:
    """Per store sample, the id of the RGB image it was simulated from (None: not in the table).

    The link holds for a store with ``attrs.synthetic`` whose
    ``attrs.source_metadata`` (the simulator's ``synthetic.json``) names
    ``rgb_kind`` as its source and holds the samples table (columns ``file``
    and ``source_id``; ``file`` is the recording's path in the raw tree, which
    is the store's ``source_path``).

    Returns:
        ``(ids, None)`` when the link holds; ``(None, reason)`` for a synthetic
        store where it does not (the reason in words); ``(None, None)`` for a
        store that is not synthetic.
    """
    if not attrs.get("synthetic", False):
        return None, None
    meta = attrs.get("source_metadata")
    if not isinstance(meta, dict):
        return None, "the synthetic store has no source_metadata (the simulator's synthetic.json)"
    kind = (meta.get("source") or {}).get("kind") if isinstance(meta.get("source"), dict) else None
    if kind != rgb_kind:
        return None, f"the synthetic store was simulated from {kind!r} images, not {rgb_kind!r}"
    table = meta.get("samples")
    cols = table.get("columns") if isinstance(table, dict) else None
    if not isinstance(cols, list) or "file" not in cols or "source_id" not in cols:
        return None, "the synthetic store's source_metadata has no samples table with file and source_id"
    if source_paths is None:
        return None, "the synthetic store has no source_path array"
    fi, si = cols.index("file"), cols.index("source_id")
    by_file = {str(r[fi]): str(r[si]) for r in table.get("rows", []) if r[fi] is not None}
    return [by_file.get(p) for p in source_paths], None


@dataclass(frozen=True)
class InstanceLink:
    """The instance link of a store: ``rule`` in words (recorded as ``instance_rule``) and either
    the source id of every store sample (``by_sample``, synthetic stores) or a file-name rule
    (``by_name``, see :data:`INSTANCE_RULES`)."""

    rule: str
    by_sample: list[str | None] | None = None
    by_name: Callable[..., str | None] | None = None

    def source_id(
        self, i: int, sample_id: str, dvs_class: str, rgb_ids: dict[str, int], rgb_classes: list[str]
    ) -> str | None:
        """The RGB source id of store sample ``i`` (None: unknown)."""
        if self.by_sample is not None:
            return self.by_sample[i]
        if self.by_name is not None:
            return self.by_name(sample_id, dvs_class, rgb_ids, rgb_classes)
        return None


def resolve_link(
    attrs: dict[str, Any], source_paths: list[str] | None, dataset: str, rgb_kind: str, *, instance: bool
) -> tuple[InstanceLink | None, str | None]:
    """The instance link of a store (with attributes ``attrs``) and an RGB source, and a warning.

    A synthetic store links through its samples table (its files are not the published
    dataset's recordings: no file-name rule); another store by :data:`INSTANCE_RULES`.
    The warning (or None) says why a synthetic store has no link.

    Raises:
        PairingError: ``instance`` is asked for and there is no link.
    """
    synth_ids, synth_gap = synthetic_sources(attrs, source_paths, rgb_kind)
    rule = INSTANCE_RULES.get((dataset, rgb_kind)) if synth_gap is None else None
    link = None
    if synth_ids is not None:
        link = InstanceLink(SYNTHETIC_RULE, by_sample=synth_ids)
    elif rule is not None:
        link = InstanceLink(rule[1], by_name=rule[0])
    if instance and link is None:
        known = ", ".join(f"{d}+{k}" for d, k in INSTANCE_RULES)
        raise PairingError(
            f"--instance: no instance correspondence for {dataset} + {rgb_kind} (defined for {known}, "
            f"and for a synthetic store paired with its source{': ' + synth_gap if synth_gap else ''})"
        )
    warning = None
    if synth_gap:
        warning = f"{synth_gap}: the RGB sources of DVS val/test samples are unknown and stay in the pools"
    return link, warning
