#!/usr/bin/env bash
# The exact recipe of the bundled single-pass model (resources/models/singlepass.safetensors)
# and of the plain-L1 network it is compared with in the README. Runs on one CPU core;
# resumable: run it again after an interruption and every step continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
BIN=.venv/bin
PRETRAIN_ITS=${PRETRAIN_ITS:-1500}
STEP_ITS=${STEP_ITS:-600}

$BIN/python scripts/collect_demo_photos.py data
# 1. TMDDP pre-training on clean crops
$BIN/dtpm-train singlepass pretrain --config singlepass_cpu --run-dir runs/sp_pretrain \
    --iterations "$PRETRAIN_ITS" --quiet
# 2. MTUL over the five tasks with GEF (the diffusion-trained network that ships)
$BIN/dtpm-train singlepass multitask --config singlepass_cpu --run-dir runs/sp_multitask \
    --init runs/sp_pretrain/pretrained.safetensors --step-iterations "$STEP_ITS" --quiet
# 3. The baseline: the same schedule with every diffusion part off, from random weights
$BIN/dtpm-train singlepass multitask --config singlepass_cpu --run-dir runs/sp_plain_l1 \
    --plain-l1 --step-iterations "$STEP_ITS" --quiet
