"""The last encoder layer of a sentence classifier, computed for the first token only.

``BertForSequenceClassification`` reads one vector per example: the pooler takes the last layer's
``[CLS]`` row (``hidden_states[:, 0]``) and the rest of that layer's rows are thrown away. Those
rows still cost a whole layer of matmuls, forward and backward: a quarter of the compute of a
4-layer model and a twelfth of kcbert-base's. ``read_first_token_only`` swaps the class of that
last layer for one whose forward takes keys and values from every token (the ``[CLS]`` row still
attends to the whole sentence) but queries, attention output and feed-forward for the first row
only. The function computed is the same, to float rounding; the parameters, their names and the
export are untouched, so a checkpoint or export moves between the two freely.

One thing differs in training: dropout draws masks for fewer positions, so its random stream is not
the full layer's. That changes which units drop, not how many, the way a different seed would.
``tests/test_first_token.py`` checks outputs and gradients against the full layer with dropout
off, and the rest of the suite trains through it.

Only transformers' own ``BertLayer`` at the end of a ``BertForSequenceClassification`` itself (not a
subclass; with its pooler, no decoder, no cross-attention) is changed; any other model is left as it
is, so a model this code does not know trains as before.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["read_first_token_only", "reads_first_token_only"]

logger = logging.getLogger(__name__)


def configured_attention(
    attention: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """The context ``(batch, length, heads, size)`` from the attention function ``attention`` (a
    ``BertSelfAttention``) was configured with (sdpa, eager, ...), with its dropout and scaling:
    what its own forward computes after the query, key and value projections."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.bert.modeling_bert import eager_attention_forward

    interface = ALL_ATTENTION_FUNCTIONS.get_interface(
        attention.config._attn_implementation, eager_attention_forward
    )
    context, _weights = interface(
        attention,
        query,
        key,
        value,
        mask,
        dropout=attention.dropout.p if attention.training else 0.0,
        scaling=attention.scaling,
    )
    return context


@functools.cache
def _layer_class() -> type:
    from transformers.models.bert.modeling_bert import BertLayer

    class FirstTokenBertLayer(BertLayer):
        """``BertLayer`` whose output has one row per example: the first token's."""

        def forward(
            self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *_: Any, **__: Any
        ) -> torch.Tensor:
            attention = self.attention.self
            batch = hidden_states.shape[0]
            first = hidden_states[:, :1]

            def heads(x: torch.Tensor) -> torch.Tensor:
                return x.view(batch, x.shape[1], -1, attention.attention_head_size).transpose(1, 2)

            if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
                attention_mask = attention_mask[:, :, :1]  # the mask row of the one query kept
            context = configured_attention(
                attention,
                heads(attention.query(first)),
                heads(attention.key(hidden_states)),
                heads(attention.value(hidden_states)),
                attention_mask,
            )
            attention_output = self.attention.output(context.reshape(batch, 1, -1), first)
            return self.feed_forward_chunk(attention_output)

    FirstTokenBertLayer.__qualname__ = "FirstTokenBertLayer"  # found by pickle (spawned processes)
    return FirstTokenBertLayer


def reads_first_token_only(model: Any) -> bool:
    """Whether ``read_first_token_only`` changes ``model``: a plain BERT sentence classifier."""
    from transformers import BertForSequenceClassification
    from transformers.models.bert.modeling_bert import BertLayer

    if type(model) is not BertForSequenceClassification:  # a subclass may read other rows
        return False
    config = model.config
    if config.is_decoder or getattr(config, "add_cross_attention", False) or model.bert.pooler is None:
        return False
    layers = model.bert.encoder.layer
    return len(layers) > 0 and type(layers[-1]) in (BertLayer, _layer_class())


def __getattr__(name: str) -> type:
    # Built on first use, so that importing nlpbook does not import transformers; pickle (the
    # model sent to spawned processes) looks the class up here by name.
    if name == "FirstTokenBertLayer":
        return _layer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_first_token_only(model: Any) -> Any:
    """``model`` with its last encoder layer computing the first token's row only, where the model
    reads nothing else (see the module docstring); any other model is returned unchanged."""
    if reads_first_token_only(model):
        model.bert.encoder.layer[-1].__class__ = _layer_class()
        logger.debug("last encoder layer computes the [CLS] row only")
    return model
