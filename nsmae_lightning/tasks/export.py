"""``nsmae export CKPT --out embedding.pt``: hand the pretrained embedding to other codebases.

The file is a plain ``torch.save`` dict: ``format`` ("nsmae-embedding/1"),
``state_dict`` (every ``embedding.*`` tensor; names in docs/embedding_keys.md),
``geometry`` (pc_range, voxel_size, num_cameras, bev_shape) and ``source``.
"""

from __future__ import annotations

import argparse

from nsmae_lightning.tasks.pretrained import export_embedding, read_pretrained


def main(argv: list[str]) -> int:
    """Export the embedding of a task checkpoint."""
    parser = argparse.ArgumentParser(prog="nsmae export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a PretrainTask (or any task) Lightning checkpoint")
    parser.add_argument("--out", required=True, help="file to write (atomically)")
    args = parser.parse_args(argv)
    out = export_embedding(args.checkpoint, args.out)
    weights, geometry = read_pretrained(out)
    print(f"wrote {out}: {len(weights)} embedding tensors, geometry {geometry}")
    return 0
