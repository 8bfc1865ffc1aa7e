"""``geosam interpolate``: blend a checkpoint with its fine-tuned descendant (see
geosam.train.interpolate)."""

from __future__ import annotations

import argparse

from geosam.cli import reworded

_EPILOG = """\
examples:
  geosam interpolate --start remotesam-lite --tuned runs/ships/last.safetensors --weight 0.5 \\
      --out ships-half.safetensors
  geosam evaluate --model ships-half.safetensors --data ships/valid --format yolo --prompt boat=ships

weight 0 gives the start weights back, 1 the tuned ones. Score a few weights on your classes and on
the classes you still want answered, and keep the one that suits you (docs/training.md, 'Your own
classes').
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "interpolate",
        help="blend a checkpoint with one fine-tuned from it, to keep what fine-tuning forgot",
        description=(
            "Write (1 - weight) * start + weight * tuned (WiSE-FT): a fine-tuned network keeps more of "
            "what its start weights knew, at some cost to what it learnt."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--start", required=True,
                   help="the weights fine-tuning began from: a geosam .safetensors or a registered model's "
                        "packaged weights (remotesam-lite)")
    p.add_argument("--tuned", required=True, help="the fine-tuned geosam .safetensors")
    p.add_argument("--weight", type=float, required=True, help="share of the tuned weights, 0 to 1")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geosam.train.interpolate import interpolate_weights

    with reworded(((r"^init '", "--start or --tuned '"),
                   (r"pass the path of its checkpoint instead", "pass the path of its checkpoint"))):
        out = interpolate_weights(args.start, args.tuned, args.weight, args.out)
    print(f"wrote {out} ({1 - args.weight:g} x {args.start} + {args.weight:g} x {args.tuned})")
    return 0
