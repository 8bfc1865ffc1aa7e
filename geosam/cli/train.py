"""``geosam train``: train or fine-tune a network on a triplet dataset (see geosam.train)."""

from __future__ import annotations

import argparse
import dataclasses
import json

from geosam.cli import plain_warnings, reworded

_EPILOG = """\
examples:
  geosam train --data data/triplets --out runs/lite --epochs 20 --batch-size 8 --input-size 384
  geosam train --data data/triplets --out runs/lite --resume          # continue after an interruption
  torchrun --nproc-per-node 8 -m geosam train --data data/triplets --out runs/lite --precision bf16
  geosam train --data data/triplets --out runs/v1 --model remotesam-v1 --init RemoteSAMv1.pth \\
      --lr 3e-5 --batch-size 2 --lr-mult text_encoder.=0.1

Ctrl-C (or SIGTERM) stops at the next step and writes OUT/resume.pt; rerun with --resume.
Writes OUT/config.json, OUT/log.jsonl, OUT/last.safetensors, OUT/best.safetensors, OUT/resume.pt.
An OUT that holds a run is continued with --resume (same settings) or cleared with --overwrite.
"""

#: Flags of the TrainConfig fields whose flag is not the field's name with dashes.
_FLAGS = {"model_options": "--model-option", "balance": "--balance/--no-balance", "augment": "--no-augment",
          "progress": "--quiet", "world_size": "processes (torchrun --nproc-per-node)"}
#: Options without a flag of this command keep their Python names.
_NO_FLAG = {"class_weights", "dice_weight", "val_batch_size", "find_unused_parameters", "sync_bn"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _cli_terms() -> tuple[tuple[str, str], ...]:
    """The trainer's Python-API advice in this command's flags (see geosam.cli.reworded)."""
    from geosam.train import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _NO_FLAG] + ["world_size"]
    return (
        (r"\bpass (resume|overwrite)=True", r"add --\1"),
        (r"\b(resume|overwrite)=True", r"--\1"),
        (r"choose another out folder", "choose another --out"),
        (r"^init '", "--init '"),
        (r"pass the path of its checkpoint instead", "give --init the path of its checkpoint"),
        (r"\binit=", "--init "),
        (r"^freeze prefix", "--freeze prefix"),
        (r"^lr_mult prefix", "--lr-mult prefix"),
        (r"^sources ", "--sources "),
        *((rf"(?m)^  {name}: ", f"  {_flag(name)}: ") for name in names),  # resume_changes' list
    )


def _mult(text: str) -> tuple[str, float]:
    prefix, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected PREFIX=MULT, e.g. backbone.=0.1, got {text!r}")
    return prefix, float(value)


def model_option(text: str) -> tuple[str, object]:
    """argparse type of ``--model-option KEY=VALUE``: the key and its JSON value."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. fine_head=true, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"{key}: {value!r} is not a JSON value (true, 3, \"text\")") from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a network on a (chip, text, mask) dataset",
        description=(
            "Train with RemoteSAM's loss (0.9 weighted CE + 0.1 Dice), AdamW and a poly schedule; AMP on "
            "GPUs, DistributedDataParallel under torchrun, gradient accumulation, validation each epoch "
            "and resumable checkpoints."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="triplet dataset folder (from `geosam prepare`)")
    p.add_argument("--out", required=True, help="run folder for logs and checkpoints")
    p.add_argument("--model", default="remotesam-lite", help="registered architecture (remotesam-lite)")
    p.add_argument("--input-size", type=int, help="network input size (default: the model's)")
    p.add_argument("--model-option", type=model_option, action="append", default=[], metavar="KEY=VALUE",
                   help="architecture setting over the --init checkpoint's (JSON value, repeatable); "
                        "e.g. fine_head=true adds remotesam-lite's stride-2 head to a checkpoint without it")
    p.add_argument("--init", help="initial weights: geosam .safetensors, official .pth (RemoteSAMv1.pth) or a "
                        "registered model's packaged weights (remotesam-lite)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from OUT/resume.pt (with its settings; see docs/training.md, "
                        "'Run folders'); without OUT/resume.pt, start a new run")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the files of the run in OUT (resume.pt, logs, checkpoints) and start afresh")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8, help="per process")
    p.add_argument("--accumulate", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--poly-power", type=float, default=0.9)
    p.add_argument("--lr-mult", type=_mult, action="append", default=[], metavar="PREFIX=MULT",
                   help="learning-rate multiplier for parameters whose name starts with PREFIX (repeatable)")
    p.add_argument("--freeze", action="append", default=[], metavar="PREFIX",
                   help="do not train parameters whose name starts with PREFIX (repeatable)")
    p.add_argument("--presence-weight", type=float, default=0.0,
                   help="weight of the image-level presence term (geosam.train.loss; 0 = the official loss)")
    p.add_argument("--negative-regions", type=float, default=0.0, metavar="SHARE",
                   help="share of class samples turned into look-alike prompts that must stay empty on "
                        "the labelled objects (e.g. 'vehicles' on ships; geosam.data.dataset)")
    p.add_argument("--seam-weight", type=float, default=1.0,
                   help="cross-entropy weight of the background seams between touching instances "
                        "(1 = like any pixel; geosam.data.rasterize.rasterize_separated)")
    p.add_argument("--contact-weight", type=float, default=1.0,
                   help="weight of the contact term for networks with a contact head "
                        "(--model-option contact_head=true; geosam.train.loss.contact_loss)")
    p.add_argument("--clip-grad", type=float, help="clip the gradient norm to this value")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast precision (auto: bf16/fp16 on GPU, fp32 on CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--balance", type=float, default=0.5,
                   help="source balance: each source drawn in proportion to n**BALANCE (1: as stored, 0: equal)")
    p.add_argument("--no-balance", action="store_true", help="plain shuffled epochs over the samples")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--max-zoom-out", type=float, default=1.0, metavar="FACTOR",
                   help="also show 30%% of the chips shrunk by up to FACTOR on a padded canvas, so that "
                        "objects smaller than in any chip are seen (1 = off; geosam.data.dataset.Augment)")
    p.add_argument("--sensor-shift", type=float, default=0.0, metavar="P",
                   help="show this share of the samples with another sensor's levels, colour balance, "
                        "gamma, noise, blur or JPEG (0 = off; geosam.data.dataset.Augment)")
    p.add_argument("--sources", nargs="+", help="train and validate on these sources only (default: all)")
    p.add_argument("--train-limit", type=int, help="train on an evenly spread subset of this many samples")
    p.add_argument("--train-splits", nargs="+", default=["train"])
    p.add_argument("--val-splits", nargs="*", default=["valid"])
    p.add_argument("--val-limit", type=int, help="validate on an evenly spread subset of this many samples")
    p.add_argument("--val-every", type=int, default=1, help="validate every N epochs (and after the last)")
    p.add_argument("--save-every", type=int, default=0, help="also write the resume state every N steps")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--max-steps", type=int, help="stop (resumable) after this many steps in total")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geosam.train import TrainConfig, train

    config = TrainConfig(
        data=args.data, out=args.out, model=args.model, input_size=args.input_size, init=args.init,
        model_options=dict(args.model_option),
        resume=args.resume, overwrite=args.overwrite, epochs=args.epochs, batch_size=args.batch_size,
        accumulate=args.accumulate,
        lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, poly_power=args.poly_power,
        lr_mult=dict(args.lr_mult), freeze=tuple(args.freeze), clip_grad=args.clip_grad,
        presence_weight=args.presence_weight, negative_regions=args.negative_regions,
        seam_weight=args.seam_weight, contact_weight=args.contact_weight,
        precision=args.precision, device=args.device, threads=args.threads, workers=args.workers,
        seed=args.seed, balance=None if args.no_balance else args.balance, augment=not args.no_augment,
        max_zoom_out=args.max_zoom_out, sensor_shift=args.sensor_shift,
        sources=tuple(args.sources) if args.sources else None, train_limit=args.train_limit,
        train_splits=tuple(args.train_splits), val_splits=tuple(args.val_splits), val_limit=args.val_limit,
        val_every=args.val_every, save_every=args.save_every, log_every=args.log_every,
        max_steps=args.max_steps, progress=not args.quiet,
    )
    with reworded(_cli_terms()), plain_warnings("train"):
        result = train(config)
    if not result.completed:
        print(f"stopped at step {result.global_step}; continue with the same command and --resume")
        return 130
    last = result.history[-1] if result.history else {}
    shown = {k: round(float(v), 4) for k, v in last.items() if k in ("train_loss", "val/oIoU", "val/mIoU", "val/empty_ok")}
    print(f"done: {result.global_step} steps, {shown}; weights in {result.out / 'last.safetensors'}")
    return 0
