#!/usr/bin/env bash
# Paper-scale MTD runs on one GPU (issue 13), with a toy-scale CPU mode that the tests run.
#
#   bash benchmarks/run_gpu.sh [--smoke] [--data-root DIR] [--out DIR] [--budget SECONDS] [--precision bf16|fp32]
#
# In this order, each step's records appended to OUT/*.jsonl as each run ends (a step cut by the budget loses only
# the run in flight):
#   1. probe: 2 epochs of ALGAN-image at 256 px on MTD's training split -> seconds per epoch on this machine;
#   2. ALGAN-image on MTD at the paper's scale (256 px, paper widths, validation every 8 epochs, IV-C), seeds 0 and 1,
#      for 512 epochs (the paper's) or, when two seeds of 512 do not fit in ALGAN_SHARE of the budget, the largest
#      multiple of 8 that does (the records state the epochs run);
#   3. GANomaly and Skip-GANomaly at 256 px with their paper defaults (ALGAN Table 3's comparison rows), seeds 0, 1;
#   4. the speed suite for ALGAN, GANomaly and Skip-GANomaly at 256 px, in fp32 and in bf16.
# DIR is a data root holding mtd/ and mtd_splits.json: the shared data folder, or the 256 px bundle that
# benchmarks/bundle_mtd.py makes for a machine with a small working tree. Data specs stay relative to DIR.
# --smoke: the same steps at toy scale (16 px, tiny nets, 2 epochs) on whatever device there is; tested on CPU.
# On a copy of the checkout (a lent GPU host), state the commit it was copied from, after committing with a clean tree:
#   ANOGEN_GIT_COMMIT=$(git rev-parse HEAD) ANOGEN_GIT_DIRTY=0 bash benchmarks/run_gpu.sh --data-root .gpu_data ...
# Measured on one H200 (benchmarks/results/gpu/, 2026-12-04): ALGAN-image at 256 px, batch 16 takes 1.04 s / epoch
# in bf16 and 0.93 s in fp32 -- launch-bound (~36 ms per step for ~1.6 TFLOP), so 512 epochs x 2 seeds take ~18 min,
# not 8; within a 9-minute lease the probe chose 152 epochs.
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
ROOT=../shared/data
OUT=benchmarks/results/gpu
BUDGET=520
PREC=bf16
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --data-root) ROOT=$2; shift ;;
    --out) OUT=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --precision) PREC=$2; shift ;;
    *) echo "run_gpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
log() { echo "[run_gpu $(( $(date +%s) - START ))s] $*"; }

if [ "$SMOKE" = 1 ]; then
  SIZE=16
  # a smoke run may come from a working tree with changes (the tests): its records say git_dirty
  ALGAN_SET=(--set image_size=16 --set width=8 --set max_width=16 --set val_every=1 --allow-dirty)
  GAN_SET=(--set image_size=16 --set epochs=1 --set width=8 --set max_width=16 --set latent_dim=8 --allow-dirty)
  SPEED_SET=(--set width=8 --set max_width=16 --allow-dirty)
  MAX_EPOCHS=2
else
  SIZE=256
  ALGAN_SET=()
  GAN_SET=()
  SPEED_SET=()
  MAX_EPOCHS=512
fi
ALGAN_SHARE=${ALGAN_SHARE:-0.62}
COMMON=(--scale paper --data-root "$ROOT" --set "precision=\"$PREC\"" --set channels_last=true)

log "probe: ALGAN-image ${SIZE} px, ${PREC}"
EPOCHS=$("$PY" - "$ROOT" "$SIZE" "$PREC" "$MAX_EPOCHS" "$BUDGET" "$ALGAN_SHARE" "$SMOKE" <<'EOF'
import math, sys, time
import anogen
from anogen.data.spec import load_spec

root, size, prec, max_ep, budget, share, smoke = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), \
    float(sys.argv[5]), float(sys.argv[6]), sys.argv[7] == "1"
split = load_spec(f"mtd:{root}/mtd,splits={root}/mtd_splits.json", seed=0)
kw = dict(image_size=size, channels=1, epochs=2, verbose=False, precision=prec, channels_last=True)
if smoke:
    kw.update(width=8, max_width=16)
det = anogen.create("algan", **kw).fit(split.train.x)
per_epoch = det.epoch_seconds_[-1]
# two seeds, plus about 3 % for validation every 8 epochs and the scoring at the end
fit = int(share * budget / (2 * per_epoch * 1.03))
epochs = max_ep if smoke else max(8, min(max_ep, fit // 8 * 8))
print(f"probe: {per_epoch:.3f} s / epoch on {det._device()}; {epochs} epochs per seed", file=sys.stderr)
print(epochs)
EOF
)
if [ -z "$EPOCHS" ]; then log "probe failed"; exit 1; fi
log "ALGAN-image: ${EPOCHS} epochs per seed, seeds 0 and 1 (budget left $(left) s)"
timeout $(( $(left) - 60 > 30 ? $(left) - 60 : 30 )) "$PY" -m anogen.cli bench mtd --detectors algan --seeds 0,1 \
  "${COMMON[@]}" "${ALGAN_SET[@]}" --set epochs="$EPOCHS" --out "$OUT/gpu-mtd.jsonl" || log "ALGAN step ended early"

log "GANomaly, Skip-GANomaly (budget left $(left) s)"
if [ "$(left)" -gt 40 ]; then
  timeout $(( $(left) - 25 )) "$PY" -m anogen.cli bench mtd --detectors ganomaly,skip_ganomaly --seeds 0,1 \
    "${COMMON[@]}" "${GAN_SET[@]}" --out "$OUT/gpu-mtd.jsonl" || log "GANomaly step ended early"
fi

log "speed (budget left $(left) s)"
for p in bf16 fp32; do
  if [ "$(left)" -gt 10 ]; then
    timeout $(( $(left) > 10 ? $(left) : 10 )) "$PY" -m anogen.cli bench speed --detectors algan,ganomaly,skip_ganomaly \
      --sizes "$SIZE" --set "precision=\"$p\"" --set channels_last=true "${SPEED_SET[@]}" \
      --out "$OUT/gpu-speed.jsonl" || log "speed $p ended early"
  fi
done
log "done"
