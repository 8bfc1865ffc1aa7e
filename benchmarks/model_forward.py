"""Forward cost of each registered network on this device, through the RemoteSAM predictor.

For every model and precision: parameters, GFLOPs per image-prompt (FlopCounterMode), latency and
images/s at batch 1 and at the best of the given batch sizes, and peak memory (CUDA
max_memory_allocated, or the peak RSS of this process on CPU). Weights are random or pretrained
parts only: the cost does not depend on them. Precisions are timed in alternating rounds so that a
CPU shared with other work slows all of them alike; medians are reported.

    python benchmarks/model_forward.py                                   # both models, fp32 + bf16
    python benchmarks/model_forward.py --models remotesam-v1 --precisions fp32 bf16 --batches 1 2 --repeats 3
    python benchmarks/model_forward.py --models remotesam-lite --model-option fine_head=true   # an architecture option
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from geosam.cli.train import model_option
from geosam.model import RemoteSAM, create, list_models
from geosam.model.text import tokenize

PROMPTS = ["ships", "the white boats near the harbour", "storage tanks", "runway"]


def supported_precisions(device: torch.device) -> list[str]:
    if device.type == "cuda":
        return ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    return ["fp32", "bf16"]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in kB on Linux: the process's peak, so it only grows across measurements.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gflops_per_pair(model: RemoteSAM) -> float:
    """Floating-point operations of one image-prompt forward (text encoding included), in GFLOPs."""
    size = model.input_size
    ids, mask = tokenize(["ships"], model.network.max_tokens)
    pixels = torch.zeros(1, 3, size, size, device=model.device)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        text = model.network.encode_text(ids.to(model.device), mask.to(model.device))
        model.network.segment(pixels, text)
    return counter.get_total_flops() / 1e9


def time_batch(model: RemoteSAM, image: np.ndarray, batch: int) -> float:
    """Seconds for ``batch`` image-prompt pairs in one predictor call (one image, ``batch`` prompts)."""
    prompts = (PROMPTS * batch)[:batch]
    model.batch_size = batch
    model.encode_prompts(prompts)  # the text cache is warm, as in a real session
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.predict(image, prompts)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_model(
    name: str, precisions: list[str], batches: list[int], repeats: int, device: torch.device, options: dict
) -> list[dict]:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = create(name, **options)
    params = sum(p.numel() for p in net.parameters())
    models = {p: RemoteSAM(net, device=device, precision=p, name=name) for p in precisions}  # type: ignore[arg-type]
    first = models[precisions[0]]
    flops = gflops_per_pair(first)
    size = first.input_size
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    times: dict[tuple[str, int], list[float]] = {(p, b): [] for p in precisions for b in batches}
    memory: dict[str, float] = {}
    for p, b in times:  # warm-up (allocator, oneDNN kernels, autocast)
        time_batch(models[p], image, b)
    for _ in range(repeats):
        for p in precisions:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            for b in batches:
                times[(p, b)].append(time_batch(models[p], image, b))
            memory[p] = max(memory.get(p, 0.0), peak_memory_mb(device))
    rows = []
    for p in precisions:
        per_pair = {b: statistics.median(times[(p, b)]) / b for b in batches}
        best = min(per_pair, key=lambda b: per_pair[b])
        first_b = batches[0]
        rows.append({
            "model": name, **options, "device": str(device), "precision": p, "input": size,
            "params_M": round(params / 1e6, 2), "GFLOPs_per_pair": round(flops, 1),
            f"latency_s_batch{first_b}": round(per_pair[first_b] * first_b, 3),
            f"pairs_per_s_batch{first_b}": round(1 / per_pair[first_b], 3),
            "best_batch": best, "pairs_per_s_best": round(1 / per_pair[best], 3),
            "latency_s_best_batch": round(per_pair[best] * best, 3),
            "peak_memory_MB": round(memory[p]),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, help="registered names (default: all)")
    parser.add_argument("--precisions", nargs="+", default=None, help="fp32 bf16 fp16 (default: all the device supports)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4], help="first one is the 'batch 1' figure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    parser.add_argument("--model-option", type=model_option, action="append", default=[], metavar="KEY=VALUE",
                        help="architecture setting, JSON value (as in geosam train)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from geosam.model.predictor import resolve_device

    device = resolve_device(args.device)
    precisions = args.precisions or supported_precisions(device)
    options = dict(args.model_option)
    rows = []
    for name in args.models or list_models():
        rows += bench_model(name, precisions, args.batches, args.repeats, device, options)
        for row in rows[-len(precisions):]:
            print(json.dumps(row) if args.json else "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print(f"# {torch.get_num_threads()} threads, torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
