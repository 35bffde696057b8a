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


class SummedGradientClippingAdamW(keras.optimizers.AdamW):
    """AdamW that clips the global norm of the gradient summed over the replicas.

    `clip_norm` (None: no clipping) bounds the global norm of the whole batch's gradient:
    the sum of the replicas' gradients, each of which is its share of the batch loss.

    Why an override: Keras 3 clips (`global_clipnorm`) in `apply`, before its TensorFlow
    backend sums the replicas' gradients in `_backend_update_step`, so under a tf.distribute
    strategy it would clip each replica's share, not the batch's gradient. Clipping in the
    train step instead cost a second cross-replica sum of every gradient (the step's own, then
    Keras's, which cannot be skipped). This clips between Keras's one sum and the update
    (keras/src/backend/tensorflow/optimizer.py `_backend_update_step`, keras as pinned in
    requirements.lock). With one replica the sum is the identity: plain global-norm clipping.
    Under a LossScaleOptimizer the gradients arrive here unscaled, so `clip_norm` needs no
    loss-scale factor.
    """

    def __init__(self, *args, clip_norm=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_norm = clip_norm

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self.clip_norm is None:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        summed = self._all_reduce_sum_gradients(list(zip(grads, variables)))
        # Dense first: global_norm of an IndexedSlices (a word-embedding gradient) sums the
        # squares of its rows, and a token seen twice in the batch has two rows, not their sum.
        clipped, _ = tf.clip_by_global_norm([tf.convert_to_tensor(g) for g, _ in summed],
                                            self.clip_norm)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy,
            list(zip(clipped, [v for _, v in summed])), learning_rate)

    def get_config(self):
        return dict(super().get_config(), clip_norm=self.clip_norm)


def create_optimizer(config, schedule, loss_scaling: bool = False):
    """AdamW for an `OptimizerConfig` following `schedule`, clipping the global norm of the
    replica-summed gradient at `config.clip_norm` (`SummedGradientClippingAdamW`); wrapped in
    a LossScaleOptimizer for float16."""
    optimizer = SummedGradientClippingAdamW(learning_rate=schedule, weight_decay=config.weight_decay,
                                            beta_1=config.beta_1, beta_2=config.beta_2,
                                            epsilon=config.epsilon, clip_norm=config.clip_norm)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
