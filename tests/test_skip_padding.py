"""Encoder layers that skip padded rows: same function for the real tokens, same parameters."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch
from test_first_token import tiny_config
from transformers import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)

from nlpbook.first_token import read_first_token_only
from nlpbook.skip_padding import skip_padding, skips_padding
from nlpbook.xla import additive_attention_mask

LENGTHS = (17, 3, 9, 12, 1, 16)


def padded_batch(per_token: bool) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 120, (len(LENGTHS), max(LENGTHS)), generator=generator)
    mask = torch.ones_like(ids)
    for row, length in enumerate(LENGTHS):
        mask[row, length:] = 0
    if per_token:  # as the collator pads per-token targets: -100 wherever there is no token
        labels = torch.randint(0, 3, ids.shape, generator=generator).masked_fill(mask == 0, -100)
    else:
        labels = torch.tensor([0, 1, 2, 0, 1, 2])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def padded_and_skipping(model_class: type, attention: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The plain model and nlpbook's version of it (with the [CLS]-only last layer where it applies)."""
    torch.manual_seed(0)
    padded = model_class(tiny_config(attention))
    skipping = skip_padding(read_first_token_only(copy.deepcopy(padded)))
    assert type(skipping.bert.encoder) is not type(padded.bert.encoder)
    return padded, skipping


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("model_class", [BertForSequenceClassification, BertForTokenClassification])
def test_same_loss_and_gradients_and_real_token_logits_as_the_padded_encoder(
    model_class: type, attention: str
) -> None:
    padded, skipping = padded_and_skipping(model_class, attention)
    per_token = model_class is BertForTokenClassification
    batch = padded_batch(per_token)
    outputs = {}
    for name, model in (("padded", padded), ("skipping", skipping)):
        model.eval()  # no dropout: the two must then compute the same function
        outputs[name] = model(**batch)
        outputs[name].loss.backward()
    torch.testing.assert_close(outputs["skipping"].loss, outputs["padded"].loss, rtol=0, atol=1e-6)
    real = batch["attention_mask"].bool() if per_token else slice(None)
    torch.testing.assert_close(
        outputs["skipping"].logits[real], outputs["padded"].logits[real], rtol=0, atol=1e-6
    )
    for (name, a), (_, b) in zip(padded.named_parameters(), skipping.named_parameters(), strict=True):
        if a.grad is None:
            assert b.grad is None, name
            continue
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_padded_positions_are_zero_and_a_4d_mask_gives_the_same_result() -> None:
    padded, skipping = padded_and_skipping(BertForTokenClassification, "sdpa")
    batch = padded_batch(per_token=True)
    mask = batch["attention_mask"]
    with torch.no_grad():
        hidden = skipping.eval().bert(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        assert hidden[mask == 0].abs().max() == 0
        assert hidden[mask == 1].abs().min() > 0
        # a 4D additive mask, as nlpbook passes on TPUs, marks the same rows as padding
        mask4d = additive_attention_mask(mask, torch.float32)
        again = skipping.bert(input_ids=batch["input_ids"], attention_mask=mask4d).last_hidden_state
        torch.testing.assert_close(again, hidden, rtol=0, atol=1e-6)


def test_the_padded_path_runs_when_nothing_is_padded_or_layers_are_recorded() -> None:
    padded, skipping = padded_and_skipping(BertForTokenClassification, "sdpa")
    batch = padded_batch(per_token=True)
    with torch.no_grad():
        # per-layer hidden states keep transformers' (batch, length, hidden) shape
        recorded = skipping.eval().bert(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        expected = padded.eval().bert(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
        )
        assert len(recorded.hidden_states) == len(expected.hidden_states)
        for got, want in zip(recorded.hidden_states, expected.hidden_states, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        full_rows = {"input_ids": batch["input_ids"][:1], "attention_mask": batch["attention_mask"][:1]}
        torch.testing.assert_close(
            skipping.bert(**full_rows).last_hidden_state,
            padded.bert(**full_rows).last_hidden_state,
            rtol=0,
            atol=0,  # the very same computation
        )


def test_bf16_autocast_keeps_the_padded_path() -> None:
    """Measured slower there (skip_padding.pays_off): the output is the plain model's, bit for bit."""
    padded, skipping = padded_and_skipping(BertForTokenClassification, "sdpa")
    batch = padded_batch(per_token=True)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = skipping.eval().bert(**inputs).last_hidden_state
        want = padded.eval().bert(**inputs).last_hidden_state
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert got[batch["attention_mask"] == 0].abs().max() > 0  # padded rows computed, as transformers does


def test_trains_with_dropout_and_keeps_state_dict_and_pickles(tmp_path: Path) -> None:
    padded, skipping = padded_and_skipping(BertForSequenceClassification, "sdpa")
    assert list(skipping.state_dict()) == list(padded.state_dict())
    unpickled = pickle.loads(pickle.dumps(skipping))  # as a model reaches spawned processes
    assert type(unpickled.bert.encoder) is type(skipping.bert.encoder)
    batch = padded_batch(per_token=False)
    skipping.train()
    optimizer = torch.optim.AdamW(skipping.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = skipping(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_question_answering_and_decoders_are_left_alone() -> None:
    """QA's loss is a softmax over every position, padding included: zeros there would change it."""
    qa = BertForQuestionAnswering(tiny_config("sdpa"))
    before = type(qa.bert.encoder)
    assert not skips_padding(qa)
    assert type(skip_padding(qa).bert.encoder) is before
    config = tiny_config("sdpa")
    config.is_decoder = True
    assert not skips_padding(BertForSequenceClassification(config))


@pytest.mark.parametrize(("task_name", "labels"), [("ner", ["O", "B-PER"]), ("sts", ["score"])])
def test_nlpbook_loads_exports_with_it(
    tiny_bert: Path, tmp_path: Path, task_name: str, labels: list[str]
) -> None:
    from test_predict import untrained_export

    from nlpbook.export import read_export

    export = read_export(untrained_export(task_name, tiny_bert, tmp_path, labels))
    assert type(export.model.bert.encoder).__name__ == "PaddingSkippingBertEncoder"
