"""The training samplers: every index once per epoch, replayable from (seed, epoch), bucketed batches pad less."""

from __future__ import annotations

import numpy as np
import pytest

from egmf.training.sampler import EpochShuffle, LengthBucketSampler


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    # Spread like MELD prompts (p10 ~100, p90 ~170 tokens).
    return np.random.default_rng(seed).integers(60, 230, size=n).tolist()


def _padding(batches: list[list[int]], lengths: list[int]) -> float:
    """The share of padded cells when every batch pads to its longest row."""
    cells = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / cells


def test_epoch_shuffle_is_a_seeded_permutation_per_epoch():
    s = EpochShuffle(50, seed=3)
    first = list(s)
    assert sorted(first) == list(range(50)) and len(s) == 50
    assert list(EpochShuffle(50, seed=3)) == first
    s.use_epoch(1)
    assert sorted(s) == list(range(50)) and list(s) != first


@pytest.mark.parametrize("n,batch_size,bucket_batches", [(1000, 8, 50), (103, 8, 4), (7, 8, 50), (64, 8, 1)])
def test_every_index_once_per_epoch_in_full_batches_but_the_last(n, batch_size, bucket_batches):
    s = LengthBucketSampler(_lengths(n), batch_size, seed=0, bucket_batches=bucket_batches)
    for epoch in range(3):
        s.use_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == -(-n // batch_size)
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert all(len(b) == batch_size for b in batches[:-1])
        assert 1 <= len(batches[-1]) <= batch_size


def test_bucketed_batches_pad_much_less_than_random_batches():
    lengths = _lengths()
    bucketed = list(LengthBucketSampler(lengths, 8, seed=0))
    order = list(EpochShuffle(len(lengths), seed=0))
    random_batches = [order[i:i + 8] for i in range(0, len(order), 8)]
    random_pad, bucket_pad = _padding(random_batches, lengths), _padding(bucketed, lengths)
    assert random_pad > 0.2  # the spread above pads random batches of 8 by about a quarter
    assert bucket_pad < random_pad / 10


def test_same_seed_and_epoch_same_order_other_epoch_or_seed_another():
    lengths = _lengths()
    a, b = LengthBucketSampler(lengths, 8, seed=5), LengthBucketSampler(lengths, 8, seed=5)
    a.use_epoch(2)
    b.use_epoch(2)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating again replays the epoch (as a resume does)
    b.use_epoch(3)
    assert list(a) != list(b)
    assert list(a) != list(LengthBucketSampler(lengths, 8, seed=6))


def test_batch_order_is_shuffled_not_sorted_by_length():
    lengths = _lengths()
    widths = [max(lengths[i] for i in b) for b in LengthBucketSampler(lengths, 8, seed=0)]
    # One chunk of 50 batches is sorted inside; the served order must mix chunks and widths.
    assert widths != sorted(widths) and widths[:50] != sorted(widths[:50])


@pytest.mark.parametrize("kwargs,field", [({"batch_size": 0}, "batch_size"), ({"bucket_batches": 0}, "bucket_batches")])
def test_bad_sizes_are_refused_by_name(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LengthBucketSampler([1, 2, 3], **{"batch_size": 2, "seed": 0, **kwargs})


class _Measured:
    """A model that measures prompts, as EGMF does (the trainer buckets only such models)."""

    def __init__(self, lengths: list[int]):
        self.lengths = lengths

    def prompt_length(self, sample: int) -> int:
        return self.lengths[sample]


def _shards(processes: int, batch_size: int, lengths: list[int], epoch: int, skip: int = 0, **train):
    """Each process's batches as Accelerate deals them out of the trainer's loader."""
    from accelerate.data_loader import prepare_data_loader, skip_first_batches

    from egmf.config import TrainConfig
    from egmf.training.trainer import train_loader

    tc = TrainConfig(batch_size=batch_size, seed=7, bucket_batches=3, **train)
    out = []
    for rank in range(processes):
        loader, sampler = train_loader(_Measured(lengths), list(range(len(lengths))), tc, processes)
        loader = prepare_data_loader(loader, num_processes=processes, process_index=rank, put_on_device=False)
        sampler.use_epoch(epoch)
        if skip:
            loader = skip_first_batches(loader, skip)
        out.append([list(b) for b in loader.batch_sampler])
    return out


@pytest.mark.parametrize("n", [96, 100, 103])
def test_two_processes_of_batch_4_see_the_batches_of_one_process_of_batch_8(n):
    lengths = _lengths(n)
    for epoch in (0, 1):
        (one,) = _shards(1, 8, lengths, epoch)
        expected = LengthBucketSampler(lengths, 8, seed=7, bucket_batches=3)
        expected.use_epoch(epoch)
        assert one == list(expected)
        first, second = _shards(2, 4, lengths, epoch)
        assert len(first) == len(second) == len(one)
        full = n // 8
        # Every optimiser step trains on the same 8 samples, process 0 taking the shorter half.
        assert [a + b for a, b in zip(first[:full], second[:full])] == one[:full]
        if n % 8:  # the short last batch: Accelerate fills the processes' shares with samples from the epoch's start
            assert set(one[-1]) <= set(first[-1] + second[-1])


def test_a_resume_skipping_batches_continues_with_the_same_shares():
    lengths = _lengths(96)
    whole = _shards(2, 4, lengths, epoch=1)
    resumed = _shards(2, 4, lengths, epoch=1, skip=5)
    assert resumed == [w[5:] for w in whole]


def test_models_without_prompt_length_or_bucketing_off_shuffle_plainly():
    from egmf.config import TrainConfig
    from egmf.training.trainer import train_loader

    _, sampler = train_loader(object(), list(range(10)), TrainConfig(batch_size=4), 1)
    assert isinstance(sampler, EpochShuffle)
    _, sampler = train_loader(_Measured(_lengths(10)), list(range(10)), TrainConfig(length_bucketing=False), 1)
    assert isinstance(sampler, EpochShuffle)
    loader, sampler = train_loader(_Measured(_lengths(10)), list(range(10)), TrainConfig(batch_size=4), 1)
    assert isinstance(sampler, LengthBucketSampler) and loader.batch_sampler is sampler
