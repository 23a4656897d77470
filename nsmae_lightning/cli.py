"""The ``nsmae`` command: a LightningCLI plus a few plain sub-commands.

``nsmae fit|validate|test|predict --config X.yaml`` is Lightning's CLI with every
task and data module selectable from YAML (torchgeo's ``main.py`` shape). The
plain sub-commands (``world``, ``demo``, ...) are ordinary argparse programs,
imported only when called so that ``nsmae fit`` starts fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from nsmae_lightning.checkpoint_file import LIGHTNING_CKPT_KEYWORDS, checkpoint_problem, ckpt_path_argument

# sub-command -> "module:function"; each function takes argv (list[str]) and returns an exit code.
PLAIN_COMMANDS: dict[str, str] = {
    "world": "nsmae_lightning.data.world.cli:main",
    "kitti-eval": "nsmae_lightning.evaluation.kitti.cli:main",
    "export": "nsmae_lightning.tasks.export:main",
    "curves": "nsmae_lightning.evaluation.curves:main",
    "sweep": "nsmae_lightning.sweep:main",
    "demo": "nsmae_lightning.demo:main",
}


def run_lightning_cli(args: Sequence[str] | None = None) -> None:
    """Run Lightning's CLI over every registered task and data module."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    import nsmae_lightning.data  # noqa: F401  (registers data modules for subclass mode)
    import nsmae_lightning.tasks  # noqa: F401  (registers tasks for subclass mode)

    LightningCLI(
        model_class=LightningModule,
        datamodule_class=LightningDataModule,
        seed_everything_default=0,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=list(args) if args is not None else None,
    )


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of ``nsmae`` and ``python -m nsmae_lightning``."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in PLAIN_COMMANDS:
        module_name, function_name = PLAIN_COMMANDS[argv[0]].split(":")
        command = getattr(importlib.import_module(module_name), function_name)
        code = int(command(argv[1:]) or 0)
        if args is None:
            sys.exit(code)
        return code
    if argv[:1] in (["-h"], ["--help"]):
        print("plain sub-commands: " + ", ".join(sorted(PLAIN_COMMANDS)))
    ckpt_path = ckpt_path_argument(argv)
    if ckpt_path and ckpt_path not in LIGHTNING_CKPT_KEYWORDS and ckpt_path.lower() != "null":
        problem = checkpoint_problem(ckpt_path)
        if problem is not None:  # Lightning's own error would name no file
            print(f"nsmae: --ckpt_path {ckpt_path}: {problem}", file=sys.stderr)
            if args is None:
                sys.exit(2)
            return 2
    # From the shell LightningCLI reads sys.argv itself (given both, it warns that they may differ).
    run_lightning_cli(None if args is None else argv)
    return 0


if __name__ == "__main__":
    main()
