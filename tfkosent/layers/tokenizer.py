"""Tokenizer layers: strings in, ragged token ids out.

`SentencepieceTokenizer` wraps `tensorflow_text.SentencepieceTokenizer` on a
serialized SentencePiece ModelProto. The proto is held as bytes, so a
SavedModel that tracks this layer carries the vocabulary inside its graph: no
external file is needed at load time.

`WordpieceTokenizer` wraps `tensorflow_text.FastWordpieceTokenizer` (with
`tensorflow_text.BasicTokenizer`-style splitting) for BERT checkpoints with a
`vocab.txt`.

Both share input hygiene (`clean_text`): invalid UTF-8 is replaced by U+FFFD
instead of failing the whole batch, then optional NFKC and case folding.
"""

from __future__ import annotations

import base64
from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf
import tensorflow_text as tf_text


def clean_text(strings: tf.Tensor, lower_case: bool = False, normalize_nfkc: bool = False,
               text_prefix: str = "") -> tf.Tensor:
    """Makes a string batch safe to tokenize.

    Args:
      strings: tf.string [batch].
    Returns:
      tf.string [batch]: valid UTF-8 (bad bytes -> U+FFFD), optionally NFKC
      normalized and case folded, with `text_prefix` prepended.
    """
    # Serving must not fail on a client's bad bytes: the SentencePiece op would
    # reject the whole batch, so repair them here.
    strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="replace",
                                           replacement_char=0xFFFD)
    if normalize_nfkc:
        strings = tf_text.normalize_utf8(strings, "NFKC")
    if lower_case:
        strings = tf_text.case_fold_utf8(strings)
    if text_prefix:
        strings = tf.strings.join([text_prefix, strings])
    return strings


class _TokenizerBase(keras.layers.Layer):
    """Shared special-token bookkeeping of the tokenizer layers."""

    def __init__(self, cls_token, sep_token, pad_token, unk_token, mask_token,
                 lower_case, normalize_nfkc, text_prefix, **kwargs):
        super().__init__(**kwargs)
        self.cls_token, self.sep_token, self.pad_token = cls_token, sep_token, pad_token
        self.unk_token, self.mask_token = unk_token, mask_token
        self.lower_case = lower_case
        self.normalize_nfkc = normalize_nfkc
        self.text_prefix = text_prefix

    def _token_id(self, token: Optional[str]) -> Optional[int]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def get_special_tokens_dict(self) -> Dict[str, int]:
        """Ids in the keys tf-models' BertPackInputs and TF Hub preprocessors use.

        Raises ValueError naming a configured special token that is not in the
        vocabulary (an unknown token would silently map to `unk`).
        """
        out = {"vocab_size": self.vocab_size}
        for key, token in (("start_of_sequence_id", self.cls_token),
                           ("end_of_segment_id", self.sep_token),
                           ("padding_id", self.pad_token),
                           ("mask_id", self.mask_token),
                           ("unk_id", self.unk_token)):
            if token is None:
                continue
            token_id = self._token_id(token)
            if token_id is None:
                raise ValueError(f"special token {token!r} ({key}) is not in the vocabulary")
            out[key] = token_id
        return out

    def _clean(self, strings):
        strings = tf.convert_to_tensor(strings, tf.string)
        return clean_text(strings, self.lower_case, self.normalize_nfkc, self.text_prefix)

    def get_config(self):
        config = super().get_config()
        config.update(cls_token=self.cls_token, sep_token=self.sep_token, pad_token=self.pad_token,
                      unk_token=self.unk_token, mask_token=self.mask_token,
                      lower_case=self.lower_case, normalize_nfkc=self.normalize_nfkc,
                      text_prefix=self.text_prefix)
        return config


@keras.saving.register_keras_serializable(package="tfkosent")
class SentencepieceTokenizer(_TokenizerBase):
    """Strings -> SentencePiece ids.

    Call: tf.string [batch] -> tf.RaggedTensor int32 [batch, (tokens)], without
    special tokens (packing adds them).
    """

    def __init__(self, model_serialized_proto: bytes | str, cls_token: str = "[CLS]",
                 sep_token: str = "[SEP]", pad_token: str = "[PAD]", unk_token: str = "[UNK]",
                 mask_token: Optional[str] = "[MASK]", lower_case: bool = False,
                 normalize_nfkc: bool = False, text_prefix: str = "", **kwargs):
        super().__init__(cls_token, sep_token, pad_token, unk_token, mask_token,
                         lower_case, normalize_nfkc, text_prefix, **kwargs)
        if isinstance(model_serialized_proto, str):  # from get_config (JSON-safe base64)
            model_serialized_proto = base64.b64decode(model_serialized_proto)
        if not model_serialized_proto:
            raise ValueError("model_serialized_proto is empty")
        self.model_serialized_proto = bytes(model_serialized_proto)
        self._sp = tf_text.SentencepieceTokenizer(model=self.model_serialized_proto,
                                                  out_type=tf.int32)
        self._vocab_size = int(self._sp.vocab_size())
        self._unk_id = int(self._sp.string_to_id(unk_token)) if unk_token else 0

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def _token_id(self, token):
        token_id = int(self._sp.string_to_id(token))
        # string_to_id answers unk for unknown pieces; only the unk token itself may map there.
        if token_id == self._unk_id and token != self.unk_token:
            return None
        return token_id

    def call(self, strings):
        return self._sp.tokenize(self._clean(strings))

    def get_config(self):
        config = super().get_config()
        config["model_serialized_proto"] = base64.b64encode(self.model_serialized_proto).decode("ascii")
        return config


@keras.saving.register_keras_serializable(package="tfkosent")
class WordpieceTokenizer(_TokenizerBase):
    """Strings -> WordPiece ids (BERT `vocab.txt` vocabularies).

    Splits on whitespace and punctuation (as BERT's BasicTokenizer, including
    CJK characters as single words), then WordPiece with `##` suffixes.
    Call: tf.string [batch] -> tf.RaggedTensor int32 [batch, (tokens)].
    """

    def __init__(self, vocab: Sequence[str], cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 pad_token: str = "[PAD]", unk_token: str = "[UNK]",
                 mask_token: Optional[str] = "[MASK]", lower_case: bool = False,
                 normalize_nfkc: bool = False, text_prefix: str = "",
                 suffix_indicator: str = "##", max_bytes_per_word: int = 100, **kwargs):
        super().__init__(cls_token, sep_token, pad_token, unk_token, mask_token,
                         lower_case, normalize_nfkc, text_prefix, **kwargs)
        self.vocab = list(vocab)
        if not self.vocab:
            raise ValueError("vocab is empty")
        self.suffix_indicator = suffix_indicator
        self.max_bytes_per_word = max_bytes_per_word
        self._index = {tok: i for i, tok in enumerate(self.vocab)}
        if unk_token not in self._index:
            raise ValueError(f"unk_token {unk_token!r} is not in the vocabulary")
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocab, suffix_indicator=suffix_indicator,
            max_bytes_per_word=max_bytes_per_word, token_out_type=tf.int32,
            unknown_token=unk_token, no_pretokenization=True, support_detokenization=False)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _token_id(self, token):
        return self._index.get(token)

    def call(self, strings):
        strings = self._clean(strings)
        # BERT's BasicTokenizer: split on whitespace, keep punctuation and CJK
        # characters as words of their own.
        words = tf_text.regex_split(strings, _BERT_SPLIT_PATTERN, _BERT_KEEP_PATTERN)
        pieces = self._wordpiece.tokenize(words)  # [batch, (words), (pieces)]
        return pieces.merge_dims(-2, -1)

    def get_config(self):
        config = super().get_config()
        config.update(vocab=self.vocab, suffix_indicator=self.suffix_indicator,
                      max_bytes_per_word=self.max_bytes_per_word)
        return config


# Whitespace separates words and is dropped; punctuation, symbols and CJK
# ideographs are words of their own (kept). Mirrors BERT's BasicTokenizer.
_PUNCT = r"!-/:-@\[-`{-~\p{P}\p{S}"
_CJK = r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}" \
       r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}"
_BERT_SPLIT_PATTERN = r"\s+|[" + _PUNCT + r"]|[" + _CJK + r"]"
_BERT_KEEP_PATTERN = r"[" + _PUNCT + r"]|[" + _CJK + r"]"
