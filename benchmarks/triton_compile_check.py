"""Compile the render kernels for an NVIDIA GPU without one: catches compile errors, shows registers and atomics.

Triton lowers a kernel to PTX and ptxas assembles it with no GPU present, so this runs on
any machine with `triton` (a CPU-only box included). For every tile of the kernels'
autotuning lists it prints registers per thread, spilled bytes (a tile that spills
will time badly) and the atomic / reduction instructions of the PTX, e.g. whether the
sampler's gradient adds compiled to ``red.global...add.v4.f32``, and its global loads by width
(``ld.global.v4.b32``: 16 bytes). The interpreter tests check the values; this checks what a GPU
would run.

    python benchmarks/triton_compile_check.py --arch 90
    python benchmarks/triton_compile_check.py --kernels sampler --shift  # + the reads of padded rows' features
    python benchmarks/triton_compile_check.py --kernels fused  # the fused march's kernels only (~4 min on 2 cores)
    python benchmarks/triton_compile_check.py --kernels fused_mlp  # the same kernels reading sampled values
    python benchmarks/triton_compile_check.py --kernels color_mlp  # the colour MLP alone (RenderConfig.color_mlp)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from nsmae_lightning.models import (
    color_mlp_triton,
    composite_triton,
    march_fused_triton,
    ray_samples_triton,
    trilinear_triton,
)

# volume element strides (stride_*) and gradient row strides (row_*), as the render network's volume has them
LAYOUT = {f"{kind}_{axis}": "i32" for kind in ("stride", "row") for axis in "bzyx"}
SAMPLER_ARGS = {"volume": "*bf16", "coords": "*fp32", "batch_index": "*i32", "kept": "*i64", "samples": "i32",
                "size_x": "i32", "size_y": "i32", "size_z": "i32", "channels": "i32", **LAYOUT}
POINTS_ARGS = {"ray_index": "*i64", "t": "*fp32", "ray_rows": "*fp32", "coords": "*fp32", "batch_index": "*i32",
               "samples": "i32"}
SAMPLER_FORWARD = {**SAMPLER_ARGS, "out": "*bf16", "out_rest": "*bf16"}  # SPLIT: density and features apart
SAMPLER_BACKWARD = {**SAMPLER_ARGS, "grad_out": "*bf16", "grad_rest": "*bf16", "grad_head": "*fp32",
                    "grad_tail": "*fp32", "grad_coords": "*fp32"}
COMPOSITE_ARGS = {"sigma": "*bf16", "sigma_stride": "i64", "t": "*fp32", "rgb": "*bf16", "offsets": "*i64",
                  "opacity": "*fp32", "depth": "*fp32", "color": "*fp32", "rays": "i32", "step": "fp32"}
COMPOSITE_ABOVE = {"sigma": "*bf16", "sigma_stride": "i64", "offsets": "*i64", "above": "*u8", "rays": "i32",
                   "step": "fp32", "epsilon": "fp32"}  # the culled march's weight test
COMPOSITE_BACKWARD = {**COMPOSITE_ARGS, "grad_opacity": "*fp32", "grad_depth": "*fp32", "grad_color": "*fp32",
                      "grad_sigma": "*bf16", "grad_rgb": "*bf16"}

FUSED_ARGS = {
    "volume": "*bf16", "ray_rows": "*fp32", "t": "*fp32", "offsets": "*i64",
    "ray_bias": "*fp32", "w1": "*bf16", "w2": "*bf16", "b2": "*bf16", "w3": "*bf16", "b3": "*bf16",
    "opacity": "*fp32", "depth": "*fp32", "color": "*fp32", "rays": "i32", "step": "fp32",
    "size_x": "i32", "size_y": "i32", "size_z": "i32", "channels": "i32", **LAYOUT,
}
FUSED_BACKWARD = {**FUSED_ARGS, **{name: "*fp32" for name in (
    "grad_opacity", "grad_depth", "grad_color", "grad_density", "grad_features", "grad_bias", "grad_w1", "grad_w2",
    "grad_b2", "grad_w3", "grad_b3")}}
COLOR_MLP_ARGS = {"features": "*bf16", "feature_stride": "i64", "ray_index": "*i64", "ray_bias": "*fp32",
                  "w1": "*bf16", "w2": "*bf16", "b2": "*bf16", "w3": "*bf16", "b3": "*bf16", "rows_total": "i32"}
COLOR_MLP_FORWARD = {**COLOR_MLP_ARGS, "color_out": "*bf16"}
COLOR_MLP_BACKWARD = {**COLOR_MLP_ARGS, "grad_color": "*bf16", "grad_features": "*bf16",
                      **{name: "*fp32" for name in ("grad_bias", "grad_w1", "grad_w2", "grad_b2", "grad_w3", "grad_b3")}}
# fused_mlp: the fused kernels reading sampled values; color_mlp: the colour MLP's own kernels
PACK_ARGS = {"near": "*fp32", "far": "*fp32", "cap": "*i64", "counts": "*i64", "offsets": "*i64", "ray_index": "*i64",
             "sample_index": "*i64", "t": "*fp32", "rays": "i32", "width": "i32", "step": "fp32"}
KERNELS = ("sampler", "composite", "fused", "fused_mlp", "color_mlp", "pack")


def signature(kernel: Any, types: dict[str, str], constants: dict[str, Any]) -> dict[str, str]:
    """The kernel's arguments in order: pointer / scalar types, "constexpr" for the constants."""
    return {name: "constexpr" if name in constants else types[name] for name in kernel.arg_names}


def ptxas_path() -> Path:
    """The newest ptxas shipped with triton (it must accept the PTX version triton emits)."""
    binaries = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
    for name in ("ptxas-blackwell", "ptxas"):
        if (binaries / name).exists():
            return binaries / name
    raise SystemExit(f"no ptxas under {binaries}")


def describe(kernel: Any, types: dict[str, str], constants: dict[str, Any], warps: int, arch: int,
             maxnreg: int | None = None, divisible: tuple[str, ...] = ()) -> str:
    """Compile one specialisation (``maxnreg``: a register cap, as a tuning config's; ``divisible``: integer
    arguments Triton would see divisible by 16, as it specialises them at launch); its registers, spills,
    atomic instructions and global loads."""
    arguments = signature(kernel, types, constants)
    aligned = {(index,): [["tt.divisibility", 16]] for index, (name, kind) in enumerate(arguments.items())
               if kind[0] == "*" or name in divisible}
    source = ASTSource(fn=kernel, signature=arguments, constexprs=constants, attrs=aligned)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options={"num_warps": warps,
                                                                            **({"maxnreg": maxnreg} if maxnreg else {})})
    ptx = compiled.asm["ptx"]
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as handle:
        handle.write(ptx)
        handle.flush()
        report = subprocess.run([str(ptxas_path()), f"-arch=sm_{arch}a", "-v", handle.name, "-o", "/dev/null"],
                                capture_output=True, text=True).stderr
    registers = re.findall(r"Used (\d+) registers", report)
    spills = re.findall(r"(\d+) bytes spill stores", report)
    atomics = dict(Counter(re.findall(r"\b(?:atom|red)\.[\w.]+", ptx)))
    # tensor-core instructions: wgmma (sm_90, B operand from shared memory) or mma.sync (operands in registers)
    mma = dict(Counter(re.findall(r"\b(wgmma\.mma_async|mma\.sync)\b", ptx)))
    loads = dict(Counter(re.findall(r"\bld\.global(?:\.[\w]+)*", ptx)))
    return (f"registers {registers[0] if registers else '?'}, spill {spills[0] if spills else '?'} B, "
            f"atomics {atomics}, mma {mma}, loads {loads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100 / H200)")
    parser.add_argument("--channels", type=int, default=33, help="C of the sampled volume (1 + Cf)")
    parser.add_argument("--hidden", type=int, default=64, help="mlp_hidden of the fused march's colour MLP")
    parser.add_argument("--kernels", default=",".join(KERNELS), help=f"comma-separated, of {','.join(KERNELS)}")
    parser.add_argument("--shift", action="store_true",
                        help="sampler: also the forward reads of a volume in rows padded in front (volume_row_bytes: "
                             "strides divisible by 16), from the volume's pointer and from its channel 1 (SHIFT)")
    args = parser.parse_args()
    kernels = set(args.kernels.split(","))
    if kernels - set(KERNELS):
        raise SystemExit(f"--kernels: unknown {sorted(kernels - set(KERNELS))}; expected some of {list(KERNELS)}")
    split = trilinear_triton.channel_split(args.channels)
    if "sampler" in kernels:
        points = {"BLOCK_M": trilinear_triton.POINTS_BLOCK, "WIDE": False}
        print("sampler points", points, "warps 4:",
              describe(trilinear_triton._points_kernel, POINTS_ARGS, points, 4, args.arch))
    for config in trilinear_triton._FORWARD_TUNING if "sampler" in kernels else []:
        tile = {**split, "WIDE": False, "SPLIT": True, "SHIFT": 0, "KEPT": False, **config.kwargs}
        print("sampler forward ", config.kwargs, f"warps {config.num_warps}:",
              describe(trilinear_triton._forward_kernel, SAMPLER_FORWARD, tile, config.num_warps, args.arch))
    padded_reads = {  # the whole volume, and a culled march's feature pass, each without and with SHIFT
        "whole": {**split, "SHIFT": 0, "KEPT": False},
        "whole SHIFT": {**trilinear_triton.density_first_split(args.channels), "SHIFT": 1, "KEPT": False},
        "features": {**trilinear_triton.channel_split(args.channels - 1, first=1), "SHIFT": 0, "KEPT": True},
        "features SHIFT": {**trilinear_triton.channel_split(args.channels - 1, first=1), "SHIFT": 1, "KEPT": True}}
    strides = tuple(f"stride_{axis}" for axis in "bzyx")
    for name, blocks in padded_reads.items() if "sampler" in kernels and args.shift else []:
        config = trilinear_triton._FORWARD_TUNING[0]
        tile = {**blocks, "WIDE": False, "SPLIT": True, **config.kwargs}
        print(f"sampler forward, padded rows, {name}", config.kwargs, f"warps {config.num_warps}:",
              describe(trilinear_triton._forward_kernel, SAMPLER_FORWARD, tile, config.num_warps, args.arch,
                       divisible=strides))
    for config in trilinear_triton._TUNING if "sampler" in kernels else []:
        tile = {**split, "WIDE": False, "NEED_COORDS": False, "SPLIT": True, "SHIFT": 0, "KEPT": False, **config.kwargs}
        print("sampler backward", config.kwargs, f"warps {config.num_warps}:",
              describe(trilinear_triton._backward_kernel, SAMPLER_BACKWARD, tile, config.num_warps, args.arch))
    if "pack" in kernels:
        listing = {"BLOCK": ray_samples_triton.LIST_RAYS, "CHUNK": ray_samples_triton.LIST_CHUNK}
        for name, kernel, block in (("count", ray_samples_triton._count_kernel, {"BLOCK": ray_samples_triton.BLOCK_RAYS}),
                                    ("list", ray_samples_triton._list_kernel, listing)):
            print(f"pack {name}", block, "warps 4:", describe(kernel, PACK_ARGS, block, 4, args.arch))
    for config in composite_triton._TUNING if "composite" in kernels else []:
        tile = {"HAS_RGB": True, **config.kwargs}
        print("composite forward ", config.kwargs, f"warps {config.num_warps}:",
              describe(composite_triton._forward_kernel, COMPOSITE_ARGS, tile, config.num_warps, args.arch))
        print("composite backward", config.kwargs, f"warps {config.num_warps}:",
              describe(composite_triton._backward_kernel, COMPOSITE_BACKWARD, tile, config.num_warps, args.arch))
        print("composite above   ", config.kwargs, f"warps {config.num_warps}:",
              describe(composite_triton._above_kernel, COMPOSITE_ABOVE, config.kwargs, config.num_warps,
                       args.arch))

    features = args.channels - 1
    fused = {"FEATURES": features, "FEATURE_LANES": march_fused_triton._lanes(features), "HIDDEN": args.hidden,
             "HIDDEN_LANES": march_fused_triton._lanes(args.hidden), "PRECISION": "tf32", "UPCAST": False,
             "WIDE": False}
    # fused_mlp writes the sampled values' gradient rows in their dtype; fused scatters float32 into the volume's
    sampled_backward = {**FUSED_BACKWARD, "grad_density": "*bf16", "grad_features": "*bf16"}
    for name, sampled in (("fused", False), ("fused_mlp", True)):
        backward_types = sampled_backward if sampled else FUSED_BACKWARD
        for config in march_fused_triton._TUNING if name in kernels else []:
            tile = {**fused, "SAMPLED": sampled, **config.kwargs}
            print(f"{name} forward ", config.kwargs, f"warps {config.num_warps}:",
                  describe(march_fused_triton._forward_kernel, FUSED_ARGS, tile, config.num_warps, args.arch))
            print(f"{name} backward", config.kwargs, f"warps {config.num_warps}:",
                  describe(march_fused_triton._backward_kernel, backward_types, tile, config.num_warps, args.arch))
    mlp = {name: fused[name] for name in ("FEATURES", "FEATURE_LANES", "HIDDEN", "HIDDEN_LANES", "PRECISION", "UPCAST")}
    for config in color_mlp_triton._TUNING if "color_mlp" in kernels else []:
        print("color_mlp forward ", config.kwargs, f"warps {config.num_warps}:",
              describe(color_mlp_triton._forward_kernel, COLOR_MLP_FORWARD, {**mlp, **config.kwargs},
                       config.num_warps, args.arch))
    for config in color_mlp_triton._BACKWARD_TUNING if "color_mlp" in kernels else []:
        for part in sorted(color_mlp_triton._PART_SUMS):  # 0: one launch for every gradient; 1, 2: the split launches
            print(f"color_mlp backward part {part}", config.kwargs, f"warps {config.num_warps}, maxnreg {config.maxnreg}:",
                  describe(color_mlp_triton._backward_kernel, COLOR_MLP_BACKWARD, {**mlp, **config.kwargs, "PART": part},
                           config.num_warps, args.arch, config.maxnreg))

if __name__ == "__main__":
    main()
