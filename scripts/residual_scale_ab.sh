#!/usr/bin/env bash
# The residual-scale A/B of issue 13 (docs/evidence/dtpm/residual_scale_ab.md): Stage I from
# scratch on the bundled recipe's photos, 2000 iterations, the residual scaled by its measured
# RMS (s = 0: measure) against unscaled (s = 1), same seed and data; the validation logs the
# x0 error relative to predicting zero every 250 iterations. ~25 min per run on one CPU thread.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for s in 0.0 1.0; do
    .venv/bin/dtpm-train stage1 --config bundled_stage1 --run-dir "runs/scale_ab2/s_$s" --quiet \
        --iterations 2000 --set 'model.init=""' --set loop.validate_every=250 \
        --set loop.val_images=2 --set loop.checkpoint_every=500 \
        --set "calibration.residual_scale=$s" --set optim.warmup=50 \
        > "runs/scale_ab2/s_$s.log" 2>&1
done
grep -h "^step\|exported" runs/scale_ab2/s_0.0.log runs/scale_ab2/s_1.0.log
