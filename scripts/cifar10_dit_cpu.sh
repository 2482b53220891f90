#!/usr/bin/env bash
# Class-conditional DiT prior over the latents of the baseline and DAE CIFAR-10 KL autoencoders
# (scripts/cifar10_kl_cpu.sh), same prior size and steps for both, then samples (respaced DDPM,
# no guidance) and scores them (FD-classifier, IS-classifier, precision/recall against the
# CIFAR-10 test split). A CPU-scale DiT (1.2M parameters): width 128, depth 4, 4 heads, patch 2 on the 8x8x4
# latents, 2500 steps x batch 128 (6.4 epochs).
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} DAE_DATA=${DAE_DATA:-../shared/data}
IN=${IN:-runs/c10kl}  # the KL runs; results go to ${OUT:-runs/cmp-dit-c}
PRIOR=(--set model.hidden_size=128 --set model.num_heads=4 --set model.depth=4
       --set train.steps=${PRIOR_STEPS:-2500} --set train.batch_size=128 --set train.log_every=50
       --set train.ckpt_every=500 --set optim.lr=5e-4 --set optim.warmup_steps=100
       --set sample.steps=${SAMPLE_STEPS:-100})
.venv/bin/dae compare-priors $IN-baseline $IN-dae configs/prior_dit_cifar10.yaml \
    --out ${OUT:-runs/cmp-dit-c} --n "${N:-2000}" "${PRIOR[@]}" "$@"
exit
}
