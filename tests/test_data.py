"""Batching: per-batch padding, length grouping, exact mid-epoch skipping."""

from __future__ import annotations

import random

import pytest
import torch

from nlpbook.data import Collator, LengthGroupedSampler, make_loader


def features(lengths: list[int], token_labels: bool = False) -> list[dict]:
    out = []
    for i, n in enumerate(lengths):
        feature = {"input_ids": list(range(2, 2 + n)), "token_type_ids": [0] * n, "example_index": i}
        feature["labels"] = [1] * n if token_labels else i % 2
        out.append(feature)
    return out


def test_dynamic_padding_pads_to_the_longest_in_the_batch():
    lengths = [random.Random(i).randint(3, 90) for i in range(200)]
    loader = make_loader(features(lengths), 16, pad_token_id=0, shuffle=True, seed=1)
    seen = 0
    for batch in loader:
        real = batch["attention_mask"].sum(-1)
        assert batch["input_ids"].shape[1] == int(real.max()), "no batch is longer than its longest example"
        assert torch.equal(real, torch.tensor([lengths[i] for i in batch["feature_index"].tolist()]))
        seen += len(real)
    assert seen == len(lengths)


def test_padding_to_max_length_is_an_option():
    batch = Collator(pad_token_id=0, pad_to=128)([{"input_ids": [2, 5, 3], "labels": 1}])
    assert batch["input_ids"].shape == (1, 128)
    assert batch["attention_mask"].sum() == 3


def test_token_labels_are_padded_with_minus_100():
    batch = Collator(pad_token_id=0)(features([3, 5], token_labels=True))
    assert batch["labels"].tolist()[0] == [1, 1, 1, -100, -100]


def test_length_grouping_removes_most_padding():
    lengths = [random.Random(i).choice([5, 8, 12, 16, 20, 30, 60, 120]) for i in range(2000)]
    share = {}
    for grouped in (True, False):
        loader = make_loader(features(lengths), 32, 0, shuffle=True, group_by_length=grouped, seed=3)
        padded = sum(b["input_ids"].numel() for b in loader)
        share[grouped] = 1 - sum(lengths) / padded
    assert share[True] < 0.05 < 0.3 < share[False]


def test_sampler_is_a_permutation_that_changes_per_epoch():
    sampler = LengthGroupedSampler([i % 37 for i in range(500)], batch_size=16, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == sorted(second) == list(range(500))
    assert first != second


@pytest.mark.parametrize("world_size", [1, 3])
def test_every_device_starts_each_epoch_with_one_of_the_longest_batches(world_size):
    # A batch too long for memory must fail in the first step, not hours into an epoch.
    lengths = random.Random(0).sample(range(1000), 512)  # distinct lengths; 32 full batches of 16
    for epoch in (0, 1):
        whole = LengthGroupedSampler(lengths, batch_size=16, seed=0)
        whole.set_epoch(epoch)
        longest = sorted((max(lengths[i] for i in b) for b in whole.batches()), reverse=True)
        firsts = []
        for rank in range(world_size):
            sampler = LengthGroupedSampler(lengths, batch_size=16, seed=0)
            sampler.shard(rank, world_size)
            sampler.set_epoch(epoch)
            firsts.append(max(lengths[i] for i in list(sampler)[:16]))
        assert sorted(firsts, reverse=True) == longest[:world_size]
        assert firsts[0] == max(lengths)


def test_sampler_skips_exactly_the_batches_already_trained():
    sampler = LengthGroupedSampler([i % 23 for i in range(300)], batch_size=10, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.skip_batches(epoch=2, batches=7)
    assert list(sampler) == full[70:]
    assert list(sampler) == full, "the skip applies to one iteration only"


@pytest.mark.parametrize("rows", [500, 512])  # 500: a short last batch; 512: none
def test_sharded_sampler_splits_whole_grouped_batches_between_devices(rows):
    lengths = [i % 41 for i in range(rows)]
    whole = LengthGroupedSampler(lengths, batch_size=16, seed=0)
    whole.set_epoch(3)
    global_batches = [tuple(b) for b in whole.batches()]
    shares = []
    for rank in range(3):
        sampler = LengthGroupedSampler(lengths, batch_size=16, seed=0)
        sampler.set_epoch(3)
        sampler.shard(rank, 3)
        indices = list(sampler)
        assert len(indices) == len(sampler)
        # the DataLoader cuts every 16 indices: each cut must be one of the grouped batches
        cuts = [tuple(indices[i : i + 16]) for i in range(0, len(indices), 16)]
        assert set(cuts) <= set(global_batches)
        shares.append(cuts)
    assert len({len(share) for share in shares}) == 1, "every device runs the same number of batches"
    used = [i for share in shares for batch in share for i in batch]
    assert len(used) == len(set(used)), "no example on two devices"
    assert len(global_batches) - sum(map(len, shares)) < 3, "at most world_size - 1 batches left out"


def test_sharded_sampler_resumes_mid_epoch():
    sampler = LengthGroupedSampler([i % 23 for i in range(300)], batch_size=10, seed=5)
    sampler.shard(1, 2)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.skip_batches(epoch=1, batches=4)
    assert list(sampler) == full[40:]
