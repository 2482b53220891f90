#!/usr/bin/env bash
# The CPU-scale CIFAR-10 VQGAN comparison of docs/results.md: baseline, DAE with the half-width
# aux decoder, DAE with Dropout2d, same total steps. A smaller model and budget than
# configs/cifar10_vqgan.yaml so that it finishes on 2 CPU cores in well under an hour on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-600}
COMMON=(--set train.steps=$STEPS --set model.ch=32 --set "model.attn_resolutions=[]"
        --set disc.ndf=32 --set train.batch_size=32 --set disc.start=150
        --set train.log_every=20 --set train.ckpt_every=100 --set log.image_every=150
        --set train.progress=false)
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
run() { .venv/bin/dae train configs/cifar10_vqgan.yaml "${COMMON[@]}" "$@" --lipschitz-every 60; }
run --out runs/c10vq-baseline "$@" &
run --set schedule.mode=dae --out runs/c10vq-dae-aux "$@" &
run --set schedule.mode=dae --set schedule.weak_decoder=dropout2d --out runs/c10vq-dae-drop "$@" &
wait
