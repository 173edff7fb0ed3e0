#!/usr/bin/env bash
# The exact recipe of the models in resources/models/ (runs on a 2-core CPU; resumable: run it
# again after an interruption and every step continues where it stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread per process: stage II runs two at once
BIN=.venv/bin
TASKS="motion-deblur defocus-deblur derain-dehaze desnow raindrop"

$BIN/python scripts/collect_demo_photos.py data
$BIN/dtpm-train prepare data/clean_train -o data/prepared128 --patch 128 --stride 64
$BIN/dtpm-train stage1 --config bundled_stage1 --run-dir runs/bundled_stage1 --quiet
# the shipped base was then continued from step 3000 to 12000: the learning rate picks up
# the 12000-step cosine schedule at step 3000 (4.4e-4); validation every 2000 steps
$BIN/dtpm-train stage1 --config bundled_stage1 --run-dir runs/bundled_stage1 --quiet \
    --iterations 12000 --set loop.validate_every=2000
BASE=runs/bundled_stage1/base.safetensors

run_task() {
    $BIN/dtpm-train stage2 --config bundled_stage2 --task "$1" --base "$BASE" \
        --run-dir "runs/bundled_$1" --quiet > "runs/bundled_$1.log" 2>&1
}
pids=()
for task in $TASKS; do
    run_task "$task" & pids+=($!)
    if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait

mkdir -p resources/models
cp "$BASE" resources/models/base.safetensors
for task in $TASKS; do
    $BIN/dtpm-train eval --base "$BASE" --adapter "runs/bundled_$task/$task.safetensors" \
        --layout synthetic --task "$task" --clean data/eval_clean \
        --steps 1,4,10,50 --device cpu --save-images "eval/$task/examples" -o "eval/$task"
    $BIN/dtpm-train export --run-dir "runs/bundled_$task" -o "resources/models/$task.safetensors" \
        --metrics "eval/$task/eval.csv"
done
$BIN/python scripts/write_manifest.py resources/models

# the README's evidence: table, trade-off plot, before/after strips, texture diagnostics
$BIN/python scripts/summarise_bundled_eval.py eval docs/evidence/dtpm
for task in $TASKS; do
    mkdir -p "docs/evidence/dtpm/$task"
    cp "eval/$task/eval.md" "eval/$task/eval.csv" "eval/$task/tradeoff.png" "docs/evidence/dtpm/$task/"
    $BIN/python scripts/texture_amplitude.py --base "$BASE" \
        --adapter "resources/models/$task.safetensors" --task "$task" --clean data/eval_clean \
        --steps 1,4,10,50 | tee "docs/evidence/dtpm/$task/texture.txt"
done
