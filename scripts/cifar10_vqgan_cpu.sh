#!/usr/bin/env bash
# The CPU-scale CIFAR-10 VQGAN comparison of docs/results.md: baseline, DAE with the half-width
# aux decoder, DAE with Dropout2d (stage-2 decoder from scratch, and continued), same total
# steps. A smaller model and budget than configs/cifar10_vqgan.yaml: the runs share 2 CPU cores
# and finish in about an hour.
#
# Fairness: every final decoder gets the same number of GAN steps. DAE counts `disc.start` from
# the start of stage 2 (STEPS/2), so the baseline's discriminator starts at STEPS/2 + DISC_START.
# Dead codes are restarted every 100 steps while the codebook trains (stage 1 / the baseline).
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1600}
DISC_START=${DISC_START:-200}
OUT=${OUT:-runs/c10vq}
COMMON=(--set train.steps=$STEPS --set model.ch=32 --set "model.attn_resolutions=[]"
        --set disc.ndf=32 --set train.batch_size=32 --set model.restart_dead_codes=100
        --set train.log_every=20 --set train.ckpt_every=200 --set log.image_every=200
        --set train.progress=false)
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
run() { .venv/bin/dae train configs/cifar10_vqgan.yaml "${COMMON[@]}" "$@" --lipschitz-every 100; }
run --set disc.start=$((STEPS / 2 + DISC_START)) --out $OUT-baseline "$@" &
run --set schedule.mode=dae --set disc.start=$DISC_START --out $OUT-dae-aux "$@" &
run --set schedule.mode=dae --set schedule.weak_decoder=dropout2d --set disc.start=$DISC_START \
    --out $OUT-dae-drop "$@" &
# Dropout2d with the stage-1 decoder continued (not re-initialised) into stage 2
run --set schedule.mode=dae --set schedule.weak_decoder=dropout2d --set disc.start=$DISC_START \
    --set schedule.stage2.decoder_init=continue --out $OUT-dae-drop-cont "$@" &
wait
exit
}
