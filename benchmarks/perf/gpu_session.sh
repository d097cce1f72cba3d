#!/usr/bin/env bash
# One short accelerator session (about 7 minutes on an H200): environment, a smoke run of the
# runner, the throughput benchmark (cohort vs sequential baselines, side by side), the quick
# suite at paper scale with its report, and a 200-layer variance check. Summaries go to $OUT.
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
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/env.txt
python3 -c "import jax, flax, optax, pandas, sklearn; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" 2>&1 | tee -a $OUT/env.txt
log smoke
( time timeout 90 python3 -m initbench.benchmarks.cli run quick --scale smoke --out /tmp/smoke --quiet ) 2>&1 | tail -5 | tee $OUT/smoke.txt
log throughput
timeout 120 python3 -m initbench.benchmarks.perf.throughput --members 64 --steps 300 --json $OUT/throughput_mlp.json 2>&1 | tail -6 | tee $OUT/throughput.txt
timeout 150 python3 -m initbench.benchmarks.perf.throughput --model lenet5 --members 32 --steps 100 --repeats 1 --json $OUT/throughput_lenet.json 2>&1 | tail -6 | tee -a $OUT/throughput.txt
log paper
( time timeout 200 python3 -m initbench.benchmarks.cli run quick --scale paper --out /tmp/paper --quiet --json $OUT/paper_run.json ) 2>&1 | tail -5 | tee $OUT/paper.txt
timeout 40 python3 -m initbench.benchmarks.cli report /tmp/paper --out /tmp/paper_report 2>&1 | tail -2 | tee -a $OUT/paper.txt
cp /tmp/paper_report/report.md $OUT/paper_report.md 2>/dev/null; cp /tmp/paper_report/final_accuracy.png $OUT/ 2>/dev/null
log check
( time timeout 60 python3 -m initbench.benchmarks.cli check --depth 200 --width 1024 --activation tanh --init orthogonal --init-args gain=1.0 --out /tmp/check ) 2>&1 | tail -12 | tee $OUT/check.txt
log done
