"""Area throughput of the default model: km^2 of 0.5 m imagery per minute, one prompt, on this machine.

End to end: a lazily read GeoTIFF scene -> ``geosam.segment(...)`` -> ``geosam.to_zarr``, with the
packaged remotesam-lite weights (or ``--model``), at overlap 0 and at the default overlap, in fp32 and bf16. Throughput
in pixels does not depend on what the pixels show; the figure treats every pixel as 0.5 m x 0.5 m
(0.25 m^2), the imagery the target is stated for (target: >= 20 km^2/min on a 2-core CPU).

The scene is the real NAIP mosaic of ``benchmarks/pipeline.py``.

    python benchmarks/area_throughput.py                 # 4096^2 scene (4.2 km^2 at 0.5 m)
    python benchmarks/area_throughput.py --size 2048 --precisions fp32
    python benchmarks/area_throughput.py --tta          # also with test-time mirroring (3 passes)
    python benchmarks/area_throughput.py --scales 0.75 1 1.25   # also with test-time scales
    python benchmarks/area_throughput.py --model runs/lite/last.safetensors   # a checkpoint instead
    python benchmarks/area_throughput.py --batch-size 2 # windows per forward pass (default: the predictor's)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import make_scene, open_scene  # the benchmark scripts share the scene

PIXEL_AREA_KM2 = 0.5 * 0.5 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=4096, help="scene side in pixels")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--overlaps", nargs="+", default=["0", "default"])
    parser.add_argument("--prompt", default="buildings")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--tta", action="store_true", help="also time load_model(tta=True)")
    parser.add_argument("--scales", type=float, nargs="+", help="also time load_model(scales=...)")
    parser.add_argument("--model", default="remotesam-lite", help="registered name or geosam .safetensors")
    parser.add_argument("--batch-size", type=int, default=None, help="image-prompt pairs per forward pass")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import torch

    import geosam

    torch.set_num_threads(torch.get_num_threads())
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="geosam-area-"))
    workdir.mkdir(parents=True, exist_ok=True)
    scene_path = make_scene(workdir / f"scene_{args.size}.tif", args.size)
    km2 = args.size * args.size * PIXEL_AREA_KM2
    print(
        f"scene {args.size}^2 px = {km2:.2f} km^2 at 0.5 m; torch threads {torch.get_num_threads()}; "
        f"CPU vector units {torch.backends.cpu.get_cpu_capability()}"
    )
    views: dict[str, dict[str, Any]] = {"one pass": {}}
    if args.tta:
        views["mirrored"] = {"tta": True}
    if args.scales:
        views["scales " + "/".join(f"{s:g}" for s in args.scales)] = {"scales": args.scales}
    print(f"{'precision':>9} {'views':>20} {'overlap':>8} {'seconds':>8} {'km2/min':>8}")
    for precision, (name, options) in [(p, v) for p in args.precisions for v in views.items()]:
        model = geosam.load_model(
            args.model, device="cpu", precision=precision, batch_size=args.batch_size, **options
        )
        for overlap_arg in args.overlaps:
            overlap = None if overlap_arg == "default" else int(overlap_arg)
            store = workdir / "out.zarr"
            shutil.rmtree(store, ignore_errors=True)
            start = time.perf_counter()
            geosam.to_zarr(
                geosam.segment(open_scene(scene_path), args.prompt, model=model, overlap=overlap),
                store,
                progress=False,
            )
            seconds = time.perf_counter() - start
            label = f"{model.input_size // 8}" if overlap is None else str(overlap)
            print(f"{precision:>9} {name:>20} {label:>8} {seconds:8.1f} {km2 / seconds * 60:8.1f}", flush=True)


if __name__ == "__main__":
    main()
