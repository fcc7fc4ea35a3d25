"""A stand-in for LLMLingua-2 (TokenSkip's classifier) where the real one cannot be downloaded: a randomly
initialised XLM-RoBERTa token classifier with LLMLingua-2's interface, for tests and cost measurements only.

    from standin_classifier import LLMLINGUA2_LARGE_SHAPE, save_standin_classifier   # beside experiments/*.py
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LLMLINGUA2_LARGE_SHAPE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                          "intermediate_size": 4096, "max_position_embeddings": 514}  # fmt: skip


def save_standin_classifier(target, corpus: Sequence[str], *, vocab_size: int = 8000, seed: int = 0, **shape) -> Any:
    """Save a randomly initialised XLM-RoBERTa token classifier (2 labels) with a WordPiece fast tokenizer
    trained on ``corpus`` to ``target``: LLMLingua-2's interface (and, with LLMLINGUA2_LARGE_SHAPE, its
    size) with meaningless weights, for tests and cost measurements where the real one cannot be downloaded.
    ``shape`` overrides XLMRobertaConfig fields. Returns ``target``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        XLMRobertaConfig,
        XLMRobertaForTokenClassification,
    )

    specials = ["<s>", "<pad>", "</s>", "<unk>"]  # XLM-R's order: pad id 1
    raw = Tokenizer(models.WordPiece(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    raw.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", raw.token_to_id("<s>")), ("</s>", raw.token_to_id("</s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", cls_token="<s>", eos_token="</s>",
                                        sep_token="</s>", pad_token="<pad>", unk_token="<unk>")  # fmt: skip
    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), num_labels=2, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                              **shape)  # fmt: skip
    XLMRobertaForTokenClassification(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
