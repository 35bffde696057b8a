"""`BertPackInputs`: ragged token ids of 1 or 2 segments -> fixed-length encoder inputs.

Patterns:
  "bert":    [CLS] a [SEP]            [CLS] a [SEP] b [SEP]         type ids 0.../1...
  "roberta": <s> a </s>               <s> a </s></s> b </s>         type ids all 0

Truncation is round-robin over the segments' *content* (what tensorflow_text's
RoundRobinTrimmer does, `round_robin_trim`) with the special tokens' budget reserved first,
so the closing separator is always kept however long the input is.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from tfkosent.config import PACKING_PATTERNS


def num_special_tokens(num_segments: int, packing: str) -> int:
    """Special tokens added around `num_segments` segments."""
    return num_segments + 1 if packing == "bert" else 2 * num_segments


# Texts whose first characters differ: the tokens all their rows start with are the prefix's.
_PREFIX_PROBES = ("가", "a", "1")


def text_prefix_length(tokenize, text_prefix: str) -> int:
    """How many tokens come before any text's own: the leading run that the token rows of
    texts with different first characters share, under `tokenize` (tf.string [n] -> int
    [n, (tokens)]); 0 without a `text_prefix`.

    Not the tokens of "" alone: e5's "query: " is 3 pieces there, but a SentencePiece model
    may also put a lone "▁" before every text (the space after the prefix), which is no text
    token either."""
    if not text_prefix:
        return 0
    rows = tokenize(tf.constant(_PREFIX_PROBES, tf.string)).to_list()
    length = 0
    while all(len(row) > length for row in rows) and len({row[length] for row in rows}) == 1:
        length += 1
    return length


def min_text_seq_length(num_segments: int, packing: str, prefix_length: int = 0) -> int:
    """The shortest seq_length that keeps a text token: the special tokens of `num_segments`
    segments, the `prefix_length` tokens a model's text prefix (e5's "query: ", 3 pieces) puts
    before every segment, and one token (round robin gives it to the first segment).

    Why: with less, every input of a prefixed model packed to the same ids (its special tokens
    and prefixes) and embedded the same, with only a "truncated" warning."""
    return num_special_tokens(num_segments, packing) + num_segments * prefix_length + 1


def _as_token_rows(segment) -> tf.RaggedTensor:
    """[batch, (words), (pieces)] or [batch, (tokens)] -> int32 [batch, (tokens)]."""
    if not isinstance(segment, tf.RaggedTensor):
        segment = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(segment))
    if segment.shape.rank is not None and segment.shape.rank > 2:
        segment = segment.merge_dims(-2, -1)
    return tf.cast(segment, tf.int32)


def _keep_first(segment: tf.RaggedTensor, keep: tf.Tensor) -> tf.RaggedTensor:
    """The first keep[i] tokens of row i of `segment` (int32 [batch, (tokens)])."""
    lengths = tf.cast(segment.row_lengths(), tf.int32)
    position = tf.ragged.range(lengths).values            # each token's place in its row
    kept = tf.boolean_mask(segment.values, position < tf.repeat(keep, lengths))
    return tf.RaggedTensor.from_row_lengths(kept, tf.cast(keep, segment.row_splits.dtype))


def round_robin_trim(segments: Sequence[tf.RaggedTensor], budget) -> List[tf.RaggedTensor]:
    """`tensorflow_text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)` for 1 or 2
    segments (int32 [batch, (tokens)]), in core TensorFlow ops.

    Round robin gives the segments one token each in turn until `budget` (a scalar >= 0) is
    spent or a segment runs out: per row, the first keeps min(a, max(ceil(B/2), B - b)) of its
    a tokens and the second the rest of B, at most its b.

    Why not the tensorflow_text op: TF Serving's release images embedded an older TensorFlow
    Text (2.12.1 as of tensorflow/serving PR #4057, 2025) that lacks the RoundRobinTrim op
    (added in 2.16), so a SavedModel that uses it does not load there ("Op type not
    registered 'TFText>RoundRobinTrim'"). The exported modules then need only the SentencePiece / WordPiece ops it has.
    """
    budget = tf.cast(budget, tf.int32)
    lengths = [tf.cast(s.row_lengths(), tf.int32) for s in segments]
    if len(segments) == 1:
        keep = [tf.minimum(lengths[0], budget)]
    elif len(segments) == 2:
        first = tf.minimum(lengths[0], tf.maximum((budget + 1) // 2, budget - lengths[1]))
        keep = [first, tf.minimum(lengths[1], budget - first)]
    else:
        raise ValueError(f"expected 1 or 2 segments, got {len(segments)}")
    return [_keep_first(s, k) for s, k in zip(segments, keep)]


def _same_rows(segments: Sequence[tf.RaggedTensor]) -> Sequence[tf.RaggedTensor]:
    """`segments` (ragged int32 [batch, (tokens)]) if they have the same number of rows, else an
    error that says so (two segments pair row by row: sentence i of the first with sentence i of
    the second). Without it a mismatch surfaced as "Incompatible shapes: [11] vs. [22]"."""
    if len(segments) < 2:
        return segments
    rows = [s.nrows(out_type=tf.int32) for s in segments]
    known = [tf.get_static_value(r) for r in rows]
    message = "bert_pack_inputs: the segments have different numbers of rows; they pair row by row"
    if all(k is not None for k in known):
        if len(set(int(k) for k in known)) > 1:
            raise ValueError(f"{message}: {', '.join(str(int(k)) for k in known)}")
        return segments
    with tf.control_dependencies([tf.debugging.assert_equal(rows[0], rows[1], message=message)]):
        return [tf.identity(s) for s in segments]


def longest_packed_length(segments: Sequence[tf.RaggedTensor], packing: str,
                          max_seq_length) -> tf.Tensor:
    """Shortest seq_length that loses nothing for this batch, capped at max_seq_length.

    segments: 1 or 2 ragged int ids [batch, (tokens)] (special tokens not yet added).
    Returns an int32 scalar tensor; at least the number of special tokens, so empty
    inputs and empty batches still pack.
    """
    segments = _same_rows([_as_token_rows(s) for s in segments])
    total = tf.add_n([s.row_lengths() for s in segments])
    longest = tf.reduce_max(tf.concat([tf.cast(total, tf.int32), [0]], axis=0))
    needed = longest + num_special_tokens(len(segments), packing)
    return tf.minimum(needed, tf.cast(max_seq_length, tf.int32))


def pack_segments(segments: Sequence[tf.RaggedTensor], seq_length, start_of_sequence_id: int,
                  end_of_segment_id: int, padding_id: int, packing: str = "bert"
                  ) -> Dict[str, tf.Tensor]:
    """Packs 1 or 2 ragged segments into the encoder's three int32 [batch, seq_length] inputs.

    segments: 1 or 2 ragged int ids [batch, (tokens)] (or [batch, (words), (pieces)]) with
    the same number of rows; `seq_length` may be a Python int or an int32 scalar tensor (the
    exported `bert_pack_inputs` takes it as a tensor so one trace serves every length).
    Returns {"input_word_ids", "input_mask", "input_type_ids"}. ValueError for an unknown
    `packing`, another number of segments, or segments whose row counts differ (known at
    trace time; else InvalidArgumentError at run time, as for a `seq_length` shorter than the
    special tokens).
    """
    if packing not in PACKING_PATTERNS:
        raise ValueError(f"packing must be one of {PACKING_PATTERNS}, got {packing!r}")
    if not 1 <= len(segments) <= 2:
        raise ValueError(f"expected 1 or 2 segments, got {len(segments)}")
    segments = _same_rows([_as_token_rows(s) for s in segments])
    seq_length = tf.cast(seq_length, tf.int32)
    budget = seq_length - num_special_tokens(len(segments), packing)
    tf.debugging.assert_non_negative(budget, message="seq_length is too short for the special tokens")
    trimmed = round_robin_trim(segments, budget)
    if packing == "roberta":
        # RoBERTa opens every later segment with an extra </s>: <s> a </s></s> b </s>.
        trimmed = [trimmed[0]] + [
            tf.concat([tf.fill([s.nrows(), 1], tf.constant(end_of_segment_id, tf.int32)), s], axis=1)
            for s in trimmed[1:]]
    word_ids, type_ids = tf_text.combine_segments(
        trimmed, start_of_sequence_id=start_of_sequence_id, end_of_segment_id=end_of_segment_id)
    input_word_ids, input_mask = tf_text.pad_model_inputs(
        word_ids, max_seq_length=seq_length, pad_value=padding_id)
    if packing == "roberta":
        input_type_ids = tf.zeros_like(input_word_ids)
    else:
        input_type_ids, _ = tf_text.pad_model_inputs(type_ids, max_seq_length=seq_length, pad_value=0)
    return {"input_word_ids": tf.cast(input_word_ids, tf.int32),
            "input_mask": tf.cast(input_mask, tf.int32),
            "input_type_ids": tf.cast(input_type_ids, tf.int32)}


@keras.saving.register_keras_serializable(package="tfkosent")
class BertPackInputs(keras.layers.Layer):
    """Keras layer around `pack_segments`.

    Call with a list of 1 or 2 ragged int32 tensors [batch, (tokens)] (or
    [batch, (words), (pieces)]); returns a dict of int32 [batch, seq_length]
    `input_word_ids`, `input_mask`, `input_type_ids`. `seq_length` given at
    call time overrides the configured one; `seq_length="longest"` packs to the
    longest row of the batch, capped at the configured `seq_length`.
    """

    def __init__(self, seq_length: int, start_of_sequence_id: int, end_of_segment_id: int,
                 padding_id: int, packing: str = "bert", special_tokens_dict: Optional[dict] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if special_tokens_dict is not None:  # tf-models style construction
            start_of_sequence_id = special_tokens_dict["start_of_sequence_id"]
            end_of_segment_id = special_tokens_dict["end_of_segment_id"]
            padding_id = special_tokens_dict["padding_id"]
        if packing not in PACKING_PATTERNS:
            raise ValueError(f"packing must be one of {PACKING_PATTERNS}, got {packing!r}")
        if seq_length < num_special_tokens(2, packing):
            raise ValueError(f"seq_length={seq_length} leaves no room for two segments' special tokens")
        self.seq_length = int(seq_length)
        self.start_of_sequence_id = int(start_of_sequence_id)
        self.end_of_segment_id = int(end_of_segment_id)
        self.padding_id = int(padding_id)
        self.packing = packing

    def call(self, inputs: List[tf.RaggedTensor], seq_length=None):
        """See the class docstring; one tensor alone is one segment. ValueError for a string
        `seq_length` other than "longest"."""
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if seq_length is None:
            seq_length = self.seq_length
        elif isinstance(seq_length, str):
            if seq_length != "longest":
                raise ValueError(f"seq_length must be an int or 'longest', got {seq_length!r}")
            seq_length = longest_packed_length(inputs, self.packing, self.seq_length)
        return pack_segments(inputs, seq_length, self.start_of_sequence_id, self.end_of_segment_id,
                             self.padding_id, self.packing)

    def get_config(self):
        config = super().get_config()
        config.update(seq_length=self.seq_length, start_of_sequence_id=self.start_of_sequence_id,
                      end_of_segment_id=self.end_of_segment_id, padding_id=self.padding_id,
                      packing=self.packing)
        return config
