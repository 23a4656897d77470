#!/usr/bin/env bash
# CPU side, before the next GPU session's first call (from the checkout root): this folder's scripts into
# runs/ and a variant copy of HEAD in runs/points (the sampler along rays as a points kernel, then the
# kernels at coordinates: sampler_points_first.patch). Then: run(command="bash runs/next_call.sh", carry=[".gpu", "runs"]).
set -euo pipefail
here=benchmarks/results/h200_2026-12-03_session9
mkdir -p runs
cp $here/ncu_target.py $here/next_call.sh $here/next_call2.sh $here/mlp_configs.py runs/
rm -rf runs/points && mkdir -p runs/points && git archive HEAD | tar x -C runs/points
git apply --directory=runs/points $here/sampler_points_first.patch
rm -rf runs/points/{benchmarks/results,experiments,docs,tests}
