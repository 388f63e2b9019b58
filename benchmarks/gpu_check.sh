#!/usr/bin/env bash
# GPU part of benchmarks/bench_train.py, run as-is by a session that has a CUDA GPU:
#
#   bash benchmarks/gpu_check.sh            # from the project root (or anywhere: it cds there)
#
# - ours (vgg_snn, T = 10, 2 x 48 x 48, batch 120) with bf16 autocast + torch.compile (fused
#   LIF) against the spikingjelly 2.0 reference with its plain-torch LIF (fp32; also bf16),
#   same process, forward equality checked first; target >= 1.3x;
# - data-wait fraction of the real training loop and loader on a synthetic store of the
#   N-Caltech101 shape (8,709 samples), with 2 (the trainer's default) and 8 workers;
#   target < 5 %.
# About 3-5 minutes on an H100 (most of it torch.compile and writing the store).
# Writes ${OUT:-/tmp}/bench_train_gpu.json (the JSON) and bench_train_gpu.log (all output).
# Needs .venv (`make` creates it); installs the `bench` extra (spikingjelly) when missing.
# Record the figures, with the card's name, in docs/benchmarks.md.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT_DIR="${OUT:-/tmp}"
mkdir -p "$OUT_DIR"
JSON="$OUT_DIR/bench_train_gpu.json"
LOG="$OUT_DIR/bench_train_gpu.log"
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "no $PY: run 'make test' (or 'make demo') first to create the virtualenv" >&2
    exit 2
fi

{
    date -u +"start %Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
} 2>&1 | tee "$LOG"

EXTRA=()
if ! "$PY" -c 'import spikingjelly.activation_based.neuron' >/dev/null 2>&1; then
    echo "spikingjelly missing: installing the bench extra" | tee -a "$LOG"
    if ! "$PY" -m pip install --quiet -e ".[bench]" >>"$LOG" 2>&1; then
        echo "WARNING: could not install spikingjelly; timing ours only (--skip-reference)" | tee -a "$LOG"
        EXTRA+=(--skip-reference)
    fi
fi

# hard stop at 9 minutes (a device command may run 10); the benchmark itself needs about 3-5.
PYTHONPATH=. timeout 540 "$PY" benchmarks/bench_train.py \
    --device cuda --amp --compile --ref-amp --ref-impl torch \
    --batch-size 120 --steps 20 --reps 5 \
    --samples 8709 --workers 2,8 \
    --json-out "$JSON" "${EXTRA[@]}" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
date -u +"end %Y-%m-%dT%H:%M:%SZ (exit $rc)" | tee -a "$LOG"
echo "JSON: $JSON" | tee -a "$LOG"
exit "$rc"
