#!/usr/bin/env bash
# CPU side, before the next GPU session's first call (from the checkout root): the scripts into runs/, and two
# variant copies of HEAD: runs/hoisted (the colour MLP backward with hoisted weights) and runs/nhwc (the BEV
# decoder channels-last). Then: run(command="bash runs/next_call.sh", carry=[".gpu", "runs"]).
set -euo pipefail
here=benchmarks/results/h200_2026-12-03_session8
mkdir -p runs
cp $here/ncu_target.py $here/which_config.py $here/next_call.sh runs/
for variant in hoisted:mlp_hoisted_weights nhwc:decoder_channels_last; do
  name=${variant%%:*}; patch=${variant##*:}
  rm -rf runs/$name && mkdir -p runs/$name && git archive HEAD | tar x -C runs/$name
  git apply --directory=runs/$name $here/$patch.patch
  rm -rf runs/$name/{benchmarks/results,experiments,docs,tests}
done
