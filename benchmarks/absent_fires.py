"""Where a prompt that should be empty fires: the images of a data set on which ``--prompt`` leaves
any pixel above the threshold (what lowers an absent-class rate of ``geosam evaluate --negative``),
with the size of each firing mask, and a contact sheet of them (image | image with the mask in red)
to look at.

    python benchmarks/absent_fires.py --data ../shared/data/hrplanes/valid --format coco --prompt vehicles --limit 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import geosam
from geosam.data.images import read_rgb
from geosam.evaluation import image_probabilities, load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--format", required=True, choices=["coco", "yolo", "dota", "mask"])
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--model", default="remotesam-lite")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--tile", type=int, default=1024, help="as geosam evaluate --tile (0 = whole)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--sheet", default="absent_fires.png", help="contact sheet (PNG) of the firing images")
    parser.add_argument("--columns", type=int, default=2)
    args = parser.parse_args()

    model = geosam.load_model(args.model)
    table = load_dataset(args.data, args.format)
    paths = list(table.images["image"])[: args.limit]
    rows = []
    for i, path in enumerate(paths):
        image = read_rgb(path)
        mask = image_probabilities(model, image, [args.prompt], tile=args.tile or None)[0] > args.threshold
        if mask.any():
            overlay = image.copy()
            overlay[mask] = (255, 0, 0)
            rows.append(np.concatenate([image, overlay], axis=1))
            print(f"{i:4d} {Path(path).name}: {int(mask.sum())} px")
    print(f"'{args.prompt}' fires on {len(rows)} of {len(paths)} images (empty rate {1 - len(rows) / len(paths):.3f})")
    if rows:
        width = 640
        tiles = [Image.fromarray(r).resize((width, round(width * r.shape[0] / r.shape[1]))) for r in rows]
        height = max(t.height for t in tiles)
        n_rows = -(-len(tiles) // args.columns)
        sheet = Image.new("RGB", (width * args.columns, height * n_rows), "white")
        for k, tile in enumerate(tiles):
            sheet.paste(tile, ((k % args.columns) * width, (k // args.columns) * height))
        sheet.save(args.sheet)
        print("contact sheet:", args.sheet)


if __name__ == "__main__":
    main()
