#!/usr/bin/env bash
# Issue 13 comparison (a) on one GPU: VQGAN at ch 128, the joint baseline vs DAE (half-width aux
# decoder), equal total steps, a 12k-image CIFAR-10 subset, bf16 + channels_last, Adam with a
# cosine lr per stage, then `dae evaluate` and `dae probe` of every run on the GPU. Writes
# sweep.json / sweep.md / sweep.png, each run's curves, eval and probe JSON to $OUT (the `run`
# tool brings $OUT back; the weights stay on the GPU machine).
#
#   scripts/gpu_cifar10_study.sh prepare   # here (data + network): gpu_data/*.npz, gpu_wheels/
#   scripts/gpu_cifar10_study.sh run       # on the GPU machine, offline: install, sweep, collect
#   TINY=1 OUT=/tmp/x scripts/gpu_cifar10_study.sh prepare run   # CPU smoke test, ~300 images
#
# The GPU machine has PyTorch but not diffusers and no network: `prepare` packs the images into one
# uint8 .npz (`dae data pack`) and downloads wheels of dae's other dependencies (versions pinned
# to this environment's); `run` installs, with `pip --no-index --no-deps --target`, only the ones
# that machine's Python cannot import. Both folders are git-ignored; carry them: see docs/gpu.md.
#
# Budget: a lent GPU gives minutes, not hours, so `run` sizes the study from a measurement. It
# first trains JOBS short runs at once, exactly as the sweep will (GAN on, so the dearest step),
# times their steps from the rows of metrics.jsonl, and then sets
#   STEPS       = min(EPOCHS epochs, TRAIN_BUDGET_S / seconds per step)      (multiple of 50)
#   PROBE_STEPS = min(1500, PROBE_BUDGET_S / (1.5 x seconds per step))      (three decoders + GPT)
# Setting STEPS (or PROBE_STEPS) skips the measurement. DEADLINE_S stops the sweep (SIGINT) that
# many seconds after `run` began, so the curves written so far are still collected.
set -euo pipefail
{  # read whole before it runs: an edit to this file mid-run cannot derail a running study
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TINY=${TINY:-0}
WHEELS=${WHEELS:-gpu_wheels}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
if [ "$TINY" = 1 ]; then
  N_TRAIN=${N_TRAIN:-256}; N_TEST=${N_TEST:-64}; EPOCHS=${EPOCHS:-1}; BATCH=${BATCH:-64}
  CH=${CH:-32}; SEEDS=${SEEDS:-2}; DEVICE=${DEVICE:-cpu}; LOG_EVERY=${LOG_EVERY:-2}; TEST_EVERY=${TEST_EVERY:-2}
  DATA=${DATA:-gpu_data/cifar10_tiny.npz}
  TRAIN_BUDGET_S=${TRAIN_BUDGET_S:-30}; PROBE_BUDGET_S=${PROBE_BUDGET_S:-10}
  CAL_STEPS=${CAL_STEPS:-6}; CAL_SKIP=${CAL_SKIP:-2}; MAX_PROBE_STEPS=4
  PROBE_EXTRA=${PROBE_EXTRA:-"-n 32 --curve-every 2 --curve-n 32 --prior-images 64 --prior-n 32"}
else
  N_TRAIN=${N_TRAIN:-12000}; N_TEST=${N_TEST:-2000}; EPOCHS=${EPOCHS:-40}; BATCH=${BATCH:-128}
  CH=${CH:-128}; SEEDS=${SEEDS:-2}; DEVICE=${DEVICE:-cuda}; LOG_EVERY=${LOG_EVERY:-50}
  DATA=${DATA:-gpu_data/cifar10_12k.npz}
  TRAIN_BUDGET_S=${TRAIN_BUDGET_S:-240}; PROBE_BUDGET_S=${PROBE_BUDGET_S:-90}
  CAL_STEPS=${CAL_STEPS:-150}; CAL_SKIP=${CAL_SKIP:-50}; MAX_PROBE_STEPS=1500
  PROBE_EXTRA=${PROBE_EXTRA:-"--batch-size 128 --prior-batch-size 128"}
fi
PRECISION=${PRECISION:-bf16}
# Each arm's discriminator at its best setting on the CPU study (docs/results.md, "The joint model
# with the cap"): disc.shared_batch (true: real and reconstructed images in one discriminator
# batch; false: taming's two) and disc.max_weight (the adaptive weight's cap; taming's 1e4).
# The joint model keeps taming's; DAE gets one batch and a cap of 0.05, which took its
# FD-classifier down by 5.0 on three seeds and made the joint model's worse. SHARED_BATCH and
# MAX_WEIGHT, when set, set both arms (the 26-epoch H200 run had taming's on both).
JOINT_SHARED_BATCH=${JOINT_SHARED_BATCH:-${SHARED_BATCH:-false}}
JOINT_MAX_WEIGHT=${JOINT_MAX_WEIGHT:-${MAX_WEIGHT:-1e4}}
DAE_SHARED_BATCH=${DAE_SHARED_BATCH:-${SHARED_BATCH:-true}}
DAE_MAX_WEIGHT=${DAE_MAX_WEIGHT:-${MAX_WEIGHT:-0.05}}
DISC_NORM=${DISC_NORM:-batch}    # disc.norm: batch (taming), actnorm or none
LR=${LR:-4e-4}                   # the preset's 2e-4 is for batch 32 on CPU; cosine to 5 % per stage
TEST_EVERY=${TEST_EVERY:-$(( LOG_EVERY * 5 ))}   # held-out test L1/PSNR curve points
EPOCH_STEPS=$(( (EPOCHS * N_TRAIN + BATCH - 1) / BATCH ))
JOBS=${JOBS:-$(( 2 * SEEDS ))}   # every run at once: small 32x32 steps leave the GPU idle otherwise
RUNS=${RUNS:-/tmp/dae_gpu_c10}   # weights and checkpoints: too big to come back
OUT=${OUT:-runs/gpu_c10}
SITE=${SITE:-/tmp/dae_gpu_site}  # where missing dependencies are installed

prepare() {
  mkdir -p "$(dirname "$DATA")"
  if [ ! -f "$DATA" ]; then
    "$PY" -m dae.cli data pack cifar10 --out "$DATA" --n-train "$N_TRAIN" --n-test "$N_TEST"
  fi
  if [ "${SKIP_WHEELS:-0}" = 1 ]; then return; fi
  mkdir -p "$WHEELS"
  # dae's import closure minus what a PyTorch install brings (torch, numpy, filelock, fsspec,
  # typing_extensions, sympy, jinja2, networkx); pinned to the versions dae is tested with here.
  local pkgs=() name version
  for name in diffusers huggingface_hub hf_xet httpx2 httpcore2 h11 anyio idna truststore click \
              certifi charset_normalizer urllib3 requests importlib_metadata zipp regex safetensors \
              torchmetrics lightning_utilities packaging pyyaml tqdm einops lazy_importer; do
    version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" \
              "$name" 2>/dev/null) || continue
    pkgs+=("$name==$version")
  done
  # dae needs Python >= 3.11; binary wheels (regex, pyyaml, charset_normalizer) per version
  for pyver in ${PY_VERSIONS:-3.11 3.12 3.13}; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --dest "$WHEELS" \
      --python-version "$pyver" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux_2_28_x86_64 "${pkgs[@]}"
  done
  du -sh "$DATA" "$WHEELS"
}

install() {  # only what this Python cannot import, from $WHEELS, without touching its torch
  local pair missing=()
  for pair in diffusers:diffusers importlib_metadata:importlib_metadata torchmetrics:torchmetrics \
              lightning_utilities:lightning_utilities yaml:pyyaml tqdm:tqdm safetensors:safetensors \
              huggingface_hub:huggingface_hub regex:regex requests:requests; do
    "$PY" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
  done
  ((${#missing[@]})) || return 0
  echo "installing ${missing[*]} from $WHEELS into $SITE (offline, no dependencies resolved)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --find-links "$WHEELS" \
    --target "$SITE" "${missing[@]}"
  export PYTHONPATH=$SITE:$PYTHONPATH
  "$PY" -c "import diffusers, dae.cli" || {
    echo "dae still does not import after installing from $WHEELS (error above)" >&2; return 1; }
}

common_sets() {  # the `--set`s every training shares (the baseline's disc batch and cap: run())
  local steps=$1
  printf '%s\n' "data.root=$(realpath "$DATA")" "model.ch=$CH" "train.device=$DEVICE" \
    "train.precision=$PRECISION" train.channels_last=true "train.batch_size=$BATCH" \
    train.progress=false train.tensorboard=false "train.log_every=$LOG_EVERY" \
    "train.ckpt_every=$(( steps / 4 > 0 ? steps / 4 : 1 ))" log.image_every=100000 \
    "log.test_every=$TEST_EVERY" "log.test_images=$(( N_TEST < 1000 ? N_TEST : 1000 ))" \
    "optim.lr=$LR" optim.decay=cosine optim.final_lr_fraction=0.05 \
    "disc.norm=$DISC_NORM" "disc.shared_batch=$DAE_SHARED_BATCH" "disc.max_weight=$DAE_MAX_WEIGHT"
}

calibrate() {  # "seconds-per-step steps probe-steps", with JOBS runs sharing the device, GAN on
  local dir=$RUNS/calibrate sets=() s
  while IFS= read -r s; do sets+=(--set "$s"); done < <(common_sets "$CAL_STEPS")
  rm -rf "$dir"
  "$PY" - "$dir" "$JOBS" "$CAL_SKIP" "$CAL_STEPS" "$TRAIN_BUDGET_S" "$EPOCH_STEPS" \
    "$PROBE_BUDGET_S" "$MAX_PROBE_STEPS" configs/cifar10_vqgan.yaml "${sets[@]}" <<'PY'
import json, statistics, subprocess, sys, time
from pathlib import Path

out, jobs, skip, steps, budget, epoch_steps, probe_budget, max_probe, config, *sets = sys.argv[1:]
jobs, skip, steps, epoch_steps, max_probe = map(int, (jobs, skip, steps, epoch_steps, max_probe))
budget, probe_budget = float(budget), float(probe_budget)
sets += ["--set", f"train.steps={steps}", "--set", "disc.start=0", "--set", "log.test_every=0",
         "--set", f"train.log_every={skip}", "--set", f"train.ckpt_every={10 * steps}"]
# (No checkpoints inside the timed span: on the first H200 run, one every 37 steps tripled it.)
procs, seen = [], [dict() for _ in range(jobs)]
for j in range(jobs):
    run = Path(out) / f"job{j}"
    run.mkdir(parents=True)
    cmd = [sys.executable, "-m", "dae.cli", "train", config, "--out", str(run), *sets,
           "--set", f"train.seed={j}"]
    procs.append(subprocess.Popen(cmd, stdout=open(run / "log", "w"), stderr=subprocess.STDOUT))
while True:
    alive = any(p.poll() is None for p in procs)
    for j in range(jobs):  # the time each logged step first appears
        path = Path(out) / f"job{j}" / "metrics.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            seen[j].setdefault(json.loads(line)["step"], time.time())
    if not alive:
        break
    time.sleep(0.05)
for j, p in enumerate(procs):
    if p.returncode:
        log = (Path(out) / f"job{j}" / "log").read_text()
        sys.exit(f"calibration run {j} failed (exit {p.returncode}):\n{log[-3000:]}")
# From the first logged row (warm-up, cuDNN autotuning and start-up excluded) to the last.
t = statistics.median((s[steps] - s[skip]) / (steps - skip) for s in seen)
# Whole multiples of 50 within the budgets; never below 50 (nor above the EPOCHS asked).
train = epoch_steps if epoch_steps < 50 else max(50, min(epoch_steps, int(budget / t) // 50 * 50))
probe = max(min(max_probe, 50), min(max_probe, int(probe_budget / 1.5 / t) // 50 * 50))
print(f"{t:.5f} {train} {probe}")
PY
}

run() {
  local start=$SECONDS status=0 cal t_step cal_steps cal_probe
  install
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
    torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
  mkdir -p "$OUT"
  if [ -z "${STEPS:-}" ] || [ -z "${PROBE_STEPS:-}" ]; then
    cal=$(calibrate) || { status=$?; cp -r "$RUNS/calibrate" "$OUT/" 2>/dev/null; return $status; }
    read -r t_step cal_steps cal_probe <<< "$cal"
    echo "calibration: $t_step s per step with $JOBS runs at once ($(( SECONDS - start )) s so far)"
    STEPS=${STEPS:-$cal_steps} PROBE_STEPS=${PROBE_STEPS:-$cal_probe}
    echo "{\"seconds_per_step\": $t_step, \"jobs\": $JOBS, \"steps\": $STEPS, \"probe_steps\": $PROBE_STEPS}" \
      > "$OUT/calibration.json"
  fi
  local half=$(( STEPS / 2 ))
  # The GAN term starts DISC_START steps into DAE's stage 2; the baseline's at the same point of
  # its run, so that every final decoder gets the same number of GAN steps (as in the CPU study).
  local disc_start=${DISC_START:-$(( STEPS / 8 ))}
  local sets=() s
  while IFS= read -r s; do sets+=(--set "$s"); done < <(common_sets "$STEPS")
  local probe_args="--device $DEVICE --precision $PRECISION --steps $PROBE_STEPS"
  probe_args+=" --prior-steps $PROBE_STEPS --no-fd $PROBE_EXTRA"
  local sweep=(sweep configs/cifar10_vqgan.yaml --seeds "$SEEDS" --steps "$STEPS"
    --grid schedule.aux_width=0.5 --protocol equal-total "${sets[@]}" --set "disc.start=$disc_start"
    --baseline-set "disc.start=$(( half + disc_start ))"
    --baseline-set "disc.shared_batch=$JOINT_SHARED_BATCH"
    --baseline-set "disc.max_weight=$JOINT_MAX_WEIGHT")
  echo "sweep: $STEPS steps x batch $BATCH ($(( STEPS * BATCH / N_TRAIN )) epochs of $N_TRAIN" \
       "images; $EPOCHS asked), $SEEDS seeds, $JOBS jobs; probe $PROBE_STEPS steps"
  echo "report elsewhere: dae ${sweep[*]@Q} --out COPY_OF_OUT --report-only"
  local left=$(( ${DEADLINE_S:-1000000} - (SECONDS - start) ))
  timeout -s INT -k 20 "$(( left > 1 ? left : 1 ))" "$PY" -m dae.cli "${sweep[@]}" --out "$RUNS" \
    --jobs "$JOBS" --eval-metrics recon,lipschitz,codebook \
    --eval-args="-n $N_TEST --device $DEVICE" --probe-args="$probe_args" || status=$?
  echo "sweep finished in $(( SECONDS - start )) s (exit $status)"
  collect
  return "$status"
}

collect() {  # the small files, in the sweep's layout: the report can be rebuilt with --report-only
  mkdir -p "$OUT"
  (cd "$RUNS" && find . \( -name '*.json' -o -name '*.md' -o -name '*.png' -o -name '*.jsonl' \
      -o -name config.yaml -o -name sweep.log \) -size -5M -print0 | xargs -0 -r cp --parents -t "$OUT")
  echo "results in $OUT: $(ls "$OUT")"
}

[ $# -gt 0 ] || { echo "usage: $0 prepare|run ..." >&2; exit 2; }
for step in "$@"; do
  case $step in
    prepare) prepare ;;
    run) run ;;
    *) echo "unknown step $step (prepare|run)" >&2; exit 2 ;;
  esac
done
exit
}
