#!/usr/bin/env bash
# The converged, seeded CPU study of docs/results.md (issue 13): baseline vs DAE (half-width aux
# decoder) with no GAN term, so that decoder budget and GAN start time are not confounds.
#   (a) equal total steps:   baseline S, DAE S/2 + S/2            -> OUT/<fam>-baseline|dae-a-s<k>
#   (b) equal decoder steps: DAE S/2 + S (stage 1 on top)         -> OUT/<fam>-dae-b-s<k>
#   (e) equal encoder steps: DAE S + S (ONLY=e; the encoder trains S steps, as the baseline's
#       does, so the probe compares encoders of equal budget)      -> OUT/<fam>-dae-e-s<k>
# Every run logs held-out test L1/PSNR every TEST_EVERY steps (log.test_every), the convergence
# curve. Usage: scripts/study_cpu.sh FAMILY...   (FAMILY: mnist-vq mnist-kl cifar10-vq cifar10-kl)
# Env: SEEDS (3), SEED0 (first seed, 0), S (steps, 3600), LR (peak Adam lr, 6e-4), DECAY (cosine:
# per stage, down to FINAL_LR x LR = 0.05; none: constant), JOBS (2 parallel trainings, one thread
# each), OUT (runs/study), ONLY (a|b|e: one comparison; baseline: the baselines alone, e.g. for
# the baseline's own lr sweep; dae: (a)'s DAE runs alone, when their baselines train elsewhere,
# e.g. with other EXTRA arguments in a parallel invocation), TEST_EVERY (100, a multiple of LOG_EVERY, 50), TEST_IMAGES
# (1000), EXTRA (more `dae train` arguments for every run, e.g.
# "--lipschitz-every 200" for the Lipschitz curves), PRECISION (auto: bf16 autocast on a CPU with
# native bf16, fp32 elsewhere, where emulated bf16 runs at 0.3-0.4x, 0.04-0.07x with AVX2 only;
# the studies of docs/results.md ran in bf16 on a CPU with AVX512-BF16). Comparison (a) is queued
# before (b).
# UNTIL (stop each run after that step, its lr schedule still its own steps', and leave it
# there; rerun with a larger UNTIL, or none, to continue: a window on the start of a run).
# The first, unconverged study of docs/results.md was S=1600 LR=2e-4 DECAY=none.
# Re-running resumes: finished runs are skipped, unfinished ones continue with --resume, and a run
# that another invocation is training (flock on OUT/<run>.lock) is left to it.
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-3} SEED0=${SEED0:-0} ONLY=${ONLY:-} S=${S:-3600} JOBS=${JOBS:-2} OUT=${OUT:-runs/study} TEST_EVERY=${TEST_EVERY:-100}
LR=${LR:-6e-4} PRECISION=${PRECISION:-auto} DECAY=${DECAY:-cosine} FINAL_LR=${FINAL_LR:-0.05}
DAE=${DAE:-.venv/bin/dae}
export OMP_NUM_THREADS=1 DAE_DATA=${DAE_DATA:-../shared/data}
COMMON="--set disc.start=1000000000 --set train.precision=$PRECISION --set train.batch_size=32
  --set train.log_every=${LOG_EVERY:-50} --set log.test_every=$TEST_EVERY --set log.test_images=${TEST_IMAGES:-1000}
  --set log.image_every=0 --set train.ckpt_every=200 --set train.progress=false
  --set train.tensorboard=false --set model.attn_resolutions=[] --set train.ema_decay=0
  --set optim.lr=$LR --set optim.decay=$DECAY --set optim.final_lr_fraction=$FINAL_LR ${EXTRA:-}
  ${UNTIL:+--until $UNTIL}"
preset() {  # family -> config file and model overrides (small enough to converge on a CPU core)
  case $1 in
    mnist-vq) echo "configs/mnist_vqgan.yaml --set model.ch=16 --set model.norm_groups=8" ;;
    mnist-kl) echo "configs/cifar10_kl.yaml --set data.name=mnist --set data.hflip=false
      --set model.in_channels=1 --set model.resolution=28 --set model.ch=16
      --set model.norm_groups=8" ;;
    cifar10-vq) echo "configs/cifar10_vqgan.yaml --set model.ch=16 --set model.norm_groups=8" ;;
    cifar10-kl) echo "configs/cifar10_kl.yaml --set model.ch=16 --set model.norm_groups=8" ;;
    *) echo "unknown family $1" >&2; exit 2 ;;
  esac
}
jobs_for() {  # one line per training: out-dir and its arguments
  local fam=$1 args; args=$(preset "$fam" | tr '\n' ' ')
  local seeds; seeds=$(seq "$SEED0" $((SEED0 + SEEDS - 1)))
  [[ $ONLY == b || $ONLY == e ]] || for seed in $seeds; do
    [[ $ONLY == dae ]] ||
      echo "$OUT/$fam-baseline-s$seed $args --set train.seed=$seed --set train.steps=$S"
    [[ $ONLY == baseline ]] ||
      echo "$OUT/$fam-dae-a-s$seed $args --set train.seed=$seed --set train.steps=$S --set schedule.mode=dae"
  done
  [[ $ONLY == a || $ONLY == e || $ONLY == baseline || $ONLY == dae ]] || for seed in $seeds; do
    echo "$OUT/$fam-dae-b-s$seed $args --set train.seed=$seed --set train.steps=$((S * 3 / 2))" \
         "--set schedule.mode=dae --set schedule.stage1_fraction=0.3333333333333333"
  done
  if [[ $ONLY == e ]]; then for seed in $seeds; do  # only when asked: 2S steps per run
    echo "$OUT/$fam-dae-e-s$seed $args --set train.seed=$seed --set train.steps=$((S * 2))" \
         "--set schedule.mode=dae --set schedule.stage1_fraction=0.5"
  done; fi
}
one() {  # train one run, or resume it, or skip it when finished
  local out=$1; shift
  if [[ -f $out/model.safetensors ]]; then echo "done: $out"; return; fi
  mkdir -p "$(dirname "$out")"
  exec 9>"$out.lock"
  flock -n 9 || { echo "busy (another invocation trains it): $out"; return; }
  local mode=(); [[ -f $out/config.yaml ]] && mode=(--resume)
  echo "start: $out ${mode[*]}"
  # shellcheck disable=SC2086
  # appended, not replaced: a resumed run's log keeps what its earlier attempts said
  echo "== $(date -u +%FT%TZ) start ${mode[*]}" >> "$out.log"
  $DAE train $@ $COMMON --out "$out" "${mode[@]}" >> "$out.log" 2>&1 || echo "FAILED: $out (see $out.log)"
  echo "end: $out"
}
export -f one; export COMMON DAE
for fam in "$@"; do jobs_for "$fam"; done | xargs -P "$JOBS" -I{} bash -c 'one {}'
exit
}
