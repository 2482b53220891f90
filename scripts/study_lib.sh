# Shared by scripts/study_probe.sh and scripts/study_priors.sh (sourced): one job per
# (family, seed) on a baseline/DAE pair of runs, JOBS at a time, each under its own lock.
pair_job() {  # OUT RUN...: succeeds (and says "start") when this invocation should make OUT
  local out=$1 r
  shift
  for r in "$@"; do
    [[ -f $r/model.safetensors ]] || { echo "missing (not trained yet): $r"; return 1; }
  done
  mkdir -p "$(dirname "$out")"
  exec 9>"$out.lock"  # held until this job's shell exits
  flock -n 9 || { echo "busy (another invocation runs it): $out"; return 1; }
  echo "start: $out"
}
per_seed() {  # FAMILY...: run the caller's exported `one FAMILY SEED` for every seed
  local fam seed
  export -f pair_job
  for fam in "$@"; do
    for seed in $(seq "$SEED0" $((SEED0 + SEEDS - 1))); do echo "$fam $seed"; done
  done | xargs -P "$JOBS" -I{} bash -c 'one {}'
}
