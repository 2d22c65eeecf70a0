"""BERT encoder layers that compute the real tokens of a padded batch and not its ``[PAD]`` rows.

A batch pads every row to its longest one, and transformers' ``BertEncoder`` runs every matmul of
every layer over the padded rows too: their results are masked out of attention and never read.
Length-grouped NSMC batches are still 4-6% padding, sentence pairs and NER sentences more, and a
padded row costs a real row's FLOPs. ``skip_padding`` swaps the class of the encoder for one that
gathers the real tokens into one ``(tokens, hidden)`` matrix and runs the Linear layers, LayerNorms,
GELUs and dropouts of each layer on it; only attention sees the padded shape, because each row
attends within its own example: queries, keys and values are scattered back to ``(batch, length)``
for the attention function the model was configured with, under the same mask, and its output is
gathered again. The scatter and gather are copies of a few MB per layer.

The function computed for the real tokens is the same, to float rounding. What differs:

- ``last_hidden_state`` is zero at padded positions (transformers returns what the masked rows
  computed there, which no head of these models reads: the pooler reads ``[CLS]``, and a token
  classifier's loss skips -100 targets, which the collator puts at every padded position).
- Dropout draws masks for fewer positions, so its random stream is not the padded batch's, the
  way a different seed's would not be.

Only transformers' own ``BertEncoder`` of a ``BertForSequenceClassification`` or
``BertForTokenClassification`` itself is changed. ``BertForQuestionAnswering`` is left as it is:
its loss takes a softmax over every position, padding included, so zeros there would change it.
It runs where it was measured to pay, float32 on the CPU (``pays_off``): there a kcbert-base
training step of 4% padding took 2-5% less time. The padded path runs elsewhere (bf16 autocast, where
it was 4-6% slower, GPUs, where it is unmeasured, and XLA, where a new number of real tokens would
compile a new graph), where nothing is padded, and where a caller asks for per-layer hidden states or
attentions.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from nlpbook.first_token import configured_attention

if TYPE_CHECKING:
    import torch

__all__ = ["skip_padding", "skips_padding"]

logger = logging.getLogger(__name__)


def real_token_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(batch, length)`` True at real tokens, from the 4-D mask transformers builds for the
    encoder (boolean where True attends, or additive where 0 attends); None where it built none
    (nothing is padded)."""
    import torch

    if attention_mask is None or attention_mask.dim() != 4:
        return None
    first_query = attention_mask[:, 0, 0, :]  # a bidirectional mask repeats one row per query
    return first_query if first_query.dtype == torch.bool else first_query == 0


def pays_off(hidden_states: torch.Tensor) -> bool:
    """Whether skipping padded rows was measured to pay here: float32 on the CPU.

    On the CPU with bf16 autocast the same kcbert-base step ran 4-6% slower skipping 4% padding
    (one layer alone showed no difference; the cause was not found); GPUs have not been measured;
    on XLA every new number of real tokens would compile a new graph."""
    import torch

    return (
        hidden_states.device.type == "cpu"
        and hidden_states.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


def _collecting_outputs() -> bool:
    """Whether transformers is recording per-layer outputs for this call (``output_hidden_states``
    or ``output_attentions``): those would have the packed shape, so the padded path runs."""
    try:
        from transformers.utils.output_capturing import _active_collector
    except ImportError:  # a transformers without the collector: nothing is recorded through hooks
        return False
    return bool(_active_collector.get())  # {} when the call records nothing


def _scatter(rows: torch.Tensor, where: torch.Tensor, count: int) -> torch.Tensor:
    """``(count, width)`` with ``rows`` at flat positions ``where`` and zeros elsewhere."""
    return rows.new_zeros(count, rows.shape[-1]).index_copy(0, where, rows)


def layer_on_real_tokens(
    layer: Any, tokens: torch.Tensor, where: torch.Tensor, shape: tuple[int, int], mask: torch.Tensor
) -> torch.Tensor:
    """One ``BertLayer`` over ``tokens``, the real rows of a ``shape`` batch at flat positions
    ``where``; attention runs on the padded shape under ``mask``."""
    attention = layer.attention.self
    batch, length = shape

    def heads(rows: torch.Tensor) -> torch.Tensor:  # (tokens, hidden) -> (batch, heads, length, size)
        padded = _scatter(rows, where, batch * length)
        return padded.view(batch, length, -1, attention.attention_head_size).transpose(1, 2)

    context = configured_attention(
        attention,
        heads(attention.query(tokens)),
        heads(attention.key(tokens)),
        heads(attention.value(tokens)),
        mask,
    )
    context = context.reshape(batch * length, -1).index_select(0, where)
    return layer.feed_forward_chunk(layer.attention.output(context, tokens))


@functools.cache
def _encoder_class() -> type:
    from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions
    from transformers.models.bert.modeling_bert import BertEncoder, BertLayer

    class PaddingSkippingBertEncoder(BertEncoder):
        """``BertEncoder`` whose layers compute real tokens only (see the module docstring)."""

        def forward(
            self,
            hidden_states: torch.Tensor,
            attention_mask: torch.Tensor | None = None,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            real = real_token_mask(attention_mask) if pays_off(hidden_states) else None
            if real is None or _collecting_outputs() or bool(real.all()):
                return super().forward(hidden_states, attention_mask, *args, **kwargs)
            batch, length, hidden = hidden_states.shape
            where = real.reshape(-1).nonzero().squeeze(1)
            tokens = hidden_states.reshape(batch * length, hidden).index_select(0, where)
            for layer in self.layer:
                if type(layer) is not BertLayer:  # the [CLS]-only last layer (first_token.py)
                    padded = _scatter(tokens, where, batch * length).view(batch, length, hidden)
                    return BaseModelOutputWithPastAndCrossAttentions(
                        last_hidden_state=layer(padded, attention_mask)
                    )
                tokens = layer_on_real_tokens(layer, tokens, where, (batch, length), attention_mask)
            padded = _scatter(tokens, where, batch * length).view(batch, length, hidden)
            return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=padded)

    PaddingSkippingBertEncoder.__qualname__ = "PaddingSkippingBertEncoder"  # found by pickle
    return PaddingSkippingBertEncoder


def skips_padding(model: Any) -> bool:
    """Whether ``skip_padding`` changes ``model``: a plain BERT sentence or token classifier."""
    from transformers import BertForSequenceClassification, BertForTokenClassification
    from transformers.models.bert.modeling_bert import BertEncoder, BertLayer

    from nlpbook.first_token import FirstTokenBertLayer  # built on first use (imports transformers)

    if type(model) not in (BertForSequenceClassification, BertForTokenClassification):
        return False
    config = model.config
    if config.is_decoder or getattr(config, "add_cross_attention", False):
        return False
    if getattr(config, "chunk_size_feed_forward", 0):  # chunks along the sequence, which packing removes
        return False
    encoder = model.bert.encoder
    if type(encoder) not in (BertEncoder, _encoder_class()):
        return False
    layers = list(encoder.layer)
    return (
        len(layers) > 0
        and all(type(layer) is BertLayer for layer in layers[:-1])
        and type(layers[-1]) in (BertLayer, FirstTokenBertLayer)
    )


def __getattr__(name: str) -> type:
    # Built on first use, so that importing nlpbook does not import transformers; pickle (the
    # model sent to spawned processes) looks the class up here by name.
    if name == "PaddingSkippingBertEncoder":
        return _encoder_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def skip_padding(model: Any) -> Any:
    """``model`` with its encoder computing real tokens only, where nothing reads the padded rows
    (see the module docstring); any other model is returned unchanged."""
    if skips_padding(model):
        model.bert.encoder.__class__ = _encoder_class()
        logger.debug("encoder layers skip padded rows")
    return model
