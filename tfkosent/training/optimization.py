"""AdamW with linear warmup and linear decay (the BERT / sentence-transformers schedule)."""

from __future__ import annotations

import keras
import tensorflow as tf

# Parameters without weight decay (BERT convention): biases and LayerNorm scales/offsets.
NO_DECAY = ("bias", "gamma", "beta")


@keras.saving.register_keras_serializable(package="tfkosent")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = peak * step / warmup for step < warmup, then
    peak * max(0, (total - step) / (total - warmup)): 0 at `total_steps`.

    `step` is the optimizer's iteration count before the update (0-based).
    """

    def __init__(self, peak_learning_rate: float, warmup_steps: int, total_steps: int):
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = self.peak_learning_rate
        warm = peak * step / float(max(self.warmup_steps, 1))
        decay = peak * tf.maximum(0.0, (self.total_steps - step)
                                  / float(max(self.total_steps - self.warmup_steps, 1)))
        return tf.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


def warmup_steps(config, total_steps: int) -> int:
    """`config.warmup_steps` if set, else round(warmup_ratio * total_steps)."""
    if config.warmup_steps is not None:
        return min(config.warmup_steps, total_steps)
    return int(round(config.warmup_ratio * total_steps))


def create_schedule(config, total_steps: int) -> WarmupLinearDecay:
    """The learning-rate schedule of an `OptimizerConfig` for a run of `total_steps`."""
    return WarmupLinearDecay(config.learning_rate, warmup_steps(config, total_steps), total_steps)


def create_optimizer(config, schedule, loss_scaling: bool = False):
    """keras.optimizers.AdamW for an `OptimizerConfig` following `schedule` (wrapped in
    a LossScaleOptimizer for float16).  Gradient clipping is the trainer's job: Keras
    would clip each replica's share before the cross-replica sum."""
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay,
                                       beta_1=config.beta_1, beta_2=config.beta_2,
                                       epsilon=config.epsilon)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
