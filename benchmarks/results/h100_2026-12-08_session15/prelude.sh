# Sourced by this folder's call scripts (from the checkout root, on the device): the GPU bundle, $W for the
# raw files ($1), snap (all of $W into $OUT/results.tgz, after every step: a call cut short keeps what
# finished) and run (one render_throughput.py row set, its profile printed).
set -u
source .gpu/activate.sh
mkdir -p $OUT
W=$1 && rm -rf $W && mkdir -p $W
snap() { tar czf $OUT/results.tgz -C $W .; }
S14=benchmarks/results/session14_2026-12-07
run() {  # variant ("head" = the checkout, else runs/<variant>), output name, render_throughput arguments...
  local v=$1 name=$2; shift 2
  local path=$PWD; [ $v != head ] && path=$PWD/runs/$v
  (cd benchmarks && PYTHONPATH=$path:${PYTHONPATH:-} timeout 100 "$@" --out $W/$name.json 2>&1 | grep -E "^(render|sampler) |rror")
  python $S14/show_profile.py $W/$name.json; snap
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
