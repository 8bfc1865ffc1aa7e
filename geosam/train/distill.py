"""Distillation from a frozen teacher: fine-tune on new labels without forgetting the rest.

Fine-tuning on the labels of one or two classes teaches a network those classes and, within a few
hundred steps, makes it forget the others: continued on ships and aircraft alone, the packaged
remotesam-lite answered "cars", "swimming pools" and "farmland" with empty masks (docs/model-card.md).
Learning without Forgetting (Li and Hoiem, 2016) keeps them without their labels: with each training
image the student is also asked about a *replay prompt*, a class drawn from the whole vocabulary,
and pulled towards the frozen teacher's answer to it (usually the weights it started from). A user
with labels for one class and no copy of the original training data can fine-tune this way.

>>> config = geosam.train.TrainConfig(data="my_triplets", out="runs/mine", init="remotesam-lite", distill="init")  # doctest: +SKIP
>>> distillation_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
tensor(0.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geosam.data.vocabulary import VOCABULARY, phrase
from geosam.model.base import PromptSegmenter
from geosam.model.text import tokenize


def replay_prompts() -> tuple[str, ...]:
    """The plural phrase of every leaf class of the vocabulary: the questions the teacher answers.

    Group classes are left out: the network is not trained on their names (a group's mask is the
    union of its members', docs/decisions/0003-group-classes.md).

    >>> "cars" in replay_prompts(), "vehicles" in replay_prompts()
    (True, False)
    """
    return tuple(phrase(name, plural=True) for name, info in VOCABULARY.items() if not info.children)


class ReplayPrompts:
    """Draws one replay prompt per image, reproducibly from ``(seed, step)`` so that a resumed run
    draws what an uninterrupted one would."""

    def __init__(self, max_tokens: int, seed: int = 0, prompts: tuple[str, ...] | None = None) -> None:
        self.prompts = prompts if prompts is not None else replay_prompts()
        self.input_ids, self.attention_mask = tokenize(list(self.prompts), max_tokens)
        self.seed = seed

    def draw(self, n: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention masks ``(n, max_tokens)`` of ``n`` prompts for training step ``step``."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        pick = torch.randint(len(self.prompts), (n,), generator=gen)
        return self.input_ids[pick], self.attention_mask[pick]


class Teacher(nn.Module):
    """A frozen network in eval mode whose foreground logits are the targets of distillation."""

    def __init__(self, net: PromptSegmenter) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Teacher:
        return self  # always eval: batch statistics of the student's batches must not move it

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The teacher's 2-class logits as the student is trained on them (before any contact carving)."""
        return self.net(pixels, input_ids, attention_mask, parts=True).logits


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per-pixel KL divergence of the student's class distribution from the teacher's, mean over
    pixels, for logits ``(B, 2, H, W)``; the teacher's logits are resized to the student's if they differ.

    Zero where the two agree; the teacher's confident "nothing here" counts as much as its masks,
    which is what keeps absent classes empty.
    """
    if student.ndim != 4 or teacher.ndim != 4 or student.shape[:2] != teacher.shape[:2]:
        raise ValueError(f"student and teacher logits differ: {tuple(student.shape)} vs {tuple(teacher.shape)}")
    if teacher.shape[2:] != student.shape[2:]:
        teacher = F.interpolate(teacher.float(), size=student.shape[2:], mode="bilinear", align_corners=False)
    log_s = F.log_softmax(student.float(), dim=1)
    log_t = F.log_softmax(teacher.float().detach(), dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1).mean()
