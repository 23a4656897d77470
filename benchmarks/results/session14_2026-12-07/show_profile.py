"""Print the profiled rows of a render_throughput.py JSON: wall ms, GPU ms, coloured fraction, top kernels."""

import json
import sys

for row in json.load(open(sys.argv[1]))["rows"]:
    print(sys.argv[1].split("/")[-1], row["kind"], row["sampler"], "wall_ms", round(row["seconds"] * 1e3, 2),
          "gpu_ms", row.get("gpu_ms"), "coloured", row.get("colored_fraction"), "kernels", row.get("kernels_per_call"))
    for name, ms in row.get("top_gpu_ops", [])[:12]:
        print("   op", f"{ms:8.3f}", name[:110])
