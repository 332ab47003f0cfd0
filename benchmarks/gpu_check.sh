#!/usr/bin/env bash
# One command for a GPU: what a machine with CUDA should be asked first, in under 8 minutes.
#
#   1. step time: benchmarks/train_step.py on the device for configs/dcase2022.yaml (upstream-structured
#      reference + our variants) and configs/dcase2022_fast.yaml, in fp32, bf16 and fp16 autocast;
#   2. a 2-epoch training on the tiny preset with energy (`sedwatt train`, temporary SQLite store), then the
#      run's energy.gpu_method tag and its GPU energy per epoch, read back from MLflow;
#   3. `sedwatt evaluate` of that run's model on the tiny dev-test (PSDS, F1, inference energy).
#
#   bash benchmarks/gpu_check.sh                   # on cuda, batch 48, 5 timed steps
#   bash benchmarks/gpu_check.sh --device cpu --quick   # the same path on a CPU, small sizes (tests run this)
#
# Options: --device cpu|cuda (default cuda), --quick (a tiny model and clips, 1 timed step: checks that
# everything runs, measures nothing), --keep (leave the temporary folder). Uses ${PYTHON:-.venv/bin/python};
# everything it writes (data, mel cache, checkpoints, the MLflow store) goes to one temporary folder.
set -euo pipefail

DEVICE=cuda
QUICK=0
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="${2:?--device needs a value: cpu or cuda}"; shift 2 ;;
        --device=*) DEVICE="${1#--device=}"; shift ;;
        --quick) QUICK=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (expected --device cpu|cuda, --quick, --keep)" >&2
           exit 2 ;;
    esac
done
case "$DEVICE" in
    cpu|cuda|cuda:[0-9]*) ;;
    *) echo "gpu_check.sh: --device $DEVICE: expected cpu or cuda" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-.venv/bin/python}"
if ! "$PYTHON" -c "import sedwatt" 2>/dev/null; then
    echo "gpu_check.sh: $PYTHON cannot import sedwatt (make venv, or set PYTHON)" >&2
    exit 2
fi
if [ "${DEVICE%%:*}" = cuda ] \
    && ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check.sh: --device $DEVICE: torch sees no CUDA device on this machine" >&2
    exit 2
fi

# /dev/shm when there is one: a SQLite store on disk spends seconds in fsync per commit on some VMs.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    TMP="$(mktemp -d /dev/shm/sedwatt-gpu-check.XXXXXX)"
else
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/sedwatt-gpu-check.XXXXXX")"
fi
cleanup() { if [ "$KEEP" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT
export MLFLOW_TRACKING_URI="sqlite:///$TMP/mlruns.db"
export MLFLOW_EXPERIMENT_NAME=gpu-check
unset MLFLOW_RUN_ID
export SEDWATT_JOBS_DIR="$TMP/jobs"   # this check's thread share counts only its own jobs
export PYTHONUNBUFFERED=1

sedwatt() { "$PYTHON" -c 'import sys; from sedwatt.cli import main; sys.exit(main(sys.argv[1:]))' "$@"; }
now() { date +%s; }
START=$(now)
FAILED=0

if [ "$QUICK" = 1 ]; then
    # A small CRNN on 4 s clips: the same code path, seconds per step on two CPU cores.
    SMALL_MODEL=(--set data.clip_seconds=4.0 --set features.n_mels=32 --set "model.channels=[8,16,16]"
                 --set "model.pools=[[2,2],[2,4],[1,4]]" --set model.rnn_hidden=16)
    STEP_ARGS=(--batch-size 8 --rounds 1 --steps 1 --configured-only "${SMALL_MODEL[@]}")
    CLIP_SECONDS=4
    TRAIN_ARGS=(--config configs/dcase2022.yaml "${SMALL_MODEL[@]}" --set train.rampup_epochs=1)
else
    STEP_ARGS=(--batch-size 48 --rounds 3 --steps 2 --configured-only)
    CLIP_SECONDS=10
    TRAIN_ARGS=(--config configs/dcase2022.yaml)
fi
echo "gpu_check: device $DEVICE, quick=$QUICK, python $PYTHON, work folder $TMP"
"$PYTHON" -c "import torch; print('torch', torch.__version__, '| cuda', torch.version.cuda,
'| device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')"

# -- 1. step time ---------------------------------------------------------------------------------
echo "== 1/3 step time on $DEVICE (benchmarks/train_step.py ${STEP_ARGS[*]}) =="
for config in dcase2022 dcase2022_fast; do
    upstream=()
    [ "$config" = dcase2022_fast ] && upstream=(--no-upstream)  # the reference was timed with dcase2022
    for precision in fp32 bf16 fp16; do
        log="$TMP/step-$config-$precision.log"
        # One precision the device cannot run (say bf16 on an older GPU) must not hide the other sections.
        if "$PYTHON" benchmarks/train_step.py --config "configs/$config.yaml" --device "$DEVICE" \
            "${STEP_ARGS[@]}" "${upstream[@]}" --set "train.precision=$precision" 2>&1 | tee "$log"; then
            ours=$(sed -n 's/^train_step_ms=//p' "$log")
            ref=$(sed -n 's/^upstream *\([0-9.]*\) ms\/step.*/\1/p' "$log")
            echo "step_ms config=$config precision=$precision ours=$ours upstream=${ref:--}"
        else
            echo "step_ms config=$config precision=$precision FAILED (see above)"
            FAILED=$((FAILED + 1))
        fi
    done
done

# -- 2. tiny training with energy ------------------------------------------------------------------
echo "== 2/3 tiny training on $DEVICE: 2 epochs with energy =="
DATA="$TMP/tiny"
sedwatt make-data "$DATA" --preset tiny --seed 1 --clip-seconds "$CLIP_SECONDS" > "$TMP/make-data.log"
t0=$(now)
sedwatt train "${TRAIN_ARGS[@]}" --data "$DATA" --epochs 2 --batch-size 8 \
    --set "train.device=$DEVICE" --set train.progress=false --set train.patience=null \
    --set "train.out_dir=$TMP/outputs" --set "data.cache_dir=$TMP/cache" --set energy.measure_power_secs=1 \
    --set tracking.registered_model_name=gpu-check-crnn | tee "$TMP/train.log"
RUN_ID=$(sed -n 's/^run \([0-9a-f]\{32\}\):.*/\1/p' "$TMP/train.log")
if [ -z "$RUN_ID" ]; then echo "gpu_check.sh: no run id in the sedwatt train output" >&2; exit 1; fi
echo "train_s=$(( $(now) - t0 ))"
"$PYTHON" - "$RUN_ID" <<'EOF'
import sys

from mlflow import MlflowClient

client = MlflowClient()
run_id = sys.argv[1]
run = client.get_run(run_id)


def per_epoch(name: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)]


def joined(values: list[float], scale: float = 1.0, digits: int = 4) -> str:
    return ",".join(f"{v * scale:.{digits}f}" for v in values)


tags = run.data.tags
gpu, total, seconds = per_epoch("gpu_energy_kwh"), per_epoch("energy_kwh"), per_epoch("epoch_s")
print(f"energy.gpu_method={tags.get('energy.gpu_method', 'missing')} "
      f"energy.cpu_method={tags.get('energy.cpu_method', 'missing')} hw.gpu_model={tags.get('hw.gpu_model')}")
print("gpu_energy_wh_per_epoch=" + (joined(gpu, 1000) or "not-logged"))
print(f"energy_wh_per_epoch={joined(total, 1000)} epoch_s={joined(seconds, 1, 2)}")
if len(total) != 2:
    sys.exit(f"expected 2 epochs of energy_kwh in run {run_id}, found {len(total)}")
EOF

# -- 3. evaluate on the tiny dev-test --------------------------------------------------------------
echo "== 3/3 sedwatt evaluate on the tiny dev-test ($DEVICE) =="
t0=$(now)
sedwatt evaluate --model-uri "runs:/$RUN_ID/model" --data "$DATA" --set "train.device=$DEVICE" \
    --run-name gpu-check-evaluate | tee "$TMP/evaluate.log"
EVAL_ID=$(sed -n 's/^evaluation run \([0-9a-f]\{32\}\).*/\1/p' "$TMP/evaluate.log")
if [ -z "$EVAL_ID" ]; then
    echo "gpu_check.sh: no evaluation run id in the sedwatt evaluate output" >&2
    exit 1
fi
"$PYTHON" - "$EVAL_ID" "$(( $(now) - t0 ))" <<'EOF'
import sys

from mlflow import MlflowClient

metrics = MlflowClient().get_run(sys.argv[1]).data.metrics
wh = {k[:-4]: f"{v * 1000:.4f}" for k, v in metrics.items()
      if k.startswith("inference_") and k.endswith("energy_kwh")}
print(f"evaluate psds1={metrics['psds1']:.4f} psds2={metrics['psds2']:.4f} "
      f"intersection_f1_macro={metrics['intersection_f1_macro']:.4f} evaluate_s={sys.argv[2]} "
      + " ".join(f"{k}_wh={v}" for k, v in sorted(wh.items())))
EOF

if [ "$FAILED" -gt 0 ]; then
    echo "gpu_check: $FAILED step-time run(s) FAILED on $DEVICE; sections done in $(( $(now) - START )) s"
    exit 1
fi
echo "gpu_check: all 3 sections done on $DEVICE in $(( $(now) - START )) s"
