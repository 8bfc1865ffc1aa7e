"""The BERT-base text encoder of RemoteSAM v1 (transformers' ``BertModel`` without pooler)."""

from __future__ import annotations

from transformers import BertConfig, BertModel


def bert_base_config() -> BertConfig:
    """bert-base-uncased's architecture, written out so that nothing is read from a hub."""
    return BertConfig(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )


def build_text_encoder() -> BertModel:
    """A randomly initialised BERT-base (weights come from the checkpoint).

    >>> build_text_encoder().config.hidden_size
    768
    """
    return BertModel(bert_base_config(), add_pooling_layer=False)
