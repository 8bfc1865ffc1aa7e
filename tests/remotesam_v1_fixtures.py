"""Deterministic weights, image and prompts for the remotesam-v1 parity and golden tests.

``seeded_state_dict`` makes a full RemoteSAM v1 state dict from a seed alone, scaled so that
activations stay in a sane range through 24 Swin blocks and the decoder, BatchNorm running
statistics are non-trivial (eval-mode BN is exercised) and the foreground probabilities are
spread over (0, 1) rather than saturated. The golden file in tests/data/remotesam_v1/ holds the
OFFICIAL implementation's output for exactly these weights (see the README there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

DATA = Path(__file__).parent / "data" / "remotesam_v1"
GOLDEN = DATA / "golden_seed0.npz"
SEED = 0
#: A short prompt, and one of 27 WordPiece tokens that the official tokenizer cuts to 20.
PROMPTS = (
    "ships",
    "the small white boats anchored in the dark green water near the lower left corner of the bay beside the sandy shore",
)
#: Full-resolution rows of the probability map stored in the golden file.
GOLDEN_ROWS = (0, 301, 640, 895)
GOLDEN_POOL = 8


def reference_names() -> list[tuple[str, tuple[int, ...], str]]:
    """Names, shapes and dtypes of the official state dict (from the reference TSV)."""
    rows = []
    for line in (DATA / "remotesam_v1_state_dict.tsv").read_text().splitlines()[1:]:
        name, shape, dtype = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        rows.append((name, dims, dtype))
    return rows


def _fan_in(shape: tuple[int, ...]) -> int:
    if len(shape) == 5:  # rotated conv: (kernels, C_out, C_in, k, k)
        return math.prod(shape[2:])
    return math.prod(shape[1:])


def _gain(name: str) -> float:
    # Damped residual branches keep BERT's tokens apart (at gain 1 a random 12-layer BERT maps
    # every token to the same vector, which makes the pixel-word attention uniform and the
    # instance norms after it ill-conditioned) and keep the image's spatial detail through Swin.
    if name.startswith("text_encoder.") and name.endswith("output.dense.weight"):
        return 0.25
    if name.endswith(("attn.proj.weight", "mlp.fc2.weight")):
        return 0.5
    if name.endswith("fc_theta.weight"):  # angles of a few tens of degrees, both signs
        return 3.0
    return 1.0


def seeded_state_dict(
    model_state: Mapping[str, torch.Tensor], seed: int = SEED
) -> dict[str, torch.Tensor]:
    """Random but well-scaled values for every entry of ``model_state`` (index buffers are kept).

    Values depend only on the seed and the entry names and shapes, so the official network and
    geosam's receive identical tensors.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name in sorted(model_state):
        ref = model_state[name]
        shape = tuple(ref.shape)
        leaf = name.rsplit(".", 1)[-1]

        def normal(std: float, shape: tuple[int, ...] = shape) -> torch.Tensor:
            return torch.randn(shape, generator=gen) * std

        if leaf == "relative_position_index":
            out[name] = ref.clone()
        elif leaf == "num_batches_tracked":
            out[name] = torch.tensor(1000, dtype=torch.long)
        elif leaf == "running_mean":
            out[name] = normal(0.2)
        elif leaf == "running_var":
            out[name] = torch.rand(shape, generator=gen) * 1.5 + 0.5
        elif leaf == "relative_position_bias_table":
            out[name] = normal(0.5)
        elif leaf == "bias":
            out[name] = normal(0.05)
        elif len(shape) == 1:  # LayerNorm / BatchNorm scale
            out[name] = 1.0 + normal(0.1)
        elif "embeddings" in name:
            out[name] = normal(0.5)
        else:
            out[name] = normal(_gain(name) / math.sqrt(_fan_in(shape)))
    return {name: out[name] for name in model_state}


def golden_pixels() -> torch.Tensor:
    """The 224x224 real crop, resized to 896x896 (bilinear) and ImageNet-normalised: (1, 3, 896, 896)."""
    from PIL import Image

    rgb = np.asarray(Image.open(DATA / "ships_224.png").convert("RGB"))
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(896, 896), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def summarize(prob: torch.Tensor) -> dict[str, np.ndarray]:
    """Compact summary of foreground probabilities ``(P, 896, 896)``: 8x mean-pooled maps and rows."""
    pooled = F.avg_pool2d(prob[:, None].double(), GOLDEN_POOL)[:, 0].float()
    return {
        "pooled": pooled.numpy(),
        "rows": prob[:, list(GOLDEN_ROWS), :].float().numpy(),
    }
