#!/usr/bin/env bash
# A variant copy of HEAD for a same-call A/B on the GPU: `git archive HEAD` unpacked into runs/NAME, PATCH
# applied, tests / docs / results dropped (the device call carries `runs`). From the checkout root:
#   bash benchmarks/make_variant.sh NAME [PATCH]      (no PATCH: HEAD itself, e.g. a base for render_ab.sh)
set -euo pipefail
name=$1
rm -rf "runs/$name" && mkdir -p "runs/$name" && git archive HEAD | tar x -C "runs/$name"
if [ $# -ge 2 ]; then git apply --directory="runs/$name" "$2"; fi
rm -rf "runs/$name"/{benchmarks/results,experiments,docs,tests}
