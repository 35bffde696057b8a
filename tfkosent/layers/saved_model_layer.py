"""`FineTunableTFSMLayer`: Keras 3's TFSMLayer, with weight names its optimizers accept.

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
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tfkosent")
class FineTunableTFSMLayer(keras.layers.TFSMLayer):
    """A `keras.layers.TFSMLayer` whose weights `model.fit` can train with Adam or AdamW.

    Arguments and config are TFSMLayer's (filepath, call_endpoint, call_training_endpoint,
    trainable, ...); outputs are what the endpoint returns.
    """

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
