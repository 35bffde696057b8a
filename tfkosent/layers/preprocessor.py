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
from tfkosent.layers.packing import BertPackInputs
from tfkosent.layers.tokenizer import SentencepieceTokenizer, WordpieceTokenizer


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
    """Strings -> `input_word_ids`, `input_mask`, `input_type_ids` (int32 [batch, seq_length])."""

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
        tokenizer = build_tokenizer(config, sentencepiece_proto, wordpiece_vocab)
        return cls(tokenizer, seq_length or config.seq_length, config.packing, **kwargs)

    def build(self, input_shape=None):
        # No weights (the SentencePiece model is a constant); defined so that a reloaded
        # .keras model does not warn that `build()` left "unbuilt state" behind.
        self.built = True

    def get_special_tokens_dict(self):
        return self.tokenizer.get_special_tokens_dict()

    def tokenize(self, strings) -> tf.RaggedTensor:
        return self.tokenizer(strings)

    def bert_pack_inputs(self, segments, seq_length=None):
        return self.packer(list(segments), seq_length=seq_length)

    def call(self, strings, seq_length=None):
        return self.packer([self.tokenizer(strings)], seq_length=seq_length)

    def get_config(self):
        config = super().get_config()
        config.update(tokenizer=keras.saving.serialize_keras_object(self.tokenizer),
                      seq_length=self.seq_length, packing=self.packing)
        return config
