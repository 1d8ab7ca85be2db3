#!/usr/bin/env bash
# The speed suite for every registered image detector, fp32 and bf16 (issue 13), on this machine's CPU.
#   bash benchmarks/run_speed.sh [OUT.jsonl] [THREADS]
# Each detector is measured in fp32 then bf16 (+ channels-last) back to back, so the two share the machine's load;
# every record carries the load average before and after. 64 and 128 px for every detector (AnoGAN: 32 px, its
# 500-step latent search per image makes larger sizes take minutes per batch), 256 px for the detectors of the
# ALGAN paper's Table 5 speed comparison (ALGAN, GANomaly, Skip-GANomaly) and the AE.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/speed-precision.jsonl}
THREADS=${2:-1}
PY=${PYTHON:-python3}
speed() { "$PY" -m anogen.cli --threads "$THREADS" bench speed --out "$OUT" "$@"; }
for det in $("$PY" -c "import anogen; from anogen._registry import get; print(' '.join(n for n in anogen.available() if get(n).input_kind == 'image' and get(n).iterative))"); do
  case $det in
    anogan) sizes=32 ;;
    algan|ganomaly|skip_ganomaly|ae) sizes=64,128,256 ;;
    *) sizes=64,128 ;;
  esac
  for p in fp32 bf16; do
    if [ "$p" = bf16 ]; then speed --detectors "$det" --sizes "$sizes" --set precision=bf16 --set channels_last=true
    else speed --detectors "$det" --sizes "$sizes" --set precision=fp32; fi
  done
done
