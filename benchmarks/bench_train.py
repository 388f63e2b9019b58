"""Benchmark the training step of ``vgg_snn`` (T = 10, 2 x 48 x 48) against spikingjelly 2.0.

Two models of one architecture, timed in the same process:

* **ours**: ``create_model("vgg_snn", num_classes=101)`` (its LIF is
  :func:`tmkt_train.neurons.lif_multistep`: tau 2, threshold 0.5, hard reset to 0,
  quadratic-gate surrogate with alpha 2, reset detached);
* **reference**: the same network (docs/method.md section 6) built from spikingjelly 2.0:
  ``layer.SeqToANNContainer(Conv2d, BatchNorm2d)`` + ``neuron.LIFNode(tau=2.,
  v_threshold=0.5, v_reset=0., decay_input=True,
  surrogate_function=surrogate.PiecewiseQuadratic(alpha=2.), detach_reset=True,
  step_mode="m")`` per conv, ``SeqToANNContainer(AvgPool2d(2))`` per pool, a
  ``Linear(512 * 3 * 3, 101)`` head and the same two auxiliary heads (MAG, MRP).
  ``PiecewiseQuadratic`` is spikingjelly's quadratic gate: ``g'(x) = alpha - alpha^2 |x|``
  for ``|x| <= 1/alpha`` (our ``qgate``). spikingjelly 2.0 has no ``backend=`` argument:
  on CPU its LIF runs its Torch reference (autograd through the per-step ops); on CUDA it
  picks a CUDA/Triton kernel unless ``SJ_LIF_CUDA_IMPLEMENTATION=torch`` selects its
  plain-torch implementation (a per-step forward loop with a hand-written backward loop).
  This script sets that variable (``--ref-impl torch``, the default) before importing
  spikingjelly, so the reference on a GPU is its plain-torch neuron implementation.

Before timing, our weights are copied into the reference (module by module, in
state-dict order) and the forward outputs (per-step logits, MAG logits, MRP logit) of
both models on the same input are checked for equality (``--check-atol``, train and
eval mode), as are the weight gradients of one backward pass (looser tolerance).

Training step: forward, TET loss on the per-step outputs (``tmkt_train.losses.tet_loss``,
lambda 1e-3, phi 0.5), backward, AdamW step. Each variant runs ``--steps`` steps per
repetition, repetitions interleaved (``--reps``) after one warm-up repetition (more
with ``--compile``); the median samples/s is reported.

Variants: ``ours`` and ``reference`` in fp32 eager (target on CPU: ours >= 1.0x
reference); with ``--amp`` and/or ``--compile`` also ``ours_fast`` (bf16 autocast on
CUDA, ``torch.compile`` of the model, which fuses the LIF time loop), compared with the
fp32 reference (target on CUDA: >= 1.3x); ``--ref-amp`` adds the reference under bf16
autocast.

Data wait: a synthetic store of the N-Caltech101 frame shape (``--samples`` samples of
``(10, 2, 48, 48)`` ``--store-dtype`` frames, sparse Poisson counts, 101 classes) is
written with ``create_store``/``write_shard``/``finalize_store``; then one epoch per
``--workers`` count (full batches only, at most ``--data-steps``) of the real training
loop, ``tmkt_train.trainer.train_one_epoch`` with the ``scratch`` method (one stream: the
least compute per batch, so the largest wait share), reads it through ``StoreBatches``
and the DataLoader that ``fit`` builds (pinned memory on CUDA, prefetch 4, workers
started anew each epoch as in training). The model is the timed one, already warm
(``ours_fast`` when given, else ``ours``). ``data_wait_fraction`` is the trainer's: the
share of the epoch's wall time spent in ``next(loader)`` plus the host-to-device copy
(target on CUDA: < 5 %).

Prints one JSON object (also written to ``--json-out``). Run from the project root::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py                    # CPU
    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py --device cuda --amp --compile \\
        --samples 8709 --workers 2,8

Needs the ``bench`` extra (``pip install -e ".[bench]"``: spikingjelly 2.0.0).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The reference's CUDA implementation is fixed when spikingjelly is imported.
_REF_IMPL_ENV = "SJ_LIF_CUDA_IMPLEMENTATION"

T, C, SIZE, CLASSES = 10, 2, 48, 101
TAU, V_THRESHOLD, ALPHA = 2.0, 0.5, 2.0
TARGET_CPU, TARGET_CUDA, TARGET_DATA_WAIT = 1.0, 1.3, 0.05
# spikingjelly 2.0 runs a bf16 LIF state only through its Torch reference path, which it refuses
# on CUDA while SJ_LIF_CUDA_IMPLEMENTATION names an implementation: this variant may fail.
OPTIONAL_VARIANTS = {"reference_bf16"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="default 16 on CPU, 120 (the recipe) on CUDA")
    p.add_argument(
        "--steps", type=int, default=None, help="timed steps per repetition (default 2 CPU, 20 CUDA)"
    )
    p.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3 CPU, 5 CUDA)")
    p.add_argument("--compile", action="store_true", help="also time ours under torch.compile (fused LIF)")
    p.add_argument("--amp", action="store_true", help="also time ours under bf16 autocast (CUDA only)")
    p.add_argument("--ref-amp", action="store_true", help="also time the reference under bf16 autocast")
    p.add_argument(
        "--ref-impl",
        default="torch",
        choices=("torch", "auto", "cuda", "triton"),
        help=f"spikingjelly's CUDA LIF implementation ({_REF_IMPL_ENV}); torch = its plain-torch one",
    )
    p.add_argument("--samples", type=int, default=2000, help="data-wait store size (0: skip the data part)")
    p.add_argument(
        "--data-steps", type=int, default=None, help="steps of a data-wait epoch (default 6 CPU, all CUDA)"
    )
    p.add_argument(
        "--workers",
        type=lambda v: [int(w) for w in v.split(",")],
        default=[2],
        help="DataLoader workers of the data-wait epoch; a list (2,8) runs one epoch each (default 2, the trainer's)",
    )
    p.add_argument("--store-dtype", default="uint16", choices=("uint8", "uint16", "float16"))
    p.add_argument("--check-atol", type=float, default=1e-5, help="forward equality tolerance")
    p.add_argument("--skip-reference", action="store_true", help="time ours only (no spikingjelly needed)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default=None, help="where the synthetic store goes (default: a temp dir)")
    p.add_argument("--json-out", default=None, help="also write the JSON result here")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------- models


def build_reference(num_classes: int = CLASSES, in_channels: int = C, input_size: int = SIZE):
    """VGG-SNN from spikingjelly 2.0 LIF neurons, the same layers and heads as ``vgg_snn``."""
    import torch
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    from torch import nn

    from tmkt_train.models.vgg_snn import VGG_PLAN

    def lif():
        return neuron.LIFNode(
            tau=TAU,
            decay_input=True,
            v_threshold=V_THRESHOLD,
            v_reset=0.0,
            surrogate_function=surrogate.PiecewiseQuadratic(alpha=ALPHA),
            detach_reset=True,
            step_mode="m",
        )

    class RefVGGSNN(nn.Module):
        def __init__(self):
            super().__init__()
            blocks = []
            c_in = in_channels
            for c in VGG_PLAN:
                if c == "P":
                    blocks.append(layer.SeqToANNContainer(nn.AvgPool2d(2)))
                else:
                    conv = nn.Conv2d(c_in, c, 3, padding=1, bias=False)
                    blocks.append(nn.Sequential(layer.SeqToANNContainer(conv, nn.BatchNorm2d(c)), lif()))
                    c_in = c
            self.features = nn.Sequential(*blocks)
            side = input_size // 2 ** sum(1 for c in VGG_PLAN if c == "P")
            self.fc = nn.Linear(c_in * side * side, num_classes)
            self.mag_head = nn.Linear(c_in, 1)
            self.mrp_head = nn.Linear(c_in, 1)

        def forward(self, x: torch.Tensor):
            """``x`` (B, T, C, H, W) -> (logits (T, B, classes), MAG logits (T, B), MRP logit (B,))."""
            functional.reset_net(self)  # a new batch starts from v = v_reset
            y = self.features(x.transpose(0, 1))
            pooled = y.mean(dim=(-2, -1))
            return (
                self.fc(y.flatten(2)),
                self.mag_head(pooled).squeeze(-1),
                self.mrp_head(pooled.mean(0)).squeeze(-1),
            )

    return RefVGGSNN()


def copy_weights(ours, ref) -> int:
    """Copy ``ours``' conv, BN and (DVS, MAG, MRP) head weights into ``ref``; returns tensors copied."""
    from torch import nn

    def mods(m, kind):
        return [x for x in m.modules() if isinstance(x, kind)]

    pairs = list(zip(mods(ours.trunk, nn.Conv2d), mods(ref.features, nn.Conv2d), strict=True))
    pairs += list(zip(mods(ours.trunk, nn.BatchNorm2d), mods(ref.features, nn.BatchNorm2d), strict=True))
    pairs += [(ours.head("dvs"), ref.fc), (ours.mag_head, ref.mag_head), (ours.mrp_head, ref.mrp_head)]
    n = 0
    for a, b in pairs:
        sd = a.state_dict()
        b.load_state_dict(sd, strict=True)
        n += len(sd)
    return n


def ours_outputs(model, x):
    out = model(x, head="dvs")
    return out.logits, out.mag_logits, out.mrp_logit


def check_equal(ours, ref, x, y, atol: float) -> dict:
    """Forward outputs (train and eval mode) and one backward's weight gradients of both models."""
    import torch

    from tmkt_train.losses import tet_loss

    res: dict = {}
    a_model, b_model = copy.deepcopy(ours), copy.deepcopy(ref)
    for mode in ("train", "eval"):
        a_model.train(mode == "train")
        b_model.train(mode == "train")
        with torch.no_grad():
            a, b = ours_outputs(a_model, x), b_model(x)
        diffs = [float((p.float() - q.float()).abs().max()) for p, q in zip(a, b, strict=True)]
        res[f"forward_{mode}_max_abs_diff"] = max(diffs)
        if max(diffs) > atol:
            raise AssertionError(
                f"forward outputs differ ({mode} mode): max |diff| {max(diffs):.3g} > {atol}"
            )
    a_model.train()
    b_model.train()
    a_model.zero_grad(set_to_none=True)
    b_model.zero_grad(set_to_none=True)
    tet_loss(ours_outputs(a_model, x)[0], y).backward()
    tet_loss(b_model(x)[0], y).backward()
    ga = [m.weight.grad for m in a_model.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    gb = [m.weight.grad for m in b_model.features.modules() if isinstance(m, torch.nn.Conv2d)]
    rel = [float((p - q).norm() / q.norm().clamp_min(1e-30)) for p, q in zip(ga, gb, strict=True)]
    res["conv_grad_max_rel_diff"] = max(rel)
    if max(rel) > 1e-3:
        raise AssertionError(f"conv weight gradients differ: max relative difference {max(rel):.3g}")
    return res


# ---------------------------------------------------------------------------------------- timing


class Variant:
    """One model + optimiser + precision; ``run(n)`` does n training steps and returns the seconds."""

    def __init__(self, name, model, forward, device, amp: bool, x, y):
        import torch

        self.name, self.model, self.forward, self.device, self.amp = name, model, forward, device, amp
        self.x, self.y = x, y
        self.opt = torch.optim.AdamW(model.parameters(), lr=5e-3 * x.shape[0] / 1024, weight_decay=0.01)
        self.times: list[float] = []
        self.cpu_times: list[float] = []

    def step(self):
        import torch

        from tmkt_train.losses import tet_loss

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.forward(self.x)
        loss = tet_loss(logits, self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss

    def run(self, n: int) -> float:
        import torch

        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            loss = self.step()
            float(loss.detach())  # the trainer reads the loss every step, too
        sync()
        self.last_cpu = time.process_time() - c0
        return time.perf_counter() - t0


def time_variants(variants: list[Variant], steps: int, reps: int, warmup: int) -> dict:
    """Median samples/s of each variant; a variant whose warm-up raises is dropped (its error kept)."""
    failed = {}
    for v in list(variants):
        try:
            for _ in range(warmup):
                v.run(1)
        except Exception as err:  # one failing variant must not lose the others' figures
            failed[v.name] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            print(f"variant {v.name} failed: {failed[v.name]['error']}", file=sys.stderr)
            variants.remove(v)
    for _ in range(reps):
        for v in variants:
            v.times.append(v.run(steps))
            v.cpu_times.append(v.last_cpu)
    B = variants[0].x.shape[0]
    return {
        v.name: {
            "samples_per_s": B * steps / statistics.median(v.times),
            "step_ms_median": 1e3 * statistics.median(v.times) / steps,
            "step_ms_all": [round(1e3 * t / steps, 1) for t in v.times],
            # CPU seconds of this process (all threads) per step: less disturbed by other load
            "step_cpu_s_median": statistics.median(v.cpu_times) / steps,
        }
        for v in variants
    } | failed


# ------------------------------------------------------------------------------------- data wait


def build_store(path: Path, n: int, dtype: str, seed: int) -> dict:
    """A synthetic store of ``n`` samples of (10, 2, 48, 48) sparse event counts, 101 classes."""
    import numpy as np

    from tmkt_data.convert import default_shard_samples
    from tmkt_data.store import StoreGeometry, create_store, finalize_store, sample_row, write_shard

    t0 = time.perf_counter()
    shape = (T, C, SIZE, SIZE)
    geo = StoreGeometry(n, shape, dtype, default_shard_samples(n, shape, np.dtype(dtype).itemsize))
    classes = [f"class_{i:03d}" for i in range(CLASSES)]
    labels = np.sort(np.arange(n) % CLASSES)
    create_store(path, geo, {"dataset": "synthetic", "classes": classes})
    rng = np.random.default_rng(seed)
    for k in range(geo.n_shards):
        a, b = geo.shard_range(k)
        # sparse Poisson counts (~8 % non-zero pixels per frame), like binned N-Caltech101 frames
        lam = rng.gamma(0.3, 0.3, size=(b - a, 1, 1, SIZE, SIZE))
        frames = rng.poisson(lam, size=(b - a, *shape)).astype(dtype)
        rows = [
            sample_row(f"{classes[labels[i]]}/{i:06d}", labels[i], "train", valid=True) for i in range(a, b)
        ]
        write_shard(path, k, frames, rows, "bench")
    finalize_store(path)
    return {
        "samples": n,
        "dtype": dtype,
        "shard_samples": geo.shard_samples,
        "classes": CLASSES,
        "build_s": round(time.perf_counter() - t0, 2),
    }


def data_wait(args, device, model, forward_module, amp: bool, batch: int, work: Path) -> dict:
    """Epochs of ``train_one_epoch`` (scratch method) on a synthetic store through the real loader.

    ``model`` is an already warmed-up model and ``forward_module`` what the trainer would call
    (``model`` itself or ``torch.compile(model)``), so nothing is compiled again. Only full
    batches are run (a smaller last batch would recompile a compiled model).
    """
    import numpy as np
    import torch

    from tmkt_train.config import make_config
    from tmkt_train.data import StoreBatches
    from tmkt_train.steps import Streams
    from tmkt_train.trainer import Dist, StoreInfo, train_one_epoch

    store = work / "store.zarr"
    meta = build_store(store, args.samples, args.store_dtype, args.seed)
    info = StoreInfo(
        str(store), [f"c{i}" for i in range(CLASSES)], T, (SIZE, SIZE), {"train": np.arange(args.samples)}
    )
    full = args.samples // batch
    steps = full if args.data_steps is None else min(full, args.data_steps)
    if steps < 1:
        raise ValueError(f"--samples {args.samples} is less than one batch of {batch}")
    net = Streams(forward_module)
    runs = []
    for epoch, workers in enumerate(args.workers):
        cfg = make_config(
            {
                "store": str(store),
                "method": "scratch",
                "batch_size": batch,
                "amp": amp,
                "compile": forward_module is not model,
                "num_workers": workers,
                "epochs": len(args.workers),
            },
            device=str(device),
        )
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.resolved_lr(), weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        ds = StoreBatches(str(store), info.splits["train"], batch, shuffle=True, seed=cfg.seed)
        ds.set_epoch(epoch)
        kw = {"batch_size": None, "num_workers": workers, "pin_memory": device.type == "cuda"}
        if workers > 0:  # as fit() builds it
            kw.update(persistent_workers=False, prefetch_factor=4)
        loader = torch.utils.data.DataLoader(ds, **kw)
        row = train_one_epoch(
            net,
            model,
            loader,
            None,
            opt,
            sched,
            cfg,
            info,
            device,
            Dist(),
            epoch=epoch,
            steps_per_epoch=steps,
            total_steps=steps * len(args.workers),
            progress=False,
        )
        runs.append(
            {
                "workers": workers,
                "samples_per_s": row["samples_per_s"],
                "data_wait_fraction": row["data_wait_fraction"],
                "epoch_s": row["epoch_s"],
                "meets_target": row["data_wait_fraction"] < TARGET_DATA_WAIT,
            }
        )
    return {
        "store": meta,
        "method": "scratch",
        "amp_bf16": amp,
        "compile": forward_module is not model,
        "batch_size": batch,
        "steps": steps,
        "runs": runs,
        "target_data_wait_below": TARGET_DATA_WAIT,
        "target_applies": device.type == "cuda",
    }


# ------------------------------------------------------------------------------------------ main


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault(_REF_IMPL_ENV, args.ref_impl)
    if os.environ[_REF_IMPL_ENV] != args.ref_impl:
        print(f"note: {_REF_IMPL_ENV}={os.environ[_REF_IMPL_ENV]} from the environment wins", file=sys.stderr)

    import torch

    from tmkt_train.models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    batch = args.batch_size or (120 if cuda else 16)
    steps = args.steps or (20 if cuda else 2)
    reps = args.reps or (5 if cuda else 3)
    if args.data_steps is None and not cuda:
        args.data_steps = 6
    amp = args.amp and cuda
    if args.amp and not cuda:
        print("note: --amp is bf16 autocast on CUDA only; ignored on CPU", file=sys.stderr)

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    # event counts: sparse non-negative integers, as the store holds
    x = torch.poisson(torch.rand(batch, T, C, SIZE, SIZE, generator=g) * 0.6, generator=g).to(device)
    y = torch.randint(0, CLASSES, (batch,), generator=g).to(device)

    ours = create_model("vgg_snn", num_classes=CLASSES).to(device)
    result: dict = {
        "benchmark": "bench_train",
        "model": "vgg_snn",
        "input": {"T": T, "C": C, "H": SIZE, "W": SIZE, "classes": CLASSES, "batch_size": batch},
        "device": str(device),
        "device_name": device_name(device),
        "host_cpu": device_name(torch.device("cpu")),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "steps_per_rep": steps,
        "reps": reps,
        "loss": "TET (lambda 1e-3, phi 0.5)",
        "optimizer": "AdamW",
    }
    variants: list[Variant] = []
    if not args.skip_reference:
        import spikingjelly

        ref = build_reference().to(device)
        n_copied = copy_weights(ours, ref)
        result["spikingjelly"] = getattr(spikingjelly, "__version__", None) or _dist_version("spikingjelly")
        result["reference_impl"] = (
            f"{_REF_IMPL_ENV}={os.environ[_REF_IMPL_ENV]}" if cuda else "torch reference (CPU)"
        )
        result["equality"] = {"tensors_copied": n_copied, "atol": args.check_atol}
        try:
            result["equality"].update(check_equal(ours, ref, x[:8], y[:8], args.check_atol), passed=True)
        except Exception as err:  # keep timing (a GPU session is short); exit 1 at the end
            result["equality"].update(passed=False, error=f"{type(err).__name__}: {err}"[:2000])
            print(f"EQUALITY CHECK FAILED: {err}", file=sys.stderr)
        variants.append(Variant("reference", ref, lambda t: ref(t)[0], device, False, x, y))
        if args.ref_amp and cuda:
            ref16 = copy.deepcopy(ref)
            variants.append(Variant("reference_bf16", ref16, lambda t: ref16(t)[0], device, True, x, y))
    variants.insert(0, Variant("ours", ours, lambda t: ours(t, head="dvs").logits, device, False, x, y))
    data_model, data_forward, data_amp = ours, ours, False
    if amp or args.compile:
        fast = copy.deepcopy(ours)
        fwd = torch.compile(fast) if args.compile else fast
        variants.append(Variant("ours_fast", fast, lambda t: fwd(t, head="dvs").logits, device, amp, x, y))
        result["ours_fast"] = {"amp_bf16": amp, "compile": args.compile}
        data_model, data_forward, data_amp = fast, fwd, amp
    warmup = 3 if args.compile else 1
    t0 = time.perf_counter()
    timing = time_variants(variants, steps, reps, warmup)
    result["train_step"] = timing
    result["train_step_s"] = round(time.perf_counter() - t0, 1)
    ok = {k for k, v in timing.items() if "samples_per_s" in v}
    if {"ours", "reference"} <= ok:
        ref_sps = timing["reference"]["samples_per_s"]
        result["ratio_fp32"] = timing["ours"]["samples_per_s"] / ref_sps
        result["ratio_fp32_cpu_time"] = (
            timing["reference"]["step_cpu_s_median"] / timing["ours"]["step_cpu_s_median"]
        )
        if not cuda:
            result["target_cpu"] = TARGET_CPU
            result["meets_target_cpu"] = result["ratio_fp32"] >= TARGET_CPU
        if "ours_fast" in ok:
            result["ratio_fast_vs_reference_fp32"] = timing["ours_fast"]["samples_per_s"] / ref_sps
            if cuda:
                result["target_cuda"] = TARGET_CUDA
                result["meets_target_cuda"] = result["ratio_fast_vs_reference_fp32"] >= TARGET_CUDA
        if {"reference_bf16", "ours_fast"} <= ok:
            result["ratio_fast_vs_reference_bf16"] = (
                timing["ours_fast"]["samples_per_s"] / timing["reference_bf16"]["samples_per_s"]
            )
    del variants
    if args.samples > 0:
        work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_train_"))
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            result["data_wait"] = data_wait(args, device, data_model, data_forward, data_amp, batch, work)
        except Exception as err:  # keep the step figures; exit 1 at the end
            result["data_wait"] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            print(f"data-wait part failed: {result['data_wait']['error']}", file=sys.stderr)
        finally:
            if not args.work_dir:
                shutil.rmtree(work, ignore_errors=True)
        result["data_wait_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
    lost = set(timing) - ok - OPTIONAL_VARIANTS
    if result.get("equality", {}).get("passed") is False or lost or "error" in result.get("data_wait", {}):
        raise SystemExit(1)
    return result


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
