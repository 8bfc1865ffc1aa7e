"""Relation expressions ("the ship next to the harbor") on chips that were never trained on.

Every unambiguous relation the data engine can state about the objects of a chip
(geosam.data.expressions.relation_expressions: a unique anchor and a clearly nearest subject) is
asked of the model twice: resolved by geometry (``refer``: both classes segmented, the component
nearest the anchor kept) and read by the network alone (``predict`` on the whole expression).
Printed: the number of expressions and P@0.5 (share whose mask has IoU >= 0.5 with the referred
object) of each, per chip source and overall.

    geosam prepare --data-root ../shared/data --out data/triplets
    python benchmarks/relations.py --data data/triplets --splits valid heldout
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import pandas as pd
import shapely

import geosam
from geosam.data.expressions import Obj, relation_expressions, render
from geosam.data.images import read_rgb
from geosam.data.rasterize import rasterize


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    union = (mask | truth).sum()
    return float((mask & truth).sum() / union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="a triplet dataset (geosam prepare)")
    parser.add_argument("--splits", nargs="+", default=["valid", "heldout"])
    parser.add_argument("--model", default="remotesam-lite")
    parser.add_argument("--seed", type=int, default=0, help="for the wording of each expression")
    args = parser.parse_args()

    model = geosam.load_model(args.model, device="cpu")
    chips = pd.read_parquet(f"{args.data}/chips.parquet")
    chips = chips[chips["split"].isin(args.splits)]
    inst = pd.read_parquet(f"{args.data}/instances.parquet")
    inst = inst[inst["chip"].isin(set(chips["chip"]))]
    geoms = shapely.from_wkb(inst["geometry"].to_numpy())
    objs: dict[str, list[Obj]] = defaultdict(list)
    for chip, oid, cls, vis, geom in zip(
        inst["chip"], inst["id"], inst["class_name"], inst["visible"], geoms, strict=True
    ):
        objs[chip].append(Obj(int(oid), str(cls), geom, float(vis)))
    rng = np.random.default_rng(args.seed)
    hits: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for chip, path, source, width, height in chips[
        ["chip", "path", "source", "width", "height"]
    ].itertuples(index=False):
        exprs = relation_expressions(objs[chip])
        if not exprs:
            continue
        image = read_rgb(f"{args.data}/{path}")
        for expr in exprs:
            text = render(expr, rng)
            by_id = {o.id: o.geometry for o in objs[chip]}
            truth = rasterize([by_id[i] for i in expr.targets], (int(height), int(width)))
            geometry = model.refer(image, text) > 0.5
            network = model.predict(image, text) > 0.5
            hits[source].append((iou(geometry, truth) >= 0.5, iou(network, truth) >= 0.5))
            print(
                f"{source} {chip}: {text!r} geometry {iou(geometry, truth):.2f} network {iou(network, truth):.2f}"
            )
    every = [h for rows in hits.values() for h in rows]
    table = {
        name: {
            "n": len(rows),
            "geometry_P@0.5": round(float(np.mean([g for g, _ in rows])), 3),
            "network_P@0.5": round(float(np.mean([n for _, n in rows])), 3),
        }
        for name, rows in [*sorted(hits.items()), ("all", every)]
        if rows
    }
    print(json.dumps(table))


if __name__ == "__main__":
    main()
