"""One synthetic tree to make, from ``tmkt-data synth`` or a recipe's ``[synth]`` table.

:meth:`SynthJob.from_mapping` checks every value once, before any image is read, naming the
command-line flag or the recipe key at fault; :meth:`SynthJob.run` reads the RGB source, picks
the images and writes the tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmkt_data.mapping import check_keys, option_name
from tmkt_data.sizes import parse_size_wh
from tmkt_data.synth.params import SIM_OPTIONS, SimParams, SynthError, params_from_options, parse_per_class
from tmkt_data.synth.tree import check_output, synthesize_tree

#: What :meth:`SynthJob.from_mapping` reads: the source, the files, and the simulator options.
SYNTH_TABLE_KEYS = ("rgb_kind", "rgb_root", "options", "layout", "format", "per_class", "limit", *SIM_OPTIONS)
_FLAGS = {"options": "--rgb-option", "leak_rate_hz": "--leak-hz", "shot_rate_hz": "--shot-hz"}


def synth_option_name(key: str, where: str = "") -> str:
    """How errors name a synth option: ``"r.toml [synth] limit ="`` in a recipe table ``where``,
    else the command-line flag (``"--limit"``, ``"--rgb-option"``)."""
    return option_name(key, where, _FLAGS)


@dataclass(frozen=True)
class SynthJob:
    """A checked synth request: which RGB images, the simulator parameters, the tree's files.

    Attributes:
        rgb_kind: the RGB source (:data:`tmkt_data.rgb.RGB_SOURCES`).
        rgb_root: its folder, None for the built-in sources.
        rgb_options: options of the source's reader.
        params: the simulator parameters.
        layout: ``"folder"`` or ``"nmnist"``; file_format: ``"atis_bin"`` or ``"aedat2"``.
        per_class: images per class and split (None: all); limit: at most this many images.
    """

    rgb_kind: str
    rgb_root: str | None
    params: SimParams
    rgb_options: dict[str, Any] = field(default_factory=dict)
    layout: str = "folder"
    file_format: str = "atis_bin"
    per_class: dict[str, int] | None = None
    limit: int | None = None

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "") -> SynthJob:
        """A checked job from a recipe's ``[synth]`` table or the command line's values (keys of
        :data:`SYNTH_TABLE_KEYS`; a missing or None value keeps the default, ``rgb_kind`` digits).

        ``where`` names the table in errors (``"r.toml [synth]"``); empty, values are named by
        their flags (``--sensor``, ``--per-class``), as ``tmkt-data synth`` spells them.

        Raises:
            SynthError: an unknown key or a bad value, one line.
        """
        from tmkt_data.rgb import RGB_SOURCES

        def name(key: str) -> str:
            return synth_option_name(key, where)

        check_keys(table, SYNTH_TABLE_KEYS, where or "synth options", SynthError)
        t = {k: v for k, v in table.items() if v is not None}
        kind = t.get("rgb_kind", "digits")
        if kind not in RGB_SOURCES:
            raise SynthError(f"{name('rgb_kind')} {kind!r}: expected one of {', '.join(RGB_SOURCES.names())}")
        root = t.get("rgb_root")
        if root is not None and not isinstance(root, str | Path):
            raise SynthError(f"{name('rgb_root')} {root!r}: expected a folder, or '-' for a built-in source")
        options = t.get("options", {})
        if not isinstance(options, Mapping):
            raise SynthError(f"{name('options')} {options!r}: expected a table of RGB reader options")
        for key in ("layout", "format"):
            if key in t and not isinstance(t[key], str):
                raise SynthError(f"{name(key)} {t[key]!r}: expected a string")
        limit = t.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise SynthError(f"{name('limit')} {limit!r}: expected a positive integer")
        sim = {k: t.get(k) for k in SIM_OPTIONS}
        for key in ("sensor", "render"):
            if sim[key] is not None:
                sim[key] = parse_size_wh(sim[key], name(key), error=SynthError)
        job = cls(
            rgb_kind=str(kind),
            rgb_root=None if root is None or str(root) in ("", "-") else str(root),
            params=params_from_options(sim),
            rgb_options=dict(options),
            layout=t.get("layout", "folder"),
            file_format=t.get("format", "atis_bin"),
            per_class=parse_per_class(t.get("per_class"), name("per_class").removesuffix(" =")),
            limit=limit,
        )
        check_output(job.layout, job.file_format, job.params.sensor_size)  # before reading any image
        return job

    def run(
        self,
        out_raw: str | Path,
        *,
        workers: int | None = None,
        overwrite: bool = False,
        on_start: Callable[[int], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Read the source, pick the images, simulate them and write the tree at ``out_raw``.

        ``on_start(n)`` is called with the number of images before the simulation,
        ``progress(done, total)`` after each chunk. Returns :func:`synthesize_tree`'s totals
        plus ``images`` (images simulated) and ``source`` (what was recorded about the source).
        """
        from tmkt_data.rgb import load_rgb

        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise SynthError(f"--workers {workers!r}: expected a positive number of threads")
        rgb = load_rgb(self.rgb_kind, self.rgb_root, **self.rgb_options)
        sub, chosen = rgb.selected(self.per_class, self.limit)
        n = len(chosen)
        source = {
            "kind": rgb.kind,
            "root": rgb.root,
            "options": dict(self.rgb_options),
            "per_class": self.per_class,
            "limit": self.limit,
            "images": n,
            "info": getattr(rgb, "info", {}),
        }
        if on_start is not None:
            on_start(n)
        res = synthesize_tree(
            sub.images,
            list(sub.labels),
            rgb.class_names,
            list(sub.split),
            list(sub.source_ids),
            out_raw,
            self.params,
            layout=self.layout,
            file_format=self.file_format,
            workers=workers,
            source=source,
            overwrite=overwrite,
            progress=progress,
            indices=chosen,
        )
        return {**res, "images": n, "source": source}


__all__ = ["SYNTH_TABLE_KEYS", "SynthJob", "synth_option_name"]
