#!/usr/bin/env bash
# CPU side, before the next GPU session's first call (from the checkout root): this folder's scripts into
# runs/ and variant copies of HEAD: runs/points (the sampler along rays as a points kernel, then the
# kernels at coordinates: sampler_points_first.patch) and runs/bf16red (the sampler's backward reducing in
# the volume's dtype, a timing experiment: sampler_bf16_reductions.patch). Then: run(command="bash runs/next_call.sh", carry=[".gpu", "runs"]),
# and again with runs/next_call2.sh.
set -euo pipefail
here=benchmarks/results/h200_2026-12-03_session9
mkdir -p runs
cp $here/ncu_target.py $here/next_call.sh $here/next_call2.sh $here/mlp_configs.py runs/
bash benchmarks/make_variant.sh points $here/sampler_points_first.patch
bash benchmarks/make_variant.sh bf16red $here/sampler_bf16_reductions.patch
