"""The interface every geosam network implements: pixels + prompt tokens -> 2-class logits.

Text is encoded separately from the image so that a predictor can cache the text features of each
prompt and reuse them for every window of a scene.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn


class TextFeatures(NamedTuple):
    """Encoded prompts: token features ``(P, N, D)`` and a token mask ``(P, N)`` (1 = real token)."""

    features: torch.Tensor
    mask: torch.Tensor

    def select(self, index: torch.Tensor | slice | list[int]) -> TextFeatures:
        """The features of a subset (or a repetition) of the prompts."""
        return TextFeatures(self.features[index], self.mask[index])

    def to(self, device: torch.device | str) -> TextFeatures:
        return TextFeatures(self.features.to(device), self.mask.to(device))


class SegmentParts(NamedTuple):
    """What a network predicts before its parts are combined into the served logits: 2-class
    ``logits`` ``(B, 2, H, W)`` and, for networks with a contact head, the logit ``(B, 1, H, W)``
    that a pixel lies between two touching instances (else ``None``)."""

    logits: torch.Tensor
    contact: torch.Tensor | None = None


class PromptSegmenter(nn.Module):
    """A referring-segmentation network.

    Subclasses set the class attributes below and implement :meth:`encode_text` and :meth:`segment`.
    ``config`` holds the keyword arguments the registry needs to rebuild the same network, so a
    checkpoint can carry it as JSON.
    """

    #: Registry name of the architecture, e.g. ``"remotesam-v1"``.
    arch: str = ""
    #: Square input size in pixels.
    input_size: int
    #: Per-channel mean and std applied to RGB scaled to [0, 1].
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: Prompts are tokenised to exactly this many tokens (truncated or zero-padded).
    max_tokens: int = 20
    #: How probabilities are resized back to the caller's image size ("nearest" in the official
    #: RemoteSAM code, "bilinear" gives smoother maps).
    output_resize: str = "bilinear"
    #: State-dict prefixes whose weights come from an installed package and stay frozen: geosam
    #: checkpoints do not store them, and loading takes them from the package instead.
    external_weights: tuple[str, ...] = ()
    #: State-dict prefixes of parts that start out leaving the output unchanged (a head added for
    #: fine-tuning): ``geosam train --init`` accepts checkpoints that lack them.
    grown_weights: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    @property
    def resizable(self) -> bool:
        """Whether the network runs at other input sizes: a fully convolutional network keeps
        ``input_size`` in its ``config``; a fixed-size one (remotesam-v1) does not."""
        return "input_size" in self.config

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        """Encode token ids ``(P, N)`` with their mask ``(P, N)``."""
        raise NotImplementedError

    def segment(self, pixels: torch.Tensor, text: TextFeatures) -> torch.Tensor:
        """Logits ``(B, 2, H, W)`` for normalised pixels ``(B, 3, H, W)`` and ``B`` encoded prompts."""
        raise NotImplementedError

    def segment_parts(self, pixels: torch.Tensor, text: TextFeatures) -> SegmentParts:
        """The parts :meth:`segment` combines, each with its own training target."""
        return SegmentParts(self.segment(pixels, text))

    def forward(
        self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, parts: bool = False
    ) -> torch.Tensor | SegmentParts:
        """Logits ``(B, 2, H, W)`` for one prompt per image, or with ``parts=True`` the
        :class:`SegmentParts` (the training entry point)."""
        text = self.encode_text(input_ids, attention_mask)
        return self.segment_parts(pixels, text) if parts else self.segment(pixels, text)

    def prepare_for_inference(self) -> None:
        """Apply inference-only rewrites (folding re-parameterised branches ...). Idempotent.

        The network stays numerically equivalent in eval mode but may no longer be trainable.
        """
