"""Pair a frame store's DVS samples with RGB images of the same class (``tmkt-data pair``).

The pairing index and the encoded RGB images live in the store itself, in the
groups ``rgb/`` and ``pairs/`` (layout in ``docs/store-format.md``), so
training never touches the raw image files. Both groups are written under
temporary names (``_rgb_tmp``, ``_pairs_tmp``) and renamed into place only when
everything succeeded: a failed run leaves the store as it was.

Rules (each recorded in ``pairs/`` attributes):

* Classes match by name, case- and punctuation-insensitively (only letters
  and digits count); a class map (TOML, see :func:`load_class_map`) settles
  real mismatches. Shipped maps (``tmkt_data/classmaps/*.toml``) apply
  automatically to their dataset/source combination. An unmatched class on
  either side is an error listing them all, unless ``drop_unmatched``.
* DVS splits: the store's split array (``split`` by default) gives train and
  test (valid samples only); ``val`` is carved from train, per class; then
  ``dvs_fraction`` or ``dvs_per_class`` keeps part of the remaining train
  samples per class. Both selections order a class's samples by
  ``sha256("<seed>/<purpose>/<sample_id>")`` (purpose ``val``, then
  ``dvs_fraction`` for both train selections), so they are deterministic,
  independent of other classes and samples, and a smaller fraction or count
  keeps a subset of a larger one's samples.

  - ``n_val = floor(val_fraction * n + 1/2)`` (round half up), at most ``n - 1``;
    or exactly ``val_per_class`` (the class needs at least ``val_per_class + 1``).
  - ``n_keep = ceil(dvs_fraction * m)`` of the ``m`` remaining, at least 1;
    or exactly ``dvs_per_class`` (the class needs at least that many).

* Instance links (which RGB image a recording shows): N-MNIST/MNIST and
  N-Caltech101/Caltech101 by file name (:data:`INSTANCE_RULES`), and synthetic
  stores paired with the RGB source they were simulated from, through the
  simulator's samples table (:func:`synthetic_sources`).
* RGB pools: for each DVS class, the RGB images of its matched RGB classes in
  the RGB source's train split. Where the instance link is known, the RGB
  images that are the sources of DVS val or test samples are left out of the
  pools (no appearance leak into validation/test), with or without
  ``instance``, unless ``exclude_eval_sources=False`` (the reference's pools).
* Every pair has equal labels: asserted before writing and by :func:`read_pairs`.

Modules:

- :mod:`~tmkt_data.pairing.classmap`: class maps (:class:`ClassMap`, parsing, loading,
  the shipped maps) and :func:`match_classes`;
- :mod:`~tmkt_data.pairing.instances`: the instance rules and :class:`InstanceLink`;
- :mod:`~tmkt_data.pairing.orientation`: the orientation check;
- :mod:`~tmkt_data.pairing.settings`: :class:`PairSettings`, shared by the job, the
  command line and pipeline recipes;
- :mod:`~tmkt_data.pairing.plan`: the pure planner :func:`plan_pairing` (splits,
  val/train selection, pools, partners) -> :class:`PairingPlan`;
- :mod:`~tmkt_data.pairing.index`: :class:`Pairs`, :func:`check_index`, :func:`read_pairs`;
- :mod:`~tmkt_data.pairing.report`: :class:`PairReport` (tables, ``--json``, stored attributes);
- :mod:`~tmkt_data.pairing.job`: :func:`pair_store`: load -> plan -> write.
"""

from tmkt_data.pairing.classmap import (
    CLASSMAP_DIR,
    ClassMap,
    ClassMatch,
    known_class_map,
    load_class_map,
    match_classes,
    normalize_name,
    parse_class_map,
)
from tmkt_data.pairing.common import PAIRS_FORMAT, PAIRS_FORMAT_VERSION, SPLITS, PairingError
from tmkt_data.pairing.index import PairIndex, Pairs, check_index, read_pairs
from tmkt_data.pairing.instances import (
    INSTANCE_RULES,
    SYNTHETIC_RULE,
    InstanceLink,
    resolve_link,
    synthetic_sources,
)
from tmkt_data.pairing.job import pair_store, pair_with_settings
from tmkt_data.pairing.orientation import DIHEDRAL, gradient_magnitude, orientation_check, orientation_scores
from tmkt_data.pairing.plan import (
    DvsSamples,
    PairingPlan,
    RgbCatalog,
    n_keep_for,
    n_val_for,
    plan_pairing,
)
from tmkt_data.pairing.report import PairReport
from tmkt_data.pairing.settings import RECIPE_KEYS, PairSettings

__all__ = [
    "CLASSMAP_DIR",
    "DIHEDRAL",
    "INSTANCE_RULES",
    "PAIRS_FORMAT",
    "PAIRS_FORMAT_VERSION",
    "RECIPE_KEYS",
    "SPLITS",
    "SYNTHETIC_RULE",
    "ClassMap",
    "ClassMatch",
    "DvsSamples",
    "InstanceLink",
    "PairIndex",
    "PairReport",
    "PairSettings",
    "PairingError",
    "PairingPlan",
    "Pairs",
    "RgbCatalog",
    "check_index",
    "gradient_magnitude",
    "known_class_map",
    "load_class_map",
    "match_classes",
    "n_keep_for",
    "n_val_for",
    "normalize_name",
    "orientation_check",
    "orientation_scores",
    "pair_store",
    "pair_with_settings",
    "parse_class_map",
    "plan_pairing",
    "read_pairs",
    "resolve_link",
    "synthetic_sources",
]
