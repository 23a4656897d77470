"""Eleventh session: where the render step's host time goes. Runs benchmarks/render_throughput.py with its
timing replaced by cProfile over --repeats calls (after the warm-up), and prints the functions by own
time and by cumulative time. Usage: python host_profile.py OUT.txt <render_throughput args>."""
import cProfile
import io
import pstats
import sys

sys.path.insert(0, "benchmarks")
import render_throughput as rt  # noqa: E402

out = sys.argv[1]
timed = rt.time_iterations


def profiled(step_fn, args, device):
    import torch

    for _ in range(args.warmup):
        step_fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.repeats):
        step_fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    text.write(f"# {args.repeats} calls\n")
    stats.sort_stats("tottime").print_stats(45)
    stats.sort_stats("cumulative").print_stats(70)
    with open(out, "a") as handle:
        handle.write(text.getvalue())
    return timed(step_fn, args, device)


rt.time_iterations = profiled
sys.argv = ["render_throughput.py", *sys.argv[2:]]
rt.main()
