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
would again give every replica the same masks. There the export folds in a hash of the encoder's
input ids instead (`inputs_salt`, set for the duration of a call by `salted`): replicas fed
different examples draw different masks. It stays stateless and seeded, so it also runs under
`tf.config.experimental.enable_op_determinism()`, where unseeded random ops are refused.
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
        seed = tf.cast(self.seed_generator.next(), tf.int64)       # [2]; advances the state
        salt = getattr(self, "_salt", None)
        if salt is not None:  # an export's training path (see the module docstring)
            seed = seed + tf.stack([tf.cast(salt, tf.int64), tf.constant(0, tf.int64)])
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            replica = tf.cast(context.replica_id_in_sync_group, tf.int64)
            seed = seed + tf.stack([tf.constant(0, tf.int64), replica * _REPLICA_SEED_STRIDE])
        # int32, as Keras' TensorFlow backend casts it (XLA's stateless ops want int32 seeds)
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, noise_shape=noise_shape,
                                                    seed=seed)


def inputs_salt(input_word_ids: tf.Tensor) -> tf.Tensor:
    """int64 scalar in [0, 2**31 - 1): a hash of int [batch, seq] token ids (padding included),
    position-weighted so that the same ids in another order or batch layout hash differently.
    Integer arithmetic only: the same ids give the same salt on any device."""
    modulus = tf.constant(2**31 - 1, tf.int64)
    ids = tf.cast(tf.reshape(input_word_ids, [-1]), tf.int64)
    index = tf.range(tf.size(ids, out_type=tf.int64), dtype=tf.int64)
    return tf.reduce_sum(((ids + 1) * (index * 7919 + 1)) % modulus) % modulus


@contextlib.contextmanager
def salted(layer: keras.layers.Layer, salt: tf.Tensor):
    """While active (i.e. while a function calling `layer` is traced), every `ReplicaDropout` in
    `layer` folds `salt` (an int scalar tensor of that trace) into its seed."""
    dropouts = [l for l in layer._flatten_layers(include_self=True) if isinstance(l, ReplicaDropout)]
    for dropout in dropouts:
        dropout._salt = salt
    try:
        yield dropouts
    finally:
        for dropout in dropouts:
            dropout._salt = None
