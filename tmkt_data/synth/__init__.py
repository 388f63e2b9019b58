"""DVS-like synthetic events from still images.

The model (intensity, motion and sampling, pixel, non-idealities, files, calibration) is described
once, in ``docs/formats.md`` §6; :data:`SIM_VERSION` names the version of it that the code
implements. The output is **synthetic**: every tree written here carries a ``synthetic.json`` with
``"synthetic": true``, the description ``"DVS-like synthetic events"``, every parameter and the
seed, and is never to be named as, or mixed with, a real dataset (§6.7).

Modules: :mod:`~tmkt_data.synth.params` (:class:`SimParams`, command-line and recipe options),
:mod:`~tmkt_data.synth.render` (image -> luminance, pixel transform),
:mod:`~tmkt_data.synth.motion` (trajectories), :mod:`~tmkt_data.synth.kernels` (Numba),
:mod:`~tmkt_data.synth.simulate` (one image, data sets on threads),
:mod:`~tmkt_data.synth.tree` (files for ``tmkt-data convert``) and :mod:`~tmkt_data.synth.job`
(a checked request of the command line or a recipe).
"""

from __future__ import annotations

from tmkt_data.synth.job import SYNTH_TABLE_KEYS, SynthJob, synth_option_name
from tmkt_data.synth.motion import motion_path, saccade_vertices, trajectory_description
from tmkt_data.synth.params import (
    MOTIONS,
    RESAMPLE,
    SIM_OPTIONS,
    SIM_VERSION,
    SimParams,
    SynthError,
    params_from_options,
    parse_per_class,
)
from tmkt_data.synth.render import pixel_transform, render_luminance
from tmkt_data.synth.simulate import (
    crossing_events,
    sample_rng,
    simulate_chunks,
    simulate_dataset,
    simulate_image,
    threshold_maps,
)
from tmkt_data.synth.tree import (
    AEDAT2_CHIP,
    AEDAT2_ORIENTATION,
    DESCRIPTION,
    FILE_FORMATS,
    LAYOUTS,
    METADATA_FILE,
    SAMPLE_COLUMNS,
    TreeWriter,
    check_output,
    synth_metadata,
    synthesize_tree,
    write_synth_tree,
)

__all__ = [
    "AEDAT2_CHIP",
    "AEDAT2_ORIENTATION",
    "DESCRIPTION",
    "FILE_FORMATS",
    "LAYOUTS",
    "METADATA_FILE",
    "MOTIONS",
    "RESAMPLE",
    "SAMPLE_COLUMNS",
    "SIM_OPTIONS",
    "SIM_VERSION",
    "SYNTH_TABLE_KEYS",
    "SimParams",
    "SynthError",
    "SynthJob",
    "TreeWriter",
    "check_output",
    "crossing_events",
    "motion_path",
    "params_from_options",
    "parse_per_class",
    "pixel_transform",
    "render_luminance",
    "saccade_vertices",
    "sample_rng",
    "simulate_chunks",
    "simulate_dataset",
    "simulate_image",
    "synth_option_name",
    "synth_metadata",
    "synthesize_tree",
    "threshold_maps",
    "trajectory_description",
    "write_synth_tree",
]
