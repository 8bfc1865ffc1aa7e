"""RemoteSAM's loss against a case computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from geosam.train import contact_loss, dice_loss, segmentation_loss


def test_loss_matches_hand_computation() -> None:
    # Pixel 0: logits (0, 0) -> p = (.5, .5), target 1. Pixel 1: logits (ln 3, 0) -> p = (.75, .25), target 0.
    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])
    target = torch.tensor([[[1, 0]]])
    ce = (1.1 * -math.log(0.5) + 0.9 * -math.log(0.75)) / (1.1 + 0.9)
    dice_bg = 1 - (2 * 0.75) / (1.25 + 1)  # class 0: I = .75, sum p = 1.25, sum t = 1
    dice_fg = 1 - (2 * 0.5) / (0.75 + 1)  # class 1: I = .5, sum p = .75, sum t = 1
    parts = segmentation_loss(logits, target)
    assert parts.ce.item() == pytest.approx(ce, rel=1e-5)
    assert parts.dice.item() == pytest.approx(dice_bg + dice_fg, rel=1e-5)
    assert parts.total.item() == pytest.approx(0.9 * ce + 0.1 * (dice_bg + dice_fg), rel=1e-5)


def test_dice_sums_over_images_and_ignores_pixels() -> None:
    logits = torch.randn(3, 2, 5, 5)
    target = (torch.rand(3, 5, 5) > 0.5).long()
    per_image = [dice_loss(logits[i : i + 1], target[i : i + 1]) for i in range(3)]
    assert dice_loss(logits, target).item() == pytest.approx(sum(p.item() for p in per_image), rel=1e-5)
    ignored = target.clone()
    ignored[:, 0] = 255
    a = segmentation_loss(logits, ignored)
    b = segmentation_loss(logits[:, :, 1:], target[:, 1:])
    assert a.ce.item() == pytest.approx(b.ce.item(), rel=1e-5)
    assert a.dice.item() == pytest.approx(b.dice.item(), rel=1e-5)


def test_perfect_prediction_has_low_loss_and_gradients_flow() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, 2:5, 2:5] = 1
    good = torch.stack([(1 - target) * 10.0, target * 10.0], 1).float().requires_grad_()
    bad = torch.stack([target * 10.0, (1 - target) * 10.0], 1).float()
    assert segmentation_loss(good, target).total < 0.01 < segmentation_loss(bad, target).total
    segmentation_loss(good, target).total.backward()
    assert good.grad is not None and torch.isfinite(good.grad).all()


def test_presence_term_punishes_a_few_false_positive_pixels_on_an_empty_target() -> None:
    target = torch.zeros(2, 32, 32, dtype=torch.long)
    target[1, 4:12, 4:12] = 1  # image 0 is a one-to-zero sample, image 1 holds the object
    logits = torch.zeros(2, 2, 32, 32)
    logits[:, 0] = 6.0  # confident background everywhere ...
    logits[1, 1, 4:12, 4:12] = 12.0  # ... the object found ...
    clean = segmentation_loss(logits, target, presence_weight=1.0)
    logits[0, 1, 20:22, 20:22] = 12.0  # ... and four false-positive pixels on the empty image
    noisy = segmentation_loss(logits, target, presence_weight=1.0)
    # pixel-averaged CE barely notices four pixels; the presence term does
    assert noisy.ce - clean.ce < 0.02
    assert noisy.presence - clean.presence > 1.0
    assert clean.presence < 0.01
    # off by default: the official loss
    official = segmentation_loss(logits, target)
    assert official.presence == 0 and official.total == pytest.approx(noisy.total - noisy.presence)
    # ignored pixels cannot count as evidence
    ignored = target.clone()
    ignored[0, 20:22, 20:22] = 255
    assert segmentation_loss(logits, ignored, presence_weight=1.0).presence < 0.01


def test_pixel_weights_scale_the_cross_entropy_of_chosen_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 6, 6)
    target = (torch.rand(2, 6, 6) > 0.5).long()
    target[0, 0] = 255
    plain = segmentation_loss(logits, target)
    ones = segmentation_loss(logits, target, pixel_weight=torch.ones(2, 6, 6))
    assert ones.ce.item() == pytest.approx(plain.ce.item(), rel=1e-5)  # a weighted mean stays a mean
    # one pixel weighted 1000x: the CE becomes (nearly) that pixel's own class-weighted CE
    weight = torch.ones(2, 6, 6)
    weight[1, 3, 3] = 1e6
    own = torch.nn.functional.cross_entropy(logits[1:2, :, 3, 3], target[1:2, 3, 3])
    assert segmentation_loss(logits, target, pixel_weight=weight).ce.item() == pytest.approx(own.item(), rel=1e-3)
    assert segmentation_loss(logits, target, pixel_weight=weight).dice.item() == pytest.approx(plain.dice.item())
    with pytest.raises(ValueError, match="pixel_weight"):
        segmentation_loss(logits, target, pixel_weight=torch.ones(2, 5, 5))


def test_contact_loss_weights_the_rare_contact_pixels() -> None:
    # logit ln 3 -> p = .75 on a contact pixel and on a plain one: -10 ln .75 and -ln .25, averaged.
    logits = torch.full((1, 1, 1, 2), math.log(3.0))
    target = torch.tensor([[[True, False]]])
    expected = (10 * -math.log(0.75) + -math.log(0.25)) / 2
    assert contact_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)
    assert contact_loss(logits, target, pos_weight=1.0).item() == pytest.approx(
        (-math.log(0.75) - math.log(0.25)) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="contact logits"):
        contact_loss(torch.zeros(1, 2, 1, 2), target)
