"""The sentence classifier's last layer computed for [CLS] only: same function, same parameters."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)

from nlpbook.first_token import read_first_token_only, reads_first_token_only
from nlpbook.xla import additive_attention_mask


def tiny_config(attention: str) -> BertConfig:
    config = BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    config._attn_implementation = attention
    return config


def padded_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 120, (6, 17), generator=generator)
    mask = torch.ones_like(ids)
    for row, length in enumerate((17, 3, 9, 12, 1, 16)):
        mask[row, length:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 0, 1, 2])}


def pair(attention: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    full = BertForSequenceClassification(tiny_config(attention))
    return full, read_first_token_only(copy.deepcopy(full))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_same_logits_loss_and_gradients_as_the_full_layer(attention: str) -> None:
    full, fast = pair(attention)
    assert type(fast.bert.encoder.layer[-1]) is not type(full.bert.encoder.layer[-1])
    batch = padded_batch()
    for model in (full, fast):
        model.eval()  # no dropout: the two must then compute the same function
        model.zero_grad()
        model(**batch).loss.backward()
    with torch.no_grad():
        torch.testing.assert_close(fast(**batch).logits, full(**batch).logits, rtol=0, atol=1e-6)
    for (name, a), (_, b) in zip(full.named_parameters(), fast.named_parameters(), strict=True):
        if a.grad is None:
            assert b.grad is None, name
            continue
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    with torch.no_grad():  # a 4D additive mask, as nlpbook passes on TPUs, gives the same logits
        mask4d = additive_attention_mask(batch["attention_mask"], torch.float32)
        logits = fast(input_ids=batch["input_ids"], attention_mask=mask4d).logits
        torch.testing.assert_close(logits, full(**batch).logits, rtol=0, atol=1e-6)


def test_trains_like_the_full_layer_with_dropout() -> None:
    """With dropout, the masks differ (fewer positions draw one); the loss still falls alike."""
    full, fast = pair("sdpa")
    batch = padded_batch()
    losses = {}
    for name, model in (("full", full), ("fast", fast)):
        model.train()
        torch.manual_seed(1)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        losses[name] = []
        for _ in range(30):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses[name].append(loss.item())
    for curve in losses.values():
        assert curve[-1] < 0.5 * curve[0]
    assert abs(losses["fast"][-1] - losses["full"][-1]) < 0.3


def test_state_dict_and_export_unchanged(tmp_path: Path) -> None:
    full, fast = pair("sdpa")
    assert list(fast.state_dict()) == list(full.state_dict())
    unpickled = pickle.loads(pickle.dumps(fast))  # as a model reaches spawned processes
    assert type(unpickled.bert.encoder.layer[-1]) is type(fast.bert.encoder.layer[-1])
    fast.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded.bert.encoder.layer[-1]) is type(full.bert.encoder.layer[-1])  # plain transformers
    batch = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, fast.eval()(**batch).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("model_class", [BertForTokenClassification, BertForQuestionAnswering])
def test_models_that_read_every_token_are_left_alone(model_class: type) -> None:
    model = model_class(tiny_config("sdpa"))
    before = type(model.bert.encoder.layer[-1])
    assert not reads_first_token_only(model)
    assert type(read_first_token_only(model).bert.encoder.layer[-1]) is before


@pytest.mark.parametrize(
    ("task_name", "labels", "changed"), [("sts", ["score"], True), ("ner", ["O", "B-PER"], False)]
)
def test_nlpbook_loads_sentence_tasks_with_it(
    tiny_bert: Path, tmp_path: Path, task_name: str, labels: list[str], changed: bool
) -> None:
    from test_predict import untrained_export

    from nlpbook.export import read_export

    export = read_export(untrained_export(task_name, tiny_bert, tmp_path, labels))
    layer = export.model.bert.encoder.layer[-1]
    assert (type(layer).__name__ == "FirstTokenBertLayer") is changed


def test_a_decoder_is_left_alone() -> None:
    config = tiny_config("sdpa")
    config.is_decoder = True
    assert not reads_first_token_only(BertForSequenceClassification(config))
