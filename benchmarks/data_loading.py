"""Data-loader cost of training: milliseconds per augmented sample in one process, and where it goes.

A GPU step of remotesam-lite (batch 32 at 512 px, bf16) took 0.128 s on an H100 while one loader
process needed 54 ms per sample (iSAID, NEON and Vaihingen chips) on that machine's CPUs, and 15
workers fed 0.18 s per step: GPU training waits on this code. Run it before and after a change to the dataset.

    python benchmarks/data_loading.py --data data/triplets                  # 512 px, 200 samples
    python benchmarks/data_loading.py --data data/triplets --size 384 --samples 400
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time

from geosam.data import TripletDataset
from geosam.model.text import tokenize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="triplet dataset (geosam prepare)")
    parser.add_argument("--size", type=int, default=512, help="network input size")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the median is printed")
    parser.add_argument("--negative-regions", type=float, default=0.3)
    parser.add_argument("--profile", action="store_true", help="also print the functions that take the time")
    args = parser.parse_args()
    tokenize(["warm-up"])  # the tokenizer's one-off import is not per-sample cost
    ds = TripletDataset(args.data, "train", input_size=args.size, augment=True,
                        negative_regions=args.negative_regions)
    step = max(len(ds) // args.samples, 1)
    indices = list(range(0, len(ds), step))[: args.samples]
    passes = []
    for epoch in range(args.repeats):
        ds.set_epoch(epoch)
        t = time.perf_counter()
        for i in indices:
            ds[i]
        passes.append((time.perf_counter() - t) / len(indices))
    ms = statistics.median(passes) * 1000
    print(json.dumps({"input_size": args.size, "samples": len(indices), "ms_per_sample": round(ms, 2),
                      "min_ms_per_sample": round(min(passes) * 1000, 2),
                      "samples_per_s_per_process": round(1000 / ms, 1)}))
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(lambda: [ds[i] for i in indices])
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
