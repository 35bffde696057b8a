"""`ReplicaDropout`: Keras 3 Dropout with a different mask on every tf.distribute replica.

Why this exists: Keras 3's `Dropout` draws its seed from a `SeedGenerator`, whose state is a
variable. Created inside a strategy's scope (MirroredStrategy, TPUStrategy), that variable is
mirrored, so every replica draws the *same* seed, and row j of every replica's share of the batch
gets the same dropout mask. The noise is then correlated across replicas: unsupervised SimCSE,
whose positives differ only by dropout, and any training with dropout see less of it than on one
device. This layer folds the replica's id into the second word of the seed; on one device
(replica 0) it draws exactly what `keras.layers.Dropout` draws. Its variables are Dropout's, so
checkpoints and exports are unchanged.

Exported SavedModels need another mechanism: the replica id is folded in while the function is
traced, and an export is traced on one device, so a restored encoder fine-tuned under a strategy
would again give every replica the same mask. `unseeded_for_export(layer)` makes every
ReplicaDropout under `layer` trace an unseeded stateful random op instead, whose kernel seeds
itself and keeps its own state on each device (as the stateful dropout of TF Hub's BERT
encoders, built with tf_keras, does). The in-library path stays seeded and reproducible.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

# Added to the seed's second word per replica: far apart, so replicas never share a stream.
_REPLICA_SEED_STRIDE = 1_000_003


@keras.saving.register_keras_serializable(package="tfkosent")
class ReplicaDropout(keras.layers.Dropout):
    """keras.layers.Dropout(rate) whose masks differ between replicas (see the module docstring).

    Input: any float tensor; output: the same shape and dtype (inputs unchanged unless
    `training=True`)."""

    def call(self, inputs, training=False):
        if not training or self.rate <= 0:
            return inputs
        if self.rate >= 1:
            return tf.zeros_like(inputs)
        noise_shape = None
        if self.noise_shape is not None:
            dynamic = tf.shape(inputs)
            noise_shape = [dynamic[i] if d is None else d for i, d in enumerate(self.noise_shape)]
        if getattr(self, "_unseeded", False):
            # The raw op with seed = seed2 = 0: each kernel instance (one per device) then seeds
            # itself at random. tf.nn.dropout would derive its op seed from a global seed when
            # one is set (tf.random.set_seed), and every device would draw the same mask again.
            shape = tf.shape(inputs) if noise_shape is None else tf.stack(noise_shape)
            keep = tf.raw_ops.RandomUniform(shape=shape, dtype=inputs.dtype, seed=0, seed2=0) >= self.rate
            return tf.where(keep, inputs / tf.cast(1.0 - self.rate, inputs.dtype), tf.zeros_like(inputs))
        seed = tf.cast(self.seed_generator.next(), tf.int64)       # [2]; advances the state
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
            seed = seed + tf.stack([tf.constant(0, tf.int64), replica * _REPLICA_SEED_STRIDE])
        # int32, as Keras' TensorFlow backend casts it (XLA's stateless ops want int32 seeds)
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, noise_shape=noise_shape,
                                                    seed=seed)


@contextlib.contextmanager
def unseeded_for_export(layer: keras.layers.Layer):
    """While active, every `ReplicaDropout` in `layer` traces an unseeded stateful dropout (see
    the module docstring): used when tracing and saving an export's training path."""
    dropouts = [l for l in layer._flatten_layers(include_self=True) if isinstance(l, ReplicaDropout)]
    for dropout in dropouts:
        dropout._unseeded = True
    try:
        yield dropouts
    finally:
        for dropout in dropouts:
            dropout._unseeded = False
