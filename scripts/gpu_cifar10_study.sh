#!/usr/bin/env bash
# Issue 13 comparison (a) on one GPU: VQGAN at ch 128, the joint baseline vs DAE (half-width aux
# decoder), equal total steps, >= 40 epochs of a 12k-image CIFAR-10 subset, bf16 + channels_last,
# then `dae probe` on every run. Writes sweep.json / sweep.md / sweep.png and each run's eval and
# probe JSON to $OUT (the `run` tool brings $OUT back; the weights stay on the GPU machine).
#
#   scripts/gpu_cifar10_study.sh prepare   # here (data + network): gpu_data/*.npz, gpu_wheels/
#   scripts/gpu_cifar10_study.sh run       # on the GPU machine, offline: install, sweep, collect
#   TINY=1 OUT=/tmp/x scripts/gpu_cifar10_study.sh prepare run   # CPU smoke test, ~300 images
#
# The GPU machine has PyTorch but not diffusers and no network: `prepare` packs the images into one
# uint8 .npz (`dae data pack`) and downloads wheels of dae's other dependencies (versions pinned
# to this environment's); `run` installs from that folder with `pip --no-index` into a venv that
# sees the machine's torch. Both folders are git-ignored; carry them: see docs/gpu.md.
# Budget (sized, not yet measured on a GPU): 4 runs (2 variants x 2 seeds) in parallel on one
# GPU, 3,750 steps of batch 128 = 40 epochs each, then a short probe; check the printed timings.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TINY=${TINY:-0}
WHEELS=${WHEELS:-gpu_wheels}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
if [ "$TINY" = 1 ]; then
  N_TRAIN=${N_TRAIN:-256}; N_TEST=${N_TEST:-64}; EPOCHS=${EPOCHS:-1}; BATCH=${BATCH:-64}
  CH=${CH:-32}; SEEDS=${SEEDS:-2}; DEVICE=${DEVICE:-cpu}
  DATA=${DATA:-gpu_data/cifar10_tiny.npz}
  PROBE_ARGS=${PROBE_ARGS:-"--steps 4 --prior-steps 4 -n 32 --curve-every 2 --curve-n 32 --prior-images 64 --prior-n 32 --no-fd"}
else
  N_TRAIN=${N_TRAIN:-12000}; N_TEST=${N_TEST:-2000}; EPOCHS=${EPOCHS:-40}; BATCH=${BATCH:-128}
  CH=${CH:-128}; SEEDS=${SEEDS:-2}; DEVICE=${DEVICE:-cuda}
  DATA=${DATA:-gpu_data/cifar10_12k.npz}
  PROBE_ARGS=${PROBE_ARGS:-"--device $DEVICE --precision bf16 --steps 1500 --batch-size 128 --prior-steps 1500 --prior-batch-size 128 --no-fd"}
fi
PRECISION=${PRECISION:-bf16}
STEPS=${STEPS:-$(( (EPOCHS * N_TRAIN + BATCH - 1) / BATCH ))}
# The GAN term starts DISC_START steps into DAE's stage 2; the baseline's at the same point of
# its run, so that every final decoder gets the same number of GAN steps (as in the CPU study).
DISC_START=${DISC_START:-$(( STEPS / 8 ))}
JOBS=${JOBS:-$(( 2 * SEEDS ))}   # every run at once: small 32x32 steps leave the GPU idle otherwise
RUNS=${RUNS:-/tmp/dae_gpu_c10}   # weights and checkpoints: too big to come back
OUT=${OUT:-runs/gpu_c10}

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

install() {
  if "$PY" -c "import diffusers, torchmetrics, yaml, tqdm, safetensors" 2>/dev/null; then return; fi
  echo "installing dae's dependencies from $WHEELS (offline)"
  local venv=${VENV:-/tmp/dae_gpu_venv}
  local reqs=(diffusers torchmetrics pyyaml tqdm safetensors)
  if "$PY" -m venv --system-site-packages "$venv" 2>/dev/null; then
    "$venv/bin/python" -m pip install -q --no-index --find-links "$WHEELS" "${reqs[@]}"
    PY=$venv/bin/python
  else  # no venv module: the user site
    "$PY" -m pip install -q --user --no-index --find-links "$WHEELS" "${reqs[@]}"
  fi
}

run() {
  install
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  local start=$SECONDS half=$(( STEPS / 2 )) status=0
  local common=(--set "data.root=$(realpath "$DATA")" --set "model.ch=$CH" --set "train.device=$DEVICE"
    --set "train.precision=$PRECISION" --set train.channels_last=true --set "train.batch_size=$BATCH"
    --set train.progress=false --set train.tensorboard=false --set train.log_every=50
    --set "train.ckpt_every=$(( STEPS / 4 > 0 ? STEPS / 4 : 1 ))" --set log.image_every=100000
    --set "disc.start=$DISC_START")
  local sweep=(sweep configs/cifar10_vqgan.yaml --seeds "$SEEDS" --steps "$STEPS"
    --grid schedule.aux_width=0.5 --protocol equal-total "${common[@]}"
    --baseline-set "disc.start=$(( half + DISC_START ))")
  echo "sweep: $STEPS steps x batch $BATCH ($EPOCHS epochs of $N_TRAIN images), $SEEDS seeds, $JOBS jobs"
  echo "report elsewhere: dae ${sweep[*]@Q} --out COPY_OF_OUT --report-only"
  "$PY" -m dae.cli "${sweep[@]}" --out "$RUNS" --jobs "$JOBS" \
    --eval-metrics recon,lipschitz,codebook --eval-args="-n $N_TEST" --probe-args="$PROBE_ARGS" \
    || status=$?
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
