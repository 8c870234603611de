"""Special tokens: which ids start and separate sequences, and which are masked.

Every place that builds token sequences (the evaluation window, probing texts, absorption
prompts) takes BOS and EOS from here, so they agree on what a sequence starts with.
"""

from __future__ import annotations

from typing import Any

from interpscore.errors import SpecError


def boundary_ids(tokenizer: Any) -> tuple[int, int]:
    """(BOS, EOS) ids; a tokenizer with only one of them uses it for both."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None and eos is None:
        raise SpecError(
            "The tokenizer has neither a BOS nor an EOS token.",
            "use a tokenizer with special tokens for sequence boundaries.",
        )
    return (bos if bos is not None else eos), (eos if eos is not None else bos)


def bos_id(tokenizer: Any) -> int:
    """The id every sequence starts with (EOS when the tokenizer has no BOS)."""
    return boundary_ids(tokenizer)[0]


def special_ids(tokenizer: Any) -> list[int]:
    """Ids masked out of every statistic: the tokenizer's special tokens."""
    return sorted(set(tokenizer.all_special_ids))
