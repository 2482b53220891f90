#!/usr/bin/env bash
# Quantizers at an equal small CPU budget on CIFAR-10 (docs/results.md): vq, vq-l2, fsq, lfq, each
# baseline and DAE (half-width aux decoder), all with 512 codes, STEPS steps of batch 32, no GAN
# (the discriminator would start after the run), then `dae evaluate` (PSNR/SSIM, code usage and
# perplexity, latent diagnostics) on N test images. Every run uses one thread.
#
#   vq     512 x 64 codebook, dead-code restarts every 100 steps (the CPU preset)
#   vq-l2  512 x 8 unit-norm codebook (LlamaGen-style low-dimensional lookup), no restarts
#   fsq    levels 8,8,8 (512 grid points, 3 channels)
#   lfq    9 bits (512 codes), entropy weight 0.1, commitment 0.25
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
STEPS=${STEPS:-300}
N=${N:-2000}
OUT=${OUT:-runs/c10q}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
COMMON=(--set train.steps=$STEPS --set model.ch=32 --set "model.attn_resolutions=[]"
        --set disc.ndf=32 --set train.batch_size=32 --set disc.start=$((STEPS + 1))
        --set train.log_every=20 --set train.ckpt_every=0 --set log.image_every=0
        --set train.progress=false --set train.tensorboard=false)
declare -A MODEL=(
  [vq]="--set model.quantizer=vq --set model.restart_dead_codes=100"
  [vq-l2]="--set model.quantizer=vq-l2 --set model.embed_dim=8 --set model.restart_dead_codes=0"
  [fsq]="--set model.quantizer=fsq --set model.embed_dim=3 --set model.fsq_levels=[8,8,8] --set model.restart_dead_codes=0"
  [lfq]="--set model.quantizer=lfq --set model.embed_dim=9 --set model.restart_dead_codes=0"
)
for q in vq vq-l2 fsq lfq; do
  for mode in baseline dae; do
    # shellcheck disable=SC2086
    $PY -m dae.cli train configs/cifar10_vqgan.yaml "${COMMON[@]}" ${MODEL[$q]} \
      --set schedule.mode=$mode --out $OUT-$q-$mode > $OUT-$q-$mode.log 2>&1 &
  done
done
wait
for q in vq vq-l2 fsq lfq; do
  for mode in baseline dae; do
    $PY -m dae.cli evaluate $OUT-$q-$mode -n $N --knn-train $N \
      --metrics recon,codebook,diagnostics >> $OUT-$q-$mode.log 2>&1 &
  done
done
wait
exit
}
