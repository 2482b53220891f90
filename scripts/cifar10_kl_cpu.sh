#!/usr/bin/env bash
# The CPU-scale CIFAR-10 KL autoencoders behind the DiT comparison of docs/results.md: baseline
# and DAE (half-width aux decoder), same total steps and the same number of GAN steps for the
# final decoder (the baseline's discriminator starts at STEPS/2 + DISC_START, see
# scripts/cifar10_vqgan_cpu.sh). Then scripts/cifar10_dit_cpu.sh trains a DiT on each.
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1200}
DISC_START=${DISC_START:-200}
OUT=${OUT:-runs/c10kl}
COMMON=(--set train.steps=$STEPS --set disc.ndf=32 --set train.batch_size=32
        --set train.log_every=20 --set train.ckpt_every=200 --set log.image_every=200
        --set train.progress=false)
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
run() { .venv/bin/dae train configs/cifar10_kl.yaml "${COMMON[@]}" "$@" --lipschitz-every 100; }
run --set disc.start=$((STEPS / 2 + DISC_START)) --out $OUT-baseline "$@" &
run --set schedule.mode=dae --set disc.start=$DISC_START --out $OUT-dae "$@" &
wait
exit
}
