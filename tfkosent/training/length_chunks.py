"""Uniform batches at the cost of length-bucketed ones: encode a batch in length-sorted chunks.

A batch drawn uniformly at random from a corpus with a long length tail is padded to its longest
sentence: on the 332,815 distillation sentences (mean 21 tokens, 99th percentile 74, capped at
128) a batch of 128 pads to 91 tokens on average, against 22 when chunks of 50 batches are sorted
by length first (`bucket_batches: 50`).  On a CPU that is 3-4x the work per step.  But length
bucketing also changes what a batch holds (sentences of one length, often of one source), and the
in-batch losses (`distill_cosine`'s similarity matrix, CoSENT's pair ranking) see that:
TRAINING.md measured uniform batches +0.3-0.5 KorSTS dev for distillation.

`pooled_in_length_chunks` keeps the batch and changes only how it is computed: the sentences are
sorted by length, split into `num_chunks` equal chunks, each chunk cut to its own longest
sentence and encoded, and the pooled outputs put back in batch order.  Padding is masked
everywhere in the encoder (attention, mean pooling), so every sentence's embedding is the one the
whole-batch call gives (to float32 rounding), and so are the losses and their gradients; with
8 chunks the same batches pad to 28 tokens on average.
"""

from typing import Dict

import tensorflow as tf


def pooled_in_length_chunks(encoder, inputs: Dict[str, tf.Tensor], num_chunks: int,
                            training: bool) -> tf.Tensor:
    """`encoder(inputs)["pooled_output"]`, computed in `num_chunks` length-sorted chunks.

    inputs: int32 [n, seq] `input_word_ids`, `input_mask` (1 for tokens, then 0 for padding at the
    end, as tfkosent's packers write it), `input_type_ids`.  Returns the pooled outputs [n, hidden]
    in the order of `inputs` (the encoder's dtype).  A chunk is cut to the longest sentence in it
    (at least 1 token); when n < num_chunks the empty chunks are skipped.
    """
    num_chunks = int(num_chunks)
    if num_chunks < 1:
        raise ValueError(f"num_chunks must be positive, got {num_chunks}")
    if num_chunks == 1:
        return encoder(inputs, training=training)["pooled_output"]
    lengths = tf.reduce_sum(tf.cast(inputs["input_mask"] > 0, tf.int32), axis=1)     # [n]
    n = tf.shape(lengths)[0]
    order = tf.argsort(lengths, stable=True)
    ordered = {k: tf.gather(v, order) for k, v in inputs.items()}
    ordered_lengths = tf.gather(lengths, order)
    pooled = []
    for i in range(num_chunks):
        start, stop = (n * i) // num_chunks, (n * (i + 1)) // num_chunks
        width = tf.reduce_max(tf.concat([[1], ordered_lengths[start:stop]], axis=0))
        chunk = {k: v[start:stop, :width] for k, v in ordered.items()}
        # An empty chunk (n < num_chunks) still runs the encoder on a [0, 1] batch, which every
        # op here accepts; skipping it with tf.cond would put the encoder in two branches.
        pooled.append(encoder(chunk, training=training)["pooled_output"])
    return tf.gather(tf.concat(pooled, axis=0), tf.math.invert_permutation(order))
