#!/usr/bin/env bash
# One short accelerator session (about 8 minutes on an H200): environment, a smoke run of the runner
# with its report, and the throughput benchmark with bigger cohorts (initbench vs a hand-written
# jit(vmap(scan)) vs a Python loop of jitted steps, side by side, with the card's measured fp32 and
# bf16 matmul rates). Summaries and tidy rows go to $OUT.
# Run from the repository root: OUT=results/gpu bash benchmarks/perf/gpu_session.sh
set -u
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
# No install needed (the device has no network): a link tree gives the initbench.* namespace.
LINKS=$(mktemp -d); mkdir -p "$LINKS/initbench"
for p in inits models benchmarks; do ln -s "$PWD/$p" "$LINKS/initbench/$p"; done
export PYTHONPATH=$LINKS PYTHONUNBUFFERED=1 INITBENCH_CACHE_DIR=${INITBENCH_CACHE_DIR:-/tmp/jaxcache}
log() { echo "== $(date -u +%T) $*"; }
log env
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/env.txt"
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" 2>&1 | tee -a "$OUT/env.txt"
log smoke
( time timeout 120 python3 -m initbench.benchmarks.cli run quick --scale smoke --out /tmp/smoke --quiet ) 2>&1 | tail -5 | tee "$OUT/smoke.txt"
timeout 60 python3 -m initbench.benchmarks.cli report /tmp/smoke 2>&1 | tail -2 | tee -a "$OUT/smoke.txt"
log throughput
for spec in "small 256 1000" "medium 64 300" "lenet 64 200"; do
  set -- $spec
  timeout 200 python3 -m initbench.benchmarks.perf.throughput --workload "$1" --members "$2" --steps "$3" \
    --repeats 3 --sequential-members 2 --no-torch --out "$OUT/throughput_$1.csv" 2>&1 | tail -8 | tee -a "$OUT/throughput.txt"
done
log done
