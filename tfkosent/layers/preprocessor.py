"""`Preprocessor`: the tokenizer and the packer of one model, as one Keras layer.

Mirrors TF Hub's BERT preprocessing contract:
  call(strings)                         -> dict of int32 [batch, seq_length]
  tokenize(strings)                     -> RaggedTensor int32 [batch, (tokens)]
  bert_pack_inputs(segments, seq_length)-> dict of int32 [batch, seq_length]
"""

from __future__ import annotations

from typing import List, Optional

import keras
import tensorflow as tf

from tfkosent.config import PreprocessConfig
from tfkosent.layers.packing import BertPackInputs, text_prefix_length
from tfkosent.layers.tokenizer import SentencepieceTokenizer, WordpieceTokenizer


def checked_sentences(sentences) -> tf.Tensor:
    """`sentences` as a vector (tf.string [batch]; a [batch, 1] input is squeezed) of valid
    UTF-8, for every path by
    which strings enter a `Preprocessor` (its `call` and `tokenize`, and so the exported
    `preprocess/` and `sentence_encoder/1` modules, which call them).

    Why: a loaded signature does not enforce its input's shape, so a scalar or a
    [1, n] matrix from a TF Serving client was silently read as a batch (the Keras layer merged
    a [n, m] matrix into n rows of m sentences each); and the SentencePiece op tokenizes any
    bytes without complaint (the tokenizer layers' `clean_text` replaces invalid bytes with
    U+FFFD, which the SentencePiece model then drops), so Latin-1, CP949 or binary data got an
    embedding of garbage. Both fail the call with InvalidArgumentError ("sentences: expected a
    vector of strings ...", or at run time "Shape of tensor sentences [] is not compatible with
    expected shape [?]"; "sentences: not valid UTF-8 at rows [i ...]"): one bad request, never
    a crashed server. Transcoding with replacement changes exactly the invalid elements.

    An Assert, so this belongs where strings enter, on the host: string and SentencePiece ops
    never run under XLA (the fine-tuning paths' int32 inputs are kept Assert-free: export.py).
    """
    sentences = tf.convert_to_tensor(sentences, tf.string)
    if sentences.shape.rank == 2 and sentences.shape[1] == 1:
        # [batch, 1], e.g. keras.Input(shape=(1,), dtype="string"): one sentence a row, unambiguous.
        sentences = tf.squeeze(sentences, axis=1)
    rank = sentences.shape.rank
    if rank is not None and rank != 1:
        raise tf.errors.InvalidArgumentError(
            None, None, f"sentences: expected a vector of strings (tf.string [batch], or "
                        f"[batch, 1]), got shape {sentences.shape.as_list()}")
    # A runtime check: the traced shape may be [None] or unknown, which passes at trace time.
    sentences = tf.ensure_shape(sentences, [None], name="sentences_must_be_a_vector")
    repaired = tf.strings.unicode_transcode(sentences, "UTF-8", "UTF-8", errors="replace")
    bad_rows = tf.where(tf.not_equal(repaired, sentences))[:, 0]
    # One formatted string, so that eager and graph calls say it alike ("... at rows [1 3]").
    check = tf.debugging.Assert(tf.equal(tf.size(bad_rows), 0), [tf.strings.format(
        "sentences: not valid UTF-8 at rows {}", bad_rows, summarize=20)])
    with tf.control_dependencies([check]):
        return tf.identity(sentences)


def build_tokenizer(config: PreprocessConfig, sentencepiece_proto: Optional[bytes] = None,
                    wordpiece_vocab: Optional[List[str]] = None) -> keras.layers.Layer:
    """The tokenizer layer a PreprocessConfig describes."""
    common = dict(cls_token=config.cls_token, sep_token=config.sep_token,
                  pad_token=config.pad_token, unk_token=config.unk_token,
                  mask_token=config.mask_token, lower_case=config.lower_case,
                  normalize_nfkc=config.normalize_nfkc, text_prefix=config.text_prefix)
    if config.tokenizer_type == "sentencepiece":
        if sentencepiece_proto is None:
            raise ValueError("preprocess.tokenizer_type is sentencepiece but no SentencePiece model given")
        return SentencepieceTokenizer(sentencepiece_proto, name="tokenizer", **common)
    if wordpiece_vocab is None:
        raise ValueError("preprocess.tokenizer_type is wordpiece but no vocabulary given")
    return WordpieceTokenizer(wordpiece_vocab, name="tokenizer", strip_accents=config.strip_accents,
                              **common)


@keras.saving.register_keras_serializable(package="tfkosent")
class Preprocessor(keras.layers.Layer):
    """Strings -> `input_word_ids`, `input_mask`, `input_type_ids` (int32 [batch, seq_length]).

    tokenizer: a `SentencepieceTokenizer` or `WordpieceTokenizer` (or its config dict);
    seq_length: the packed length when a call gives none; packing: "bert" or "roberta".
    """

    def __init__(self, tokenizer: keras.layers.Layer, seq_length: int, packing: str = "bert",
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(tokenizer, dict):  # from get_config
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        self.tokenizer = tokenizer
        special = tokenizer.get_special_tokens_dict()
        self.packer = BertPackInputs(seq_length, special["start_of_sequence_id"],
                                     special["end_of_segment_id"], special["padding_id"],
                                     packing=packing, name="packer")
        self.seq_length = seq_length
        self.packing = packing

    @classmethod
    def from_config_and_vocab(cls, config: PreprocessConfig, sentencepiece_proto=None,
                              wordpiece_vocab=None, seq_length: Optional[int] = None,
                              **kwargs) -> "Preprocessor":
        """The Preprocessor a PreprocessConfig describes, with its SentencePiece model (bytes)
        or WordPiece vocabulary (list of str); `seq_length` defaults to the config's."""
        tokenizer = build_tokenizer(config, sentencepiece_proto, wordpiece_vocab)
        return cls(tokenizer, seq_length or config.seq_length, config.packing, **kwargs)

    def build(self, input_shape=None):
        # No weights (the SentencePiece model is a constant); defined so that a reloaded
        # .keras model does not warn that `build()` left "unbuilt state" behind.
        self.built = True

    def get_special_tokens_dict(self):
        """The tokenizer's special-token ids ({"vocab_size", "start_of_sequence_id", ...})."""
        return self.tokenizer.get_special_tokens_dict()

    def tokenize(self, strings) -> tf.RaggedTensor:
        """tf.string [batch] (valid UTF-8: `checked_sentences`) -> int32 [batch, (tokens)]."""
        return self.tokenizer(checked_sentences(strings))

    def prefix_length(self) -> int:
        """How many tokens the tokenizer's `text_prefix` (e5's "query: ") puts before every
        text (`packing.text_prefix_length`; 0 without a prefix)."""
        return text_prefix_length(self.tokenizer, self.tokenizer.text_prefix)

    def bert_pack_inputs(self, segments, seq_length=None):
        """1 or 2 segments (ragged int32 [batch, (tokens)], e.g. from `tokenize`) -> dict of int32
        [batch, seq_length]; `seq_length`: None (this layer's), an int or int32 scalar tensor, or
        "longest" (see `BertPackInputs`)."""
        return self.packer(list(segments), seq_length=seq_length)

    def call(self, strings, seq_length=None):
        """tf.string [batch] (or [batch, 1]; valid UTF-8) -> {"input_word_ids", "input_mask",
        "input_type_ids"}, int32 [batch, seq_length] each; `seq_length` as in
        `bert_pack_inputs`. A bad shape or invalid UTF-8 raises InvalidArgumentError
        (`checked_sentences`)."""
        return self.packer([self.tokenize(strings)], seq_length=seq_length)

    def get_config(self):
        config = super().get_config()
        config.update(tokenizer=keras.saving.serialize_keras_object(self.tokenizer),
                      seq_length=self.seq_length, packing=self.packing)
        return config
