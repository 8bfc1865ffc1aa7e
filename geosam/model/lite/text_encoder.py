"""all-MiniLM-L6-v2 as a word-feature encoder (BERT, 6 layers, 384 wide), from its PyPI package."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import BertConfig, BertModel

from geosam.model.base import TextFeatures
from geosam.model.text import minilm_path


class MiniLMEncoder(nn.Module):
    """Token features of a prompt from MiniLM, with the packaged weights loaded offline.

    ``frozen=True`` keeps the sentence-embedding model as released: it is not trained, and geosam
    checkpoints do not store it (see ``PromptSegmenter.external_weights``).
    """

    def __init__(self, *, pretrained: bool = True, frozen: bool = True):
        super().__init__()
        path = Path(minilm_path())
        self.bert = BertModel(
            BertConfig.from_pretrained(str(path), local_files_only=True), add_pooling_layer=False
        )
        if pretrained:
            state = load_file(str(path / "model.safetensors"))
            # The released file carries a pooler (unused by sentence-transformers) and an old buffer.
            state = {
                k: v
                for k, v in state.items()
                if not k.startswith("pooler.") and k != "embeddings.position_ids"
            }
            self.bert.load_state_dict(state, strict=True)
        self.frozen = frozen
        self.bert.requires_grad_(not frozen)
        self.dim: int = self.bert.config.hidden_size

    def train(self, mode: bool = True) -> MiniLMEncoder:
        # A frozen encoder stays in eval mode (no dropout) while the rest of the network trains.
        return super().train(mode and not self.frozen)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextFeatures:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return TextFeatures(out, attention_mask)
