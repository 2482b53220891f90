#!/usr/bin/env bash
# GPT prior over the codes of the baseline and DAE CIFAR-10 VQGANs (scripts/cifar10_vqgan_cpu.sh),
# same prior size and steps for both, then samples and scores them (FD-classifier, IS-classifier,
# precision/recall against the CIFAR-10 test split). A CPU-scale GPT: 4 layers, width 128.
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} DAE_DATA=${DAE_DATA:-../shared/data}
PRIOR=(--set model.n_layer=4 --set model.n_head=4 --set model.n_embd=128 --set train.steps=600
       --set train.batch_size=64 --set train.log_every=50 --set train.ckpt_every=250
       --set optim.warmup_steps=100 --set optim.lr=0.001)
.venv/bin/dae compare-priors runs/c10vq-baseline runs/c10vq-dae-aux configs/prior_gpt_cifar10.yaml \
    --out runs/cmp-gpt --n "${N:-2000}" "${PRIOR[@]}" "$@"
exit
}
