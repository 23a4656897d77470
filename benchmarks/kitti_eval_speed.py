"""Time the KITTI evaluator on a val-sized synthetic split (3,769 frames).

Usage::

    python benchmarks/kitti_eval_speed.py [--frames 3769] [--seed 0] [--repeats 3]

numba compiles into a fresh temporary cache folder first (so the compile time printed is a
real cold compile, not a cache load) on a tiny split; then the full evaluation (all classes,
difficulties, metrics, both IoU sets, R11 and R40) is timed ``--repeats`` times.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    """Run the benchmark and print timings; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3769)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args(argv)

    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="kitti_eval_numba_")
    from nsmae_lightning.evaluation.kitti.eval import evaluate, format_results
    from nsmae_lightning.evaluation.kitti.synthetic import synthetic_split

    start = time.perf_counter()
    gt_frames, det_frames = synthetic_split(arguments.frames, seed=arguments.seed)
    generate_seconds = time.perf_counter() - start
    num_gt = sum(len(frame) for frame in gt_frames)
    num_det = sum(len(frame) for frame in det_frames)

    start, start_cpu = time.perf_counter(), time.process_time()
    evaluate(gt_frames[:20], det_frames[:20])
    compile_seconds, compile_cpu = time.perf_counter() - start, time.process_time() - start_cpu

    timings, cpu_timings = [], []
    for _ in range(arguments.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        results = evaluate(gt_frames, det_frames)
        timings.append(time.perf_counter() - start)
        cpu_timings.append(time.process_time() - start_cpu)

    print(format_results(results))
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"frames: {arguments.frames} ({num_gt} ground-truth rows, {num_det} detections), seed {arguments.seed}")
    print(f"generate: {generate_seconds:.2f} s")
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.1f} (the CPUs are shared; CPU time is the steadier figure)")
    print(f"numba compile (cold cache, 20-frame warm-up): {compile_seconds:.2f} s wall, {compile_cpu:.2f} s CPU")
    print(
        f"evaluate ({arguments.repeats} runs): wall min {min(timings):.2f} s, median {statistics.median(timings):.2f} s;"
        f" CPU min {min(cpu_timings):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
