"""remotesam-v1: state-dict layout, numerical parity with the official implementation (golden file),
bfloat16 accuracy, inference rewrites and input checks.

One network is built per module (about 6 s) and shared; the forward passes (about 10 s each on
2 CPU cores) are marked slow.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import tests.remotesam_v1_fixtures as fx
from geosam.errors import InputError
from geosam.model import RemoteSAM, create, list_models
from geosam.model.base import TextFeatures
from geosam.model.remotesam_v1 import RemoteSAMv1
from geosam.model.remotesam_v1.decoder import rotation_matrix
from geosam.model.remotesam_v1.fusion import RepBlock
from geosam.model.text import tokenize

# Agreement with the official implementation required by the port (float32, CPU).
PARITY_TOL = 1e-4
BF16_TOL = 0.02


@pytest.fixture(scope="module")
def net() -> RemoteSAMv1:
    torch.manual_seed(0)
    model = RemoteSAMv1().eval()
    model.load_state_dict(fx.seeded_state_dict(model.state_dict()), strict=True)
    return model


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(fx.GOLDEN) as data:
        return dict(data)


@pytest.fixture(scope="module")
def fp32_probs(net: RemoteSAMv1, golden: dict[str, np.ndarray]) -> torch.Tensor:
    """geosam's float32 probabilities for the golden prompts, after prepare_for_inference."""
    net.prepare_for_inference()
    ids = torch.from_numpy(golden["input_ids"])
    mask = torch.from_numpy(golden["attention_mask"])
    pixels = fx.golden_pixels().expand(len(ids), -1, -1, -1)
    with torch.inference_mode():
        return net(pixels, ids, mask).softmax(1)[:, 1]


def test_registered_and_configured() -> None:
    assert "remotesam-v1" in list_models()
    assert RemoteSAMv1.input_size == 896 and RemoteSAMv1.max_tokens == 20
    assert RemoteSAMv1.pixel_mean == (0.485, 0.456, 0.406)
    assert RemoteSAMv1.pixel_std == (0.229, 0.224, 0.225)


def test_fixed_input_size_refuses_other_scales(net: RemoteSAMv1) -> None:
    with pytest.raises(InputError, match="remotesam-v1 has a fixed input size"):
        RemoteSAM(net, device="cpu", scales=(0.75, 1))


def test_state_dict_matches_official_layout(net: RemoteSAMv1) -> None:
    expected = fx.reference_names()
    assert len(expected) == 1107
    state = net.state_dict()
    got = [(k, tuple(v.shape), str(v.dtype)) for k, v in state.items()]
    missing = sorted({e[0] for e in expected} - set(state))
    unexpected = sorted(set(state) - {e[0] for e in expected})
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    assert got == expected
    # The relative-position index is a real buffer with Swin's values, not just the right shape.
    idx = state["backbone.layers.0.blocks.0.attn.relative_position_index"]
    assert idx[0, 0] == 11 * 23 + 11 and idx[0, -1] == 0 and idx.max() == 23 * 23 - 1


def test_golden_tokens_follow_official_truncation(golden: dict[str, np.ndarray]) -> None:
    """The long golden prompt has more than 20 WordPiece tokens; geosam cuts it like the official code."""
    counts = golden["full_token_counts"]
    assert counts[0] < 20 < counts[1]
    with pytest.warns(UserWarning, match="only the first 20"):
        ids, mask = tokenize(list(fx.PROMPTS), 20)
    np.testing.assert_array_equal(ids.numpy(), golden["input_ids"])
    np.testing.assert_array_equal(mask.numpy(), golden["attention_mask"])
    assert mask[1].all() and ids[1, -1] != 102  # all 20 kept, the [SEP] is cut off


@pytest.mark.slow
def test_matches_official_implementation(
    fp32_probs: torch.Tensor, golden: dict[str, np.ndarray]
) -> None:
    """Foreground probability within 1e-4 of the official code's, for both prompts (golden file)."""
    got = fx.summarize(fp32_probs)
    assert got["pooled"].shape == golden["pooled"].shape
    # Not a degenerate map: the comparison would be void if everything saturated.
    assert golden["pooled"].min() > 0.05 and golden["pooled"].max() < 0.95
    assert golden["rows"].std() > 0.01
    np.testing.assert_allclose(got["rows"], golden["rows"], atol=PARITY_TOL, rtol=0)
    np.testing.assert_allclose(got["pooled"], golden["pooled"], atol=PARITY_TOL, rtol=0)
    # The truncated prompt is a different expression, so its map differs from the short one's.
    assert np.abs(golden["rows"][0] - golden["rows"][1]).max() > 0.01


@pytest.mark.slow
def test_bfloat16_autocast_close_to_float32(net: RemoteSAMv1, fp32_probs: torch.Tensor) -> None:
    ids, mask = tokenize([fx.PROMPTS[0]], 20)
    with torch.inference_mode():
        text = net.encode_text(ids, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = net.segment(fx.golden_pixels(), text)
    prob = logits.float().softmax(1)[0, 1]
    diff = (prob - fp32_probs[0]).abs()
    assert diff.max().item() < BF16_TOL
    assert diff.mean().item() < BF16_TOL / 4


def test_prepare_for_inference_keeps_state_dict(net: RemoteSAMv1) -> None:
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.prepare_for_inference()
    net.prepare_for_inference()  # idempotent
    after = net.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_repblock_reparameterisation_is_exact_at_borders(net: RemoteSAMv1) -> None:
    block = net.backbone.layers[1].visual_residual.repblock
    x = torch.randn(2, 1, 13, 17)
    fresh = RepBlock().eval()
    fresh.load_state_dict(block.state_dict())
    with torch.no_grad():
        reference = fresh(x)
        fresh.fuse()
        fused = fresh(x)
    assert fresh.fused is not None
    torch.testing.assert_close(fused, reference, atol=1e-6, rtol=1e-5)


def test_rotation_matrix_properties() -> None:
    theta = torch.tensor([0.0, 0.3, -0.3, 0.6])
    rot = rotation_matrix(theta)
    torch.testing.assert_close(rot[0], torch.eye(9))  # no rotation at 0
    # Interpolation weights of every rotated tap sum to one; the centre tap never moves.
    torch.testing.assert_close(rot.sum(-1), torch.ones(4, 9))
    assert torch.all(rot[:, 4, 4] == 1)
    # At +45 degrees each corner tap lands exactly on a neighbouring edge tap (no interpolation);
    # at -45 degrees on the neighbour on the other side.
    pos, neg = rotation_matrix(torch.tensor([math.pi / 4, -math.pi / 4]))
    for corner, plus, minus in ((0, 1, 3), (2, 5, 1), (6, 3, 7), (8, 7, 5)):
        torch.testing.assert_close(pos[corner], torch.eye(9)[plus], atol=1e-6, rtol=0)
        torch.testing.assert_close(neg[corner], torch.eye(9)[minus], atol=1e-6, rtol=0)


def test_batched_decoder_matches_per_sample(net: RemoteSAMv1) -> None:
    """Per-sample rotated kernels: a batch of two gives what two single passes give."""
    dec = net.classifier
    torch.manual_seed(1)
    c4, c3 = torch.randn(2, 1024, 7, 7), torch.randn(2, 512, 14, 14)
    c2, c1 = torch.randn(2, 256, 28, 28), torch.randn(2, 128, 56, 56)
    with torch.no_grad():
        both = dec(c4, c3, c2, c1)
        single = torch.cat([dec(c4[i : i + 1], c3[i : i + 1], c2[i : i + 1], c1[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(both, single, atol=1e-4, rtol=1e-4)


def test_encode_text_shapes_and_float32_under_autocast(net: RemoteSAMv1) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids, mask = tokenize(["ships", "harbor"], net.max_tokens)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        text = net.encode_text(ids, mask)
    assert text.features.shape == (2, 20, 768) and text.features.dtype == torch.float32
    assert torch.equal(text.mask, mask)


def test_segment_rejects_wrong_input(net: RemoteSAMv1) -> None:
    text = TextFeatures(torch.zeros(1, 20, 768), torch.ones(1, 20, dtype=torch.long))
    with pytest.raises(InputError, match=r"\(B, 3, 896, 896\)"):
        net.segment(torch.zeros(1, 3, 512, 512), text)
    with pytest.raises(InputError, match="one prompt per image"):
        net.segment(torch.zeros(2, 3, 896, 896), text)
    with pytest.raises(InputError, match=r"\(P, N\)"):
        net.encode_text(torch.zeros(20, dtype=torch.long), torch.ones(20, dtype=torch.long))


def test_create_through_registry_accepts_config() -> None:
    small = create("remotesam-v1", drop_path_rate=0.0)
    assert isinstance(small, RemoteSAMv1)
    assert small.arch == "remotesam-v1" and small.config["drop_path_rate"] == 0.0
