# Twelfth session, call 7: where the eager call's host time goes at 131,072 rays per element, 8 channels
# (host 11.4 ms of a 16.9 ms wall, against 12.2 ms for the graph's replay): a profile of 3 calls, host ops.
set -u
source .gpu/activate.sh
mkdir -p $OUT
cd benchmarks
timeout 200 python render_throughput.py --dtypes bf16 --warmup 5 --repeats 20 --kinds march,render \
  --pairs trilinear_triton:packed_triton --color-mlps triton --rays 131072 --feature-channels 8 --profile 3 --top 12 \
  --out $OUT/profile_c8_r131072.json 2>&1 | tee $OUT/call7.log | grep -E "^(march|render) |rror"
python - $OUT/profile_c8_r131072.json <<'PY'
import json, sys
for row in json.load(open(sys.argv[1]))["rows"]:
    print(row["kind"], "gpu_ms", row.get("gpu_ms"), "cpu_op_ms", row.get("cpu_op_ms"))
    for name, ms in row.get("top_cpu_ops", []):
        print("   cpu", f"{ms:8.3f}", name[:90])
PY
