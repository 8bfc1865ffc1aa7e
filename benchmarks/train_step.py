"""Training step time of a network on this machine: seconds per optimizer step (forward, loss,
backward, AdamW) and per sample, at each input size, on real batches of a triplet dataset.

Batches are loaded once before timing (data loading is measured separately, per sample), so the
figures are the network's cost; the median over the timed steps damps a CPU shared with other work.

    python benchmarks/train_step.py --data /tmp/triplets                       # remotesam-lite, 384 and 512
    python benchmarks/train_step.py --data /tmp/triplets --sizes 256 --batch-size 16 --precisions bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from geosam.data import TripletDataset
from geosam.train import build_network, segmentation_loss
from geosam.train.trainer import _autocast, param_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="triplet dataset (geosam prepare)")
    parser.add_argument("--model", default="remotesam-lite")
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="autocast precisions, timed in alternating steps so that CPU contention hits all alike")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    for size in args.sizes:
        net = build_network(args.model, input_size=size).train()
        ds = TripletDataset.for_network(args.data, net, "train", augment=True)
        t0 = time.perf_counter()
        items = [ds[i * 37 % len(ds)] for i in range(args.batch_size * 2)]
        load_s = (time.perf_counter() - t0) / len(items)
        batches = [torch.utils.data.default_collate(items[k : k + args.batch_size]) for k in (0, args.batch_size)]
        opt = torch.optim.AdamW(param_groups(net, lr=1e-4, weight_decay=0.01, lr_mult={}))
        times: dict[str, list[float]] = {p: [] for p in args.precisions}
        for step in range(args.steps + 2):
            batch = batches[step % 2]
            for precision in args.precisions:
                t = time.perf_counter()
                with _autocast(precision, torch.device("cpu")):
                    logits = net(batch["pixels"], batch["input_ids"], batch["attention_mask"])
                loss = segmentation_loss(logits, batch["mask"]).total
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step >= 2:
                    times[precision].append(time.perf_counter() - t)
        for precision, ts in times.items():
            sec = statistics.median(ts)
            row = {"model": args.model, "input_size": size, "batch_size": args.batch_size, "precision": precision,
                   "threads": args.threads, "sec_per_step": round(sec, 3),
                   "sec_per_sample": round(sec / args.batch_size, 3), "min_sec_per_step": round(min(ts), 3),
                   "load_sec_per_sample": round(load_s, 4)}
            print(json.dumps(row), flush=True)
            results.append(row)


if __name__ == "__main__":
    main()
