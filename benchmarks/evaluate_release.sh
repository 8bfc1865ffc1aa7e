#!/usr/bin/env bash
# The quality figures of docs/model-card.md: `geosam evaluate` on the valid splits of the shared data,
# on chips of DOTA, iSAID and LoveDA held back from training, and on the attribute expressions.
#
#   geosam prepare --data-root ../shared/data --out data/triplets --chip-rounds 8    # once (about a minute)
#   benchmarks/evaluate_release.sh ../shared/data data/triplets eval/                 # over an hour on 2 cores
#   MODEL=runs/lite/best.safetensors benchmarks/evaluate_release.sh ...               # a checkpoint instead
#
# Each evaluation prints its table; OUT/<name>.json keeps the figures.
set -euo pipefail
DATA=${1:-../shared/data}
TRIPLETS=${2:-data/triplets}
OUT=${3:-eval}
MODEL=${MODEL:-remotesam-lite}
GEOSAM=${GEOSAM:-.venv/bin/geosam}
mkdir -p "$OUT"

run() {
    local name=$1
    shift
    echo "== $name" >&2
    "$GEOSAM" evaluate --model "$MODEL" --json "$@" | tee "$OUT/$name.txt" | tail -n 1 >"$OUT/$name.json"
    head -n -1 "$OUT/$name.txt"
}

# hard negatives: look-alikes (helicopters at airports, vehicles and storage tanks in harbours) and
# classes that occur elsewhere in training
run ships --data "$DATA/ships_ge/valid" --format yolo --prompt boat=ships \
    --negative airplanes --negative helicopters --negative vehicles --negative "storage tanks" \
    --negative "tennis courts" --negative "swimming pools" --negative "sports fields"
run planes --data "$DATA/hrplanes/valid" --format coco --prompt plane=airplanes \
    --negative helicopters --negative ships --negative vehicles --negative "storage tanks" \
    --negative "swimming pools" --negative "tennis courts" --negative "sports fields"
# group classes are scored against the union of their members ("vehicles": cars and large vehicles)
run heldout-dota --data "$TRIPLETS/heldout-dota.coco.json" --format coco \
    --prompt vehicle=vehicles --prompt sports-field="sports fields"
run heldout-isaid --data "$TRIPLETS/heldout-isaid.coco.json" --format coco --prompt vehicle=vehicles
run heldout-loveda --data "$TRIPLETS/heldout-loveda.coco.json" --format coco
run attributes --data "$TRIPLETS" --format triplets --split valid
run attributes-network-only --data "$TRIPLETS" --format triplets --split valid --network-only
# with test-time mirroring (three forward passes per image)
run ships-tta --tta --data "$DATA/ships_ge/valid" --format yolo --prompt boat=ships \
    --negative airplanes --negative helicopters --negative vehicles --negative "storage tanks" \
    --negative "tennis courts" --negative "swimming pools"
run attributes-tta --tta --data "$TRIPLETS" --format triplets --split valid
run planes-tta --tta --data "$DATA/hrplanes/valid" --format coco --prompt plane=airplanes \
    --negative helicopters --negative ships --negative vehicles --negative "storage tanks" \
    --negative "swimming pools" --negative "tennis courts"
# the same aircraft with each 640 x 360 chip stretched whole to the square input (--tile 0), as
# before elongated images were predicted in square windows (docs/decisions/0004-elongated-images.md)
run planes-whole --data "$DATA/hrplanes/valid" --format coco --prompt plane=airplanes --tile 0
# touching objects split at the necks of their masks before boxing
# (docs/decisions/0005-splitting-touching-objects.md; oIoU does not change, AP50 and counting do)
run ships-split-shape --split-shape --data "$DATA/ships_ge/valid" --format yolo --prompt boat=ships
run ships-split-shape-tta --split-shape --tta --data "$DATA/ships_ge/valid" --format yolo --prompt boat=ships
run planes-split-shape --split-shape --data "$DATA/hrplanes/valid" --format coco --prompt plane=airplanes
run planes-split-shape-tta --split-shape --tta --data "$DATA/hrplanes/valid" --format coco --prompt plane=airplanes
run planes-split-shape-256 --split-shape --tile 256 --data "$DATA/hrplanes/valid" --format coco --prompt plane=airplanes
run heldout-dota-split-shape --split-shape --data "$TRIPLETS/heldout-dota.coco.json" --format coco \
    --prompt vehicle=vehicles --prompt sports-field="sports fields"
run heldout-isaid-split-shape --split-shape --data "$TRIPLETS/heldout-isaid.coco.json" --format coco \
    --prompt vehicle=vehicles
# each window also seen at 0.75x and 1.25x, the maps averaged (docs/decisions/0006-test-time-scales.md)
run ships-scales --scales 0.75 1 1.25 --data "$DATA/ships_ge/valid" --format yolo --prompt boat=ships \
    --negative airplanes --negative helicopters --negative vehicles --negative "storage tanks" \
    --negative "tennis courts" --negative "swimming pools" --negative "sports fields"
run planes-scales --scales 0.75 1 1.25 --data "$DATA/hrplanes/valid" --format coco --prompt plane=airplanes \
    --negative helicopters --negative vehicles
run ships-split-shape-scales --split-shape --scales 0.75 1 1.25 --data "$DATA/ships_ge/valid" --format yolo \
    --prompt boat=ships
run planes-split-shape-scales --split-shape --scales 0.75 1 1.25 --data "$DATA/hrplanes/valid" --format coco \
    --prompt plane=airplanes
run heldout-dota-scales --scales 0.75 1 1.25 --data "$TRIPLETS/heldout-dota.coco.json" --format coco \
    --prompt vehicle=vehicles --prompt sports-field="sports fields"
run heldout-isaid-scales --scales 0.75 1 1.25 --data "$TRIPLETS/heldout-isaid.coco.json" --format coco \
    --prompt vehicle=vehicles
run heldout-loveda-scales --scales 0.75 1 1.25 --data "$TRIPLETS/heldout-loveda.coco.json" --format coco
run ships-tta-scales --tta --scales 0.75 1 1.25 --data "$DATA/ships_ge/valid" --format yolo --prompt boat=ships
run planes-tta-scales --tta --scales 0.75 1 1.25 --data "$DATA/hrplanes/valid" --format coco \
    --prompt plane=airplanes
# one scale at a time: ships are read better seen smaller
run ships-scale-0.75 --scales 0.75 --data "$DATA/ships_ge/valid" --format yolo --prompt boat=ships
run ships-scale-1.25 --scales 1.25 --data "$DATA/ships_ge/valid" --format yolo --prompt boat=ships
