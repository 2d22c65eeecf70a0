"""Hugging Face's extractive-QA recipe (``run_qa.py`` + ``utils_qa.py`` of transformers' examples),
written against plain transformers: the reference nlpbook's QA export is checked against.

transformers 5 removed ``pipeline("question-answering")``; what stays is the model class and the
recipe: the question and context tokenised as a pair with ``truncation="only_second"``, overflowing
windows that share ``stride`` tokens, offsets kept for context tokens only, and the best start/end
pair (start + end logit, start <= end, at most ``max_answer_length`` tokens) over all windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def hf_windows(tokenizer: Any, question: str, context: str, max_seq_length: int, doc_stride: int) -> Any:
    """The recipe's windows, with HF's ``stride`` chosen so that windows start every ``doc_stride``
    context tokens (nlpbook's meaning), as nlpbook's windows do for this question."""
    question_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    room = max_seq_length - question_tokens - tokenizer.num_special_tokens_to_add(pair=True)
    return tokenizer(
        question,
        context,
        truncation="only_second",
        max_length=max_seq_length,
        stride=room - doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
        return_tensors="pt",
    )


@torch.inference_mode()
def hf_answer(
    model: Any,
    tokenizer: Any,
    question: str,
    context: str,
    max_seq_length: int,
    doc_stride: int,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, Any]:
    """``{"answer", "start", "end"}``: the recipe's best span over all windows of one question."""
    encoded = hf_windows(tokenizer, question, context, max_seq_length, doc_stride)
    inputs = {k: encoded[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    output = model(**inputs)
    best = (-np.inf, 0, 0)
    for window in range(len(encoded["input_ids"])):
        sequence = encoded.sequence_ids(window)
        offsets = [
            o if sequence[i] == 1 else None for i, o in enumerate(encoded["offset_mapping"][window].tolist())
        ]
        starts = output.start_logits[window].numpy()
        ends = output.end_logits[window].numpy()
        for s in np.argsort(starts)[::-1][:n_best]:
            for e in np.argsort(ends)[::-1][:n_best]:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                if starts[s] + ends[e] > best[0]:
                    best = (starts[s] + ends[e], offsets[s][0], offsets[e][1])
    return {"answer": context[best[1] : best[2]], "start": best[1], "end": best[2]}
