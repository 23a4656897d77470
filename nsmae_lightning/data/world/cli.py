"""``nsmae world``: generate the synthetic world in nuScenes or KITTI format."""

from __future__ import annotations

import argparse
import dataclasses

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nsmae_lightning.data.world.config import WorldConfig
from nsmae_lightning.data.world.kitti_writer import write_kitti
from nsmae_lightning.data.world.nuscenes_writer import write_nuscenes
from nsmae_lightning.data.world.preview import write_preview


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(prog="nsmae world", description=__doc__)
    parser.add_argument("--out", required=True, help="folder to write the dataset into")
    parser.add_argument("--scenes", type=int, help="number of scenes (default: WorldConfig's)")
    parser.add_argument("--frames", type=int, help="keyframes per scene (2 Hz)")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (same seed -> same bytes)")
    parser.add_argument("--format", choices=("nuscenes", "kitti"), default="nuscenes")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="camera image size")
    parser.add_argument("--sweeps", type=int, help="LiDAR sweeps before each keyframe (nuScenes: 9)")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="FIELD=VALUE",
        help="any other WorldConfig field, e.g. --set val_fraction=0.15 clutter_density=8",
    )
    parser.add_argument("--preview", help="also write a preview PNG of the first sample (nuScenes format)")
    parser.add_argument("--workers", type=int, default=1, help="processes casting scenes in parallel")
    parser.add_argument("--tiny", action="store_true", help="start from WorldConfig.tiny (tests, seconds)")
    return parser


def config_from_args(args: argparse.Namespace) -> WorldConfig:
    """The world config the arguments describe."""
    cfg = WorldConfig.tiny(seed=args.seed) if args.tiny else WorldConfig(seed=args.seed)
    changes: dict[str, int | float] = {}
    if args.scenes is not None:
        changes["scenes"] = args.scenes
    if args.frames is not None:
        changes["keyframes"] = args.frames
    if args.image_size is not None:
        changes["image_height"], changes["image_width"] = args.image_size
    if args.sweeps is not None:
        changes["sweeps"] = args.sweeps
    fields = {field.name for field in dataclasses.fields(WorldConfig)}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(fields))}")
        kind = type(getattr(cfg, name))
        try:
            changes[name] = kind(value)
        except ValueError as error:
            raise ValueError(f"--set {item!r}: {name} takes a {kind.__name__}") from error
    return dataclasses.replace(cfg, **changes)


def main(argv: list[str]) -> int:
    """Run ``nsmae world``; returns the exit code."""
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        cfg = config_from_args(args)
    except ValueError as error:
        console.print(f"[red]nsmae world: {error}")
        return 2
    if args.preview and args.format != "nuscenes":
        console.print("[red]nsmae world: --preview needs --format nuscenes")
        return 2
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"{args.format} frames", total=cfg.scenes * cfg.keyframes)

        def advance() -> None:
            progress.advance(task)

        if args.format == "nuscenes":
            root = write_nuscenes(args.out, cfg, on_frame=advance, workers=args.workers)
        else:
            root = write_kitti(args.out, cfg, on_frame=advance, workers=args.workers)
    console.print(f"wrote {cfg.scenes} scenes x {cfg.keyframes} keyframes ({args.format}) to {root}")
    if args.preview:
        console.print(f"wrote preview to {write_preview(root, args.preview)}")
    return 0
