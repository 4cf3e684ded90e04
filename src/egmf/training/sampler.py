"""The training samplers: a seeded epoch permutation, and length-bucketed batches built from it.

Both replay the order of any epoch from ``(seed, epoch)`` alone, so a resume that skips the batches already
done (``accelerator.skip_first_batches``) continues with exactly the batches an uninterrupted run would see.

Several processes: :class:`ProcessShares` cuts each global length-bucketed batch into one share per process,
so P processes of batch b train on the same samples per step as one process of batch P * b.

The epoch is chosen by ``use_epoch``, deliberately not ``set_epoch``: Accelerate calls ``set_epoch`` with its
own count of iterations over a loader, which restarts at 0 for the loader that skips the batches done before a
resume, and would replay the wrong epoch's order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``seed + epoch``."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng(self.seed + self.epoch).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of indices whose ``lengths`` are close, in a seeded random order (a batch sampler).

    Per epoch: a permutation drawn from ``seed + epoch`` is cut into chunks of ``batch_size * bucket_batches``
    indices; each chunk is sorted by length (stable, so ties keep the permutation's order) and cut into
    batches; then the order of all batches is shuffled by the same generator. Rows of one batch come from one
    chunk, so they pad to nearly the same width, while the chunks keep the epoch random. As with a plain
    ``DataLoader(batch_size=...)``, only the epoch's last batch can be smaller than ``batch_size`` (the
    remainder of the last chunk, kept last).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, bucket_batches: int = 50):
        if batch_size < 1:
            raise ValueError(f"LengthBucketSampler: batch_size must be >= 1, got {batch_size}")
        if bucket_batches < 1:
            raise ValueError(f"LengthBucketSampler: bucket_batches must be >= 1, got {bucket_batches}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.seed, self.bucket_batches, self.epoch = batch_size, seed, bucket_batches, 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """The current epoch's batches, in the order they are served."""
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.lengths))
        chunk = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i:i + self.batch_size].tolist() for i in range(0, len(part), self.batch_size)]
        # The short remainder batch, if any, is the last one cut: keep it last, so every other batch is full
        # (a process's share of a global batch stays the same size, and the loss averages over equal batches).
        full, rest = (batches[:-1], batches[-1:]) if batches and len(batches[-1]) < self.batch_size else (batches, [])
        return [full[i] for i in rng.permutation(len(full))] + rest

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


class ProcessShares(Sampler[list[int]]):
    """Global batches of a :class:`LengthBucketSampler` cut into one share per process, in process order.

    Accelerate deals a batch sampler's batches round-robin to the processes (``BatchSamplerShard``: batch ``i``
    goes to process ``i % processes``), so serving every global batch as ``processes`` consecutive shares gives
    process ``r`` share ``r`` of each: the samples of one optimiser step on ``P`` processes of batch ``b`` are
    the batch of one process of batch ``P * b``, and the two runs train on the same batches.
    """

    def __init__(self, batches: LengthBucketSampler, processes: int):
        if processes < 1 or batches.batch_size % processes:
            raise ValueError(
                f"ProcessShares: the global batch size {batches.batch_size} must be a multiple of the "
                f"{processes} processes"
            )
        self.batches, self.processes = batches, processes
        self.batch_size = batches.batch_size // processes  # read by Accelerate's BatchSamplerShard

    def use_epoch(self, epoch: int) -> None:
        self.batches.use_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            for start in range(0, len(batch), self.batch_size):
                yield batch[start:start + self.batch_size]

    def __len__(self) -> int:
        n, size = len(self.batches.lengths), self.batches.batch_size
        return (n // size) * self.processes + -(-(n % size) // self.batch_size)
