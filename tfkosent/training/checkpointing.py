"""Checkpoints that let a run continue exactly where it stopped, and stop signals.

A checkpoint (tf.train.Checkpoint under OUTPUT_DIR/checkpoints, rotated by a
tf.train.CheckpointManager) holds

    model        every encoder variable: weights and the dropout RNG states
                 (Keras SeedGenerator states), by position in `encoder.variables`
    optimizer    every optimizer variable (iteration count, AdamW moments, loss scale)
    step         optimizer steps taken
    epoch, batch the data position: run epoch index and steps taken within it
    best_score, best_step   the best dev cosine Spearman so far (x100) and its step

TensorFlow writes the checkpoint files first and then atomically replaces the
`checkpoint` index, so a run killed while saving still restores the previous one.
"""

from __future__ import annotations

import signal
import threading
from typing import Optional, Sequence

import tensorflow as tf

CHECKPOINT_DIR = "checkpoints"


def tf_variable(variable):
    """The tf.Variable (or distributed variable) behind a Keras 3 variable."""
    value = getattr(variable, "value", None)
    return value if isinstance(value, tf.Variable) else variable


class TrainState:
    """Checkpointed state of a run (see the module docstring)."""

    def __init__(self, directory: str, model_variables: Sequence, optimizer_variables: Sequence,
                 keep: int = 3):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.batch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch")
        self.best_score = tf.Variable(float("-inf"), dtype=tf.float64, trainable=False,
                                      name="best_score")
        self.best_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_step")
        # The loss of the last step taken, so that a run resumed after its last step (killed while
        # writing model/ or the export) still reports it; NaN before the first step. Checkpoints
        # written before it existed restore without it (NaN).
        self.last_loss = tf.Variable(float("nan"), dtype=tf.float64, trainable=False,
                                     name="last_loss")
        self.checkpoint = tf.train.Checkpoint(
            model=[tf_variable(v) for v in model_variables],
            optimizer=[tf_variable(v) for v in optimizer_variables],
            step=self.step, epoch=self.epoch, batch=self.batch,
            best_score=self.best_score, best_step=self.best_step, last_loss=self.last_loss)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep,
                                                  checkpoint_name="ckpt")

    @property
    def latest(self) -> Optional[str]:
        return self.manager.latest_checkpoint

    def save(self) -> str:
        """Writes a checkpoint numbered by the step (once per step)."""
        step = int(self.step.numpy())
        if self.latest and self.latest.endswith(f"ckpt-{step}"):
            return self.latest
        return self.manager.save(checkpoint_number=step)

    def restore_latest(self) -> Optional[str]:
        """Restores the newest checkpoint; None when there is none."""
        path = self.latest
        if path is None:
            return None
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def set_position(self, step: int, epoch: int, batch: int) -> None:
        self.step.assign(step)
        self.epoch.assign(epoch)
        self.batch.assign(batch)

    @property
    def position(self):
        return int(self.step.numpy()), int(self.epoch.numpy()), int(self.batch.numpy())


class StopSignals:
    """Context manager turning SIGTERM / SIGINT into a flag the loop polls between steps.

    A second SIGINT raises KeyboardInterrupt at once.  Outside the main thread
    (where Python cannot install handlers) it does nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: Optional[int] = None
        self._previous = {}

    def _handler(self, signum, frame):
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""
