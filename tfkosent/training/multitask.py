"""Multitask schedules: the order in which the batches of several tasks are trained.

    sequential    one task after the other, each for its own number of epochs
                  (e.g. supervised SimCSE on NLI, then CoSENT on STS: the
                  KoSBERT / KoSimCSE "NLI then STS" recipe)
    round_robin   one batch of each task in turn, a task leaving the rotation
                  when its epoch is exhausted (sentence-transformers' multi-task
                  `fit`, without restarting the short tasks)

A run is a list of `Epoch`s.  Within an epoch the (task, batch) order is a pure
function of the tasks' batch counts, so the data position of a run is just
(epoch index, step within the epoch).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class Epoch:
    """One pass of the data loop.

    index: position in the run (the checkpoint's "epoch").
    task_epochs: {task index: that task's own epoch number}; seeds the task's shuffling.
    """

    index: int
    task_epochs: Dict[int, int]


def plan_epochs(schedule: str, epochs_per_task: Sequence[int]) -> List[Epoch]:
    """The run's epochs.  Round-robin tasks share one epoch count (all equal)."""
    if schedule == "sequential":
        pairs = [(t, e) for t, n in enumerate(epochs_per_task) for e in range(n)]
        return [Epoch(i, {t: e}) for i, (t, e) in enumerate(pairs)]
    if schedule == "round_robin":
        n = max(epochs_per_task)
        return [Epoch(e, {t: e for t in range(len(epochs_per_task))}) for e in range(n)]
    raise ValueError(f"unknown schedule {schedule!r}")


def interleave(batch_counts: Dict[int, int]) -> List[Tuple[int, int]]:
    """(task, batch index) pairs of one epoch: one batch of each task in turn.

    With a single task this is simply its batches in order.
    """
    order: List[Tuple[int, int]] = []
    tasks = sorted(batch_counts)
    for b in range(max(batch_counts.values(), default=0)):
        order += [(t, b) for t in tasks if b < batch_counts[t]]
    return order


def batches_consumed(order: Sequence[Tuple[int, int]], position: int) -> Dict[int, int]:
    """{task: number of its batches among order[:position]} (where each task resumes)."""
    counts: Dict[int, int] = {}
    for t, _ in order[:position]:
        counts[t] = counts.get(t, 0) + 1
    return counts
