"""`FineTunableTFSMLayer`: Keras 3's TFSMLayer, with weight names its optimizers accept and
XLA turned off for string inputs.

Why this exists: `keras.layers.TFSMLayer` wraps each variable of the SavedModel in a Keras
variable named after it, `weight.name.replace("/", "_")`, which keeps TensorFlow's ":0"
suffix ("transformer_encoder_word_embeddings_embeddings:0"). Optimizers with slot variables
(Adam, AdamW) name a slot after its weight, and inside `model.fit` (a tf.function) that
name becomes a name scope, where ":" is not allowed:

    ValueError: 'transformer_encoder_word_embeddings_embeddings:0_momentum' is not a valid
    scope name

(Keras 3.x with TensorFlow 2.21; SGD, which has no slots, trains.) This subclass names the
wrapping variables without the ":". The wrapped tf.Variables, which the SavedModel's
functions read, are the same objects, so nothing else changes.

    import keras, tensorflow_text
    from tfkosent.layers import FineTunableTFSMLayer

    encoder = FineTunableTFSMLayer("exports/my_model/encoder", call_endpoint="serve",
                                   call_training_endpoint="serve_training", trainable=True)

Why string endpoints set `supports_jit = False`: `model.compile(jit_compile="auto")`, Keras'
default, turns XLA on on any machine with a GPU when every layer says it supports it, and
TFSMLayer always says so. A model holding the `preprocess/` module (string and SentencePiece
ops, which XLA cannot compile) then failed in `fit` and `predict` on Colab GPUs with
"RET_CHECK failure (xla_launch_util.cc:...) variable.var() && variable.var()->is_initialized".
A layer whose endpoint takes tf.string says it does not support XLA, so "auto" resolves to
False for the model (an explicit `jit_compile=True` is still the user's choice).
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _takes_strings(fn) -> bool:
    """Whether a restored SavedModel function or signature has a tf.string input."""
    signatures = [getattr(fn, "structured_input_signature", None)]
    signatures += [c.structured_input_signature for c in getattr(fn, "concrete_functions", ())]
    specs = tf.nest.flatten([s for s in signatures if s is not None])
    return any(isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string for spec in specs)


@keras.saving.register_keras_serializable(package="tfkosent")
class FineTunableTFSMLayer(keras.layers.TFSMLayer):
    """A `keras.layers.TFSMLayer` whose weights `model.fit` can train with Adam or AdamW.

    Arguments and config are TFSMLayer's (filepath, call_endpoint, call_training_endpoint,
    trainable, ...); outputs are what the endpoint returns. An endpoint with string inputs
    (the `preprocess/` module) sets `supports_jit = False` (the module docstring says why).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        fns = [self.call_endpoint_fn] + ([self.call_training_endpoint_fn]
                                         if self.call_training_endpoint else [])
        if any(_takes_strings(fn) for fn in fns):
            self.supports_jit = False

    def _add_existing_weight(self, weight):
        # TFSMLayer's own method with a name free of ":" (the module docstring says why).
        variable = keras.Variable(
            initializer=weight,
            trainable=weight.trainable,
            dtype=weight.dtype,
            shape=weight.shape,
            name=weight.name.replace("/", "_").replace(":", "_"),
        )
        self._track_variable(variable)
