"""Dropout with 16-bit masks on the CPU: torch's dropout in distribution, scale and gradient."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from nlpbook.cpu_dropout import CpuDropout, use_cpu_dropout


def dropped(p: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    x = torch.rand(1000, 1000) + 0.5  # never 0: a 0 in the output is a dropped element
    return x, use_cpu_dropout(nn.Sequential(nn.Dropout(p))).train()(x)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drops_a_share_p_independently_and_scales_the_rest_as_torch_does(p: float) -> None:
    x, y = dropped(p)
    drop = y == 0
    # a million elements: the binomial share's standard deviation is below 5e-4
    assert abs(drop.float().mean().item() - p) < 3e-3
    scale = torch.ones(()).div_(1 - p)  # torch multiplies by the float32 1 / (1 - p)
    assert torch.equal(y[~drop], x[~drop] * scale)
    # neighbours come from the same 64-bit draw, so check that they drop independently
    for offset in (1, 2, 3, 4):
        both = (drop[:, offset:] & drop[:, :-offset]).float().mean().item()
        assert abs(both - p * p) < 3e-3, (offset, both)
    # every lane of the draw is used: a stuck lane would leave a column pattern
    shares = drop.view(-1, 4).float().mean(0)
    assert torch.all((shares - p).abs() < 5e-3), shares


def test_a_seed_repeats_the_masks_and_the_next_call_draws_new_ones() -> None:
    _, first = dropped(0.1, seed=3)
    _, again = dropped(0.1, seed=3)
    assert torch.equal(first, again)
    layer = use_cpu_dropout(nn.Sequential(nn.Dropout(0.1))).train()
    x = torch.ones(64, 64)
    assert not torch.equal(layer(x) == 0, layer(x) == 0)


def test_the_gradient_passes_where_the_mask_kept_scaled() -> None:
    x = (torch.rand(300, 70) + 0.5).requires_grad_()
    layer = use_cpu_dropout(nn.Sequential(nn.Dropout(0.3))).train()
    y = layer(x)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * torch.ones(()).div_(0.7))


def test_evaluation_in_place_and_p_0_stay_torch_s(monkeypatch) -> None:
    x = torch.rand(50, 50) + 0.5
    layer = CpuDropout(0.5)
    assert torch.equal(layer.eval()(x), x)
    calls: list[float] = []
    monkeypatch.setattr("nlpbook.cpu_dropout.dropout_16bit", lambda x, p: calls.append(p) or x)
    CpuDropout(0.5, inplace=True).train()(x.clone())
    CpuDropout(0.0).train()(x)
    assert calls == []
    CpuDropout(0.5).train()(x)
    assert calls == [0.5]


class OwnDropout(nn.Dropout):
    """A subclass may do something else in its forward: left alone."""


def test_only_plain_dropout_is_swapped_and_the_model_is_otherwise_the_same() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), OwnDropout(0.2))
    before = copy.deepcopy(model.state_dict())
    use_cpu_dropout(model)
    assert [type(m) for m in model] == [nn.Linear, CpuDropout, OwnDropout]
    assert model[1].p == 0.2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(pickle.loads(pickle.dumps(model))[1]) is CpuDropout  # spawned processes


def test_nlpbook_trains_every_task_s_model_with_it(tiny_bert: Path, tmp_path: Path) -> None:
    from nlpbook.commands import load_pretrained
    from nlpbook.tasks import get_task

    for name, labels in (("classification", ["neg", "pos"]), ("ner", ["O", "B-PER", "I-PER"])):
        task = get_task(name)
        args = task.arguments_class(pretrained_model_name=str(tiny_bert), downstream_model_dir=str(tmp_path))
        _, model = load_pretrained(args, task, labels)
        kinds = {type(m) for m in model.modules() if isinstance(m, nn.Dropout)}
        assert kinds == {CpuDropout}, (name, kinds)
