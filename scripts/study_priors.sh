#!/usr/bin/env bash
# Priors on comparison (a)'s latents (docs/results.md): per seed, `dae compare-priors` trains the
# same small prior on the baseline's and on DAE's latents for a fixed budget, samples N images from
# each and scores them with the FD classifier. VQ families get a GPT over the codes, KL families a
# DiT over the (centred, unit-variance) latents, with patch 1 so that MNIST's 7x7 latent fits.
# Usage: scripts/study_priors.sh FAMILY...   Env: RUNS (runs/study), OUT (runs/priors), SEEDS (3),
# SEED0 (0), JOBS (2), STEPS (1500), N (2000), PRIOR_ARGS (extra --set overrides of the prior),
# DIT_SAMPLE_STEPS (DDPM steps of the DiT's sampler, 100), DIT_EMA (its EMA decay, 0.99),
# SCORE (feature net of the sample scores; default classifier:<dataset>, none: no scores),
# PRIOR_SEED (the priors' training and sampling seed; default: the autoencoders' seed. Another
# value, into another OUT, retrains the priors on the same latents: the prior's own noise).
# Re-running skips finished seeds, leaves one that another invocation trains (flock on
# OUT/<family>/s<seed>.lock) to it, and resumes the rest (compare-priors' own resume).
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/study} OUT=${OUT:-runs/priors} SEEDS=${SEEDS:-3} SEED0=${SEED0:-0} JOBS=${JOBS:-2}
STEPS=${STEPS:-1500} N=${N:-2000} PRIOR_ARGS=${PRIOR_ARGS:-}
DAE=${DAE:-.venv/bin/dae}
source scripts/study_lib.sh
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
# A 2-layer GPT of width 128: small enough for a CPU core, the same for every latent.
GPT="--set model.n_layer=2 --set model.n_head=4 --set model.n_embd=128 --set train.steps=$STEPS
  --set train.ckpt_every=500 --set train.progress=false --set train.tensorboard=false
  --set optim.warmup_steps=100 $PRIOR_ARGS"
# A 2-layer DiT of width 128 (the probe's DiT), class-conditional as the preset, same budget.
# EMA 0.99, not the preset's 0.999: after 1,500 steps a 0.999 average still holds 22 % of the
# random init (0.999^1500), and its samples were noise (FD-classifier 558, precision 0) where the
# raw weights drew digit-like strokes.
DIT="--set model.arch=DiT-S/1 --set model.depth=2 --set model.hidden_size=128
  --set model.num_heads=4 --set train.steps=$STEPS --set train.ckpt_every=500
  --set train.ema_decay=${DIT_EMA:-0.99}
  --set train.progress=false --set train.tensorboard=false
  --set sample.steps=${DIT_SAMPLE_STEPS:-100} $PRIOR_ARGS"
one() {  # family seed
  local fam=$1 seed=$2 data preset args
  case $fam in
    mnist-vq|cifar10-vq) preset=configs/prior_gpt_cifar10.yaml args=$GPT ;;
    mnist-kl|cifar10-kl) preset=configs/prior_dit_cifar10.yaml args=$DIT ;;
    *) echo "unknown family $fam" >&2; return 1 ;;
  esac
  data=${fam%%-*}
  local out=$OUT/$fam/s$seed base=$RUNS/$fam-baseline-s$seed dae=$RUNS/$fam-dae-a-s$seed
  local prior_seed=${PRIOR_SEED:-$seed}
  if [[ -f $out/results.json ]]; then echo "done: $out"; return; fi
  pair_job "$out" "$base" "$dae" || return 0
  # shellcheck disable=SC2086
  $DAE compare-priors "$base" "$dae" "$preset" --out "$out" --n "$N" \
    --score "${SCORE:-classifier:$data}" --seed "$prior_seed" --set data.name=$data \
    --set train.seed="$prior_seed" $args >> "$out.log" 2>&1 \
    || echo "FAILED: $out (see $out.log)"
  echo "end: $out"
}
export -f one; export RUNS OUT N GPT DIT DAE SCORE PRIOR_SEED
per_seed "$@"
exit
}
