"""Timing: per-call samples, the cases interleaved so machine noise hits all alike."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter_ns
from typing import TypeVar

# One call of the measured operation; it gets the call's number, to pick its input.
Operation = Callable[[int], object]

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Summary:
    """Microseconds per call."""

    median: float
    p95: float
    samples: int

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Summary:
        microseconds = [ns / 1000 for ns in samples_ns]
        p95 = statistics.quantiles(microseconds, n=20)[-1] if len(microseconds) > 1 else 0.0
        return cls(statistics.median(microseconds), p95, len(microseconds))


@dataclass(frozen=True)
class Plan:
    """``warmup`` untimed calls of each case, then ``rounds`` timed calls of each."""

    rounds: int
    warmup: int


def time_call(operation: Operation, number: int) -> int:
    """Nanoseconds taken by call number ``number``."""
    start = perf_counter_ns()
    operation(number)
    return perf_counter_ns() - start


def measure(cases: Mapping[Key, Operation], plan: Plan, seed: int = 0) -> dict[Key, Summary]:
    """Time every case: a warm-up, then rounds of one call of each case, in a new random
    order every round, so that a burst of load on the machine hits every case alike."""
    for operation in cases.values():
        for number in range(plan.warmup):
            operation(number)
    samples: dict[Key, list[int]] = {key: [] for key in cases}
    order = list(cases)
    shuffle = random.Random(seed).shuffle  # noqa: S311 - an order, not a secret
    for number in range(plan.warmup, plan.warmup + plan.rounds):
        shuffle(order)
        for key in order:
            samples[key].append(time_call(cases[key], number))
    return {key: Summary.of(samples[key]) for key in cases}
