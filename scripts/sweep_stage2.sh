#!/usr/bin/env bash
# The campaign's equal-CPU-time sweep (issue 20, README "Training campaign"): Stage II of one
# deblurring task with each candidate initial predictor, each run given the same CPU time
# (iterations = budget x the images/s that benchmarks/bench_train_setups.py measured side by
# side, batch 4), then the initial prediction of every result scored on the held-out judge and
# in range (scripts/predictor_gain.py). One thread per run, runs one after the other.
#   scripts/sweep_stage2.sh TASK "NAME:ITERATIONS:OVERRIDES:INIT" ...
# OVERRIDES: space-separated --set values for model.overrides.predictor.*, "-" for none;
# INIT: an adapter file to continue from, "-" for none.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
TASK=$1; shift
BASE=resources/models/base.safetensors
OUT=runs/sweep_$TASK
mkdir -p "$OUT"
adapters=()
for candidate in "$@"; do
    IFS=: read -r name iterations overrides init <<< "$candidate"
    args=(--set "loop.iterations=$iterations")
    if [ "$overrides" != "-" ]; then
        for o in $overrides; do args+=(--set "model.overrides.predictor.$o"); done
    fi
    if [ "$init" != "-" ]; then args+=(--set "stage2.init=$init"); fi
    /usr/bin/time -f "$name: %U s user, %S s system, %e s wall" -a -o "$OUT/times.txt" \
        .venv/bin/dtpm-train stage2 --config campaign_stage2 --task "$TASK" --base "$BASE" \
        --run-dir "$OUT/$name" --quiet "${args[@]}" > "$OUT/$name.log" 2>&1
    adapters+=("$OUT/$name/$TASK.safetensors")
done
cat "$OUT/times.txt"
.venv/bin/python scripts/predictor_gain.py --base "$BASE" --task "$TASK" --clean data/eval_clean \
    --adapters "${adapters[@]}" | tee "$OUT/gain.md"
