"""Tokenizer layers: strings in, ragged token ids out.

`SentencepieceTokenizer` wraps `tensorflow_text.SentencepieceTokenizer` on a
serialized SentencePiece ModelProto. The proto is held as bytes, so a
SavedModel that tracks this layer carries the vocabulary inside its graph: no
external file is needed at load time.

`WordpieceTokenizer` wraps `tensorflow_text.FastWordpieceTokenizer` (with
Hugging Face `BertTokenizer`-identical normalization and splitting) for BERT
checkpoints with a `vocab.txt`.

Both share input hygiene (`clean_text`): invalid UTF-8 is replaced by U+FFFD
instead of failing the whole batch, then decomposed Hangul composed (NFC; or NFKC of
everything) and optional case folding.
"""

from __future__ import annotations

import base64
from typing import Dict, Optional, Sequence

import keras
import tensorflow as tf
import tensorflow_text as tf_text


# The conjoining Hangul jamo (Hangul Jamo, Jamo Extended-A and -B): what decomposed (NFD)
# syllables are made of. The pattern (RE2 syntax; (?s) lets "." match newlines) matches a string
# holding one; tflite.py checks the same ranges in Python.
CONJOINING_JAMO_RANGES = ((0x1100, 0x11FF), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))
CONJOINING_JAMO_PATTERN = "(?s).*[" + "".join(rf"\x{{{low:04X}}}-\x{{{high:04X}}}"
                                              for low, high in CONJOINING_JAMO_RANGES) + "].*"


def clean_text(strings: tf.Tensor, lower_case: bool = False, normalize_nfkc: bool = False,
               text_prefix: str = "") -> tf.Tensor:
    """Makes a string batch safe to tokenize.

    Args:
      strings: tf.string [batch].
    Returns:
      tf.string [batch]: valid UTF-8 (bad bytes -> U+FFFD), decomposed Hangul composed
      (NFC; all text NFKC with `normalize_nfkc`), optionally case folded, with
      `text_prefix` prepended.
    """
    # Serving must not fail on a client's bad bytes: the SentencePiece op would
    # reject the whole batch, so repair them here.
    strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="replace",
                                           replacement_char=0xFFFD)
    if normalize_nfkc:
        strings = tf_text.normalize_utf8(strings, "NFKC")
    else:
        # Decomposed Hangul (NFD, e.g. text copied on macOS) is a sequence of conjoining
        # jamo, which vocabularies made from composed text lack (the SentencePiece model's
        # own normalizer does not recompose them): "한 남자가 음식을 먹는다." in NFD became
        # single jamo and unknown pieces, at cosine 0.48 to itself in NFC. Only strings with
        # conjoining jamo are NFC-normalized: other text stays byte for byte what Hugging
        # Face's tokenizers see, so converted checkpoints keep their token parity
        # (tests/test_port_hf.py). NormalizeUTF8 is a TF.Text op (2.12 has it).
        has_jamo = tf.strings.regex_full_match(strings, CONJOINING_JAMO_PATTERN)
        strings = tf.where(has_jamo, tf_text.normalize_utf8(strings, "NFC"), strings)
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

        {"vocab_size", "start_of_sequence_id", "end_of_segment_id", "padding_id", "mask_id",
        "unk_id"}: Python ints; a special token configured as None has no key.

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
    special tokens (packing adds them); the `text_prefix` pieces, if any, come first.
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
        self._sp = None
        self.recreate_resource()
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

    def recreate_resource(self) -> None:
        """(Re)creates the SentencePiece op's model resource.

        tensorflow_text's SentencePiece model is a kernel-owned resource when
        created eagerly (its TODO b/318839908): `tf.random.set_seed` clears the
        eager kernel cache and deletes it, and the next call fails with
        NotFoundError. Eager calls recover by re-creating it; code that traced
        this layer into a tf.function must re-trace after calling this.
        """
        self._sp = tf_text.SentencepieceTokenizer(model=self.model_serialized_proto,
                                                  out_type=tf.int32)

    def call(self, strings):
        strings = self._clean(strings)
        if not tf.executing_eagerly():
            return self._sp.tokenize(strings)
        try:
            return self._sp.tokenize(strings)
        except tf.errors.NotFoundError:
            self.recreate_resource()
            return self._sp.tokenize(strings)

    def get_config(self):
        config = super().get_config()
        config["model_serialized_proto"] = base64.b64encode(self.model_serialized_proto).decode("ascii")
        return config


@keras.saving.register_keras_serializable(package="tfkosent")
class WordpieceTokenizer(_TokenizerBase):
    """Strings -> WordPiece ids (BERT `vocab.txt` vocabularies).

    Reproduces Hugging Face's `BertTokenizer` (the `tokenizers` library's
    BertNormalizer + BertPreTokenizer + WordPiece), so ids equal
    `tokenizer(text, add_special_tokens=False)["input_ids"]`:
      * control, format and private-use characters, NUL and U+FFFD are
        deleted; tab, newline, carriage return and Unicode spaces separate words;
      * `lower_case`: lower-cased character by character (BERT's
        `do_lower_case`); `strip_accents`: NFD, then non-spacing marks removed.
        Hugging Face strips accents whenever it lower-cases unless its
        `strip_accents` is False, so an uncased BERT is `lower_case=True,
        strip_accents=True`. NFD also decomposes Hangul syllables into
        conjoining jamo, exactly as BERT does (KLUE models use neither);
      * ASCII and Unicode punctuation and CJK ideographs are words of their
        own (symbols such as emoji are not punctuation, as in BERT);
      * greedy longest-match WordPiece with `suffix_indicator`; a word longer
        than `max_chars_per_word` characters, or with no tokenization, is one
        `unk_token`.
    Known difference: a special-token string inside the text ("[MASK]") is
    split like any text, where Hugging Face emits the special token.
    Call: tf.string [batch] -> tf.RaggedTensor int32 [batch, (tokens)], without special
    tokens; the `text_prefix` pieces, if any, come first.
    """

    def __init__(self, vocab: Sequence[str], cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 pad_token: str = "[PAD]", unk_token: str = "[UNK]",
                 mask_token: Optional[str] = "[MASK]", lower_case: bool = False,
                 normalize_nfkc: bool = False, text_prefix: str = "",
                 suffix_indicator: str = "##", max_bytes_per_word: Optional[int] = None,
                 max_chars_per_word: int = 100, strip_accents: bool = False, **kwargs):
        super().__init__(cls_token, sep_token, pad_token, unk_token, mask_token,
                         lower_case, normalize_nfkc, text_prefix, **kwargs)
        self.vocab = list(vocab)
        if not self.vocab:
            raise ValueError("vocab is empty")
        self.suffix_indicator = suffix_indicator
        self.strip_accents = bool(strip_accents)
        self.max_chars_per_word = int(max_chars_per_word)
        # Optional extra limit in UTF-8 bytes; by default only HF's character limit applies.
        self.max_bytes_per_word = max_bytes_per_word
        self._index = {tok: i for i, tok in enumerate(self.vocab)}  # a repeated token: last id, as HF
        if unk_token not in self._index:
            raise ValueError(f"unk_token {unk_token!r} is not in the vocabulary")
        # FastWordpieceTokenizer rejects repeated tokens: earlier copies become
        # placeholders no cleaned text can contain (NUL is deleted).
        unique = [tok if self._index[tok] == i else f"\x00dup{i}\x00" for i, tok in enumerate(self.vocab)]
        byte_limit = 4 * self.max_chars_per_word
        if max_bytes_per_word is not None:
            byte_limit = min(byte_limit, int(max_bytes_per_word))
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=unique, suffix_indicator=suffix_indicator, max_bytes_per_word=byte_limit,
            token_out_type=tf.int32, unknown_token=unk_token, no_pretokenization=True,
            support_detokenization=False)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _token_id(self, token):
        return self._index.get(token)

    def _clean(self, strings):
        strings = tf.convert_to_tensor(strings, tf.string)
        # Lower-casing is BERT's (after accent stripping), not clean_text's case folding.
        return bert_normalize(clean_text(strings, False, self.normalize_nfkc, self.text_prefix),
                              self.lower_case, self.strip_accents)

    def split_words(self, strings) -> tf.RaggedTensor:
        """tf.string [batch] -> tf.string [batch, (words)]: BERT's normalizer + pre-tokenizer."""
        return tf_text.regex_split(self._clean(strings), _BERT_SPLIT_PATTERN, _BERT_KEEP_PATTERN)

    def call(self, strings):
        words = self.split_words(strings)
        # A word over the character limit is one unk (HF's max_input_chars_per_word);
        # the unk token is in the vocabulary, so it tokenizes to exactly that id.
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > self.max_chars_per_word
        words = words.with_flat_values(tf.where(too_long, self.unk_token, words.flat_values))
        pieces = self._wordpiece.tokenize(words)  # [batch, (words), (pieces)]
        return pieces.merge_dims(-2, -1)

    def get_config(self):
        config = super().get_config()
        config.update(vocab=self.vocab, suffix_indicator=self.suffix_indicator,
                      max_bytes_per_word=self.max_bytes_per_word,
                      max_chars_per_word=self.max_chars_per_word,
                      strip_accents=self.strip_accents)
        return config


def bert_normalize(strings: tf.Tensor, lower_case: bool, strip_accents: bool = False) -> tf.Tensor:
    """BERT's normalizer (HF `BertNormalizer`) on tf.string [batch].

    Deletes control/format/private-use characters, NUL and U+FFFD; with
    `strip_accents`, applies NFD and removes non-spacing marks; with
    `lower_case`, lower-cases character by character (so a final capital sigma
    becomes "σ", as in HF). Whitespace and CJK splitting happen in
    `_BERT_SPLIT_PATTERN`.
    """
    strings = tf.strings.regex_replace(strings, _BERT_DELETE, "")
    if strip_accents:
        strings = tf_text.normalize_utf8(strings, "NFD")
        strings = tf.strings.regex_replace(strings, _BERT_MN + "+", "")
    if lower_case:
        # ICU lower-cases a word-final "Σ" to "ς"; HF maps each character on its own.
        strings = tf.strings.regex_replace(strings, "\u03a3", "\u03c3")
        strings = tf.strings.lower(strings, encoding="utf-8")
    return strings


def _class(ranges: str) -> str:
    """'21-2F 3A' (hex code points) -> RE2 character class '[\\x{21}-\\x{2F}\\x{3A}]'."""
    parts = []
    for item in ranges.split():
        lo, _, hi = item.partition("-")
        parts.append(f"\\x{{{lo}}}" + (f"-\\x{{{hi}}}" if hi else ""))
    return "[" + "".join(parts) + "]"


# The character classes of the `tokenizers` library (0.2x) that HF's BertTokenizer
# runs on, measured code point by code point (its Unicode tables are older than
# RE2's, so \p{P} or \p{C} would differ on a few dozen rare characters).
# Deleted by BertNormalizer(clean_text=True): Cc except \t\n\r, Cf, Co, U+FFFD.
_BERT_DELETE = _class(
    "0-8 B-C E-1F 7F-9F AD 600-605 61C 6DD 70F 180E 200B-200F 202A-202E 2060-2064 2066-206F "
    "E000-F8FF FEFF FFF9-FFFB FFFD 110BD 1BCA0-1BCA3 1D173-1D17A E0001 E0020-E007F F0000-FFFFD "
    "100000-10FFFD")
# Non-spacing marks BertNormalizer strips when lower-casing (after NFD).
_BERT_MN = _class(
    "300-36F 483-487 591-5BD 5BF 5C1-5C2 5C4-5C5 5C7 610-61A 64B-65F 670 6D6-6DC 6DF-6E4 6E7-6E8 "
    "6EA-6ED 711 730-74A 7A6-7B0 7EB-7F3 816-819 81B-823 825-827 829-82D 859-85B 8E3-902 93A 93C "
    "941-948 94D 951-957 962-963 981 9BC 9C1-9C4 9CD 9E2-9E3 A01-A02 A3C A41-A42 A47-A48 A4B-A4D "
    "A51 A70-A71 A75 A81-A82 ABC AC1-AC5 AC7-AC8 ACD AE2-AE3 B01 B3C B3F B41-B44 B4D B56 B62-B63 "
    "B82 BC0 BCD C00 C3E-C40 C46-C48 C4A-C4D C55-C56 C62-C63 C81 CBC CBF CC6 CCC-CCD CE2-CE3 D01 "
    "D41-D44 D4D D62-D63 DCA DD2-DD4 DD6 E31 E34-E3A E47-E4E EB1 EB4-EB9 EBB-EBC EC8-ECD F18-F19 "
    "F35 F37 F39 F71-F7E F80-F84 F86-F87 F8D-F97 F99-FBC FC6 102D-1030 1032-1037 1039-103A "
    "103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D 109D 135D-135F 1712-1714 "
    "1732-1734 1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3 17DD 180B-180D 18A9 "
    "1920-1922 1927-1928 1932 1939-193B 1A17-1A18 1A1B 1A56 1A58-1A5E 1A60 1A62 1A65-1A6C "
    "1A73-1A7C 1A7F 1AB0-1ABD 1B00-1B03 1B34 1B36-1B3A 1B3C 1B42 1B6B-1B73 1B80-1B81 1BA2-1BA5 "
    "1BA8-1BA9 1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 1C2C-1C33 1C36-1C37 1CD0-1CD2 1CD4-1CE0 "
    "1CE2-1CE8 1CED 1CF4 1CF8-1CF9 1DC0-1DF5 1DFC-1DFF 20D0-20DC 20E1 20E5-20F0 2CEF-2CF1 2D7F "
    "2DE0-2DFF 302A-302D 3099-309A A66F A674-A67D A69E-A69F A6F0-A6F1 A802 A806 A80B A825-A826 "
    "A8C4 A8E0-A8F1 A926-A92D A947-A951 A980-A982 A9B3 A9B6-A9B9 A9BC A9E5 AA29-AA2E AA31-AA32 "
    "AA35-AA36 AA43 AA4C AA7C AAB0 AAB2-AAB4 AAB7-AAB8 AABE-AABF AAC1 AAEC-AAED AAF6 ABE5 ABE8 "
    "ABED FB1E FE00-FE0F FE20-FE2F 101FD 102E0 10376-1037A 10A01-10A03 10A05-10A06 10A0C-10A0F "
    "10A38-10A3A 10A3F 10AE5-10AE6 11001 11038-11046 1107F-11081 110B3-110B6 110B9-110BA "
    "11100-11102 11127-1112B 1112D-11134 11173 11180-11181 111B6-111BE 111CA-111CC 1122F-11231 "
    "11234 11236-11237 112DF 112E3-112EA 11300-11301 1133C 11340 11366-1136C 11370-11374 "
    "114B3-114B8 114BA 114BF-114C0 114C2-114C3 115B2-115B5 115BC-115BD 115BF-115C0 115DC-115DD "
    "11633-1163A 1163D 1163F-11640 116AB 116AD 116B0-116B5 116B7 1171D-1171F 11722-11725 "
    "11727-1172B 16AF0-16AF4 16B30-16B36 16F8F-16F92 1BC9D-1BC9E 1D167-1D169 1D17B-1D182 "
    "1D185-1D18B 1D1AA-1D1AD 1D242-1D244 1DA00-1DA36 1DA3B-1DA6C 1DA75 1DA84 1DA9B-1DA9F "
    "1DAA1-1DAAF 1E8D0-1E8D6 E0100-E01EF")
# Word separators (dropped).
_BERT_SPACE = _class("9-A D 20 A0 1680 2000-200A 2028-2029 202F 205F 3000")
# BertPreTokenizer punctuation: ASCII punctuation and Unicode P* (symbols are not).
_BERT_PUNCT = _class(
    "21-2F 3A-40 5B-60 7B-7E A1 A7 AB B6-B7 BB BF 37E 387 55A-55F 589-58A 5BE 5C0 5C3 5C6 5F3-5F4 "
    "609-60A 60C-60D 61B 61E-61F 66A-66D 6D4 700-70D 7F7-7F9 830-83E 85E 964-965 970 AF0 DF4 E4F "
    "E5A-E5B F04-F12 F14 F3A-F3D F85 FD0-FD4 FD9-FDA 104A-104F 10FB 1360-1368 1400 166D-166E "
    "169B-169C 16EB-16ED 1735-1736 17D4-17D6 17D8-17DA 1800-180A 1944-1945 1A1E-1A1F 1AA0-1AA6 "
    "1AA8-1AAD 1B5A-1B60 1BFC-1BFF 1C3B-1C3F 1C7E-1C7F 1CC0-1CC7 1CD3 2010-2027 2030-2043 "
    "2045-2051 2053-205E 207D-207E 208D-208E 2308-230B 2329-232A 2768-2775 27C5-27C6 27E6-27EF "
    "2983-2998 29D8-29DB 29FC-29FD 2CF9-2CFC 2CFE-2CFF 2D70 2E00-2E2E 2E30-2E42 3001-3003 "
    "3008-3011 3014-301F 3030 303D 30A0 30FB A4FE-A4FF A60D-A60F A673 A67E A6F2-A6F7 A874-A877 "
    "A8CE-A8CF A8F8-A8FA A8FC A92E-A92F A95F A9C1-A9CD A9DE-A9DF AA5C-AA5F AADE-AADF AAF0-AAF1 "
    "ABEB FD3E-FD3F FE10-FE19 FE30-FE52 FE54-FE61 FE63 FE68 FE6A-FE6B FF01-FF03 FF05-FF0A "
    "FF0C-FF0F FF1A-FF1B FF1F-FF20 FF3B-FF3D FF3F FF5B FF5D FF5F-FF65 10100-10102 1039F 103D0 "
    "1056F 10857 1091F 1093F 10A50-10A58 10A7F 10AF0-10AF6 10B39-10B3F 10B99-10B9C 11047-1104D "
    "110BB-110BC 110BE-110C1 11140-11143 11174-11175 111C5-111C9 111CD 111DB 111DD-111DF "
    "11238-1123D 112A9 114C6 115C1-115D7 11641-11643 1173C-1173E 12470-12474 16A6E-16A6F 16AF5 "
    "16B37-16B3B 16B44 1BC9F 1DA87-1DA8B")
# CJK ideographs, each a word of its own (HF's table: 2B820-2B91F is not included).
_BERT_CJK = _class("3400-4DBF 4E00-9FFF F900-FAFF 20000-2A6DF 2A700-2B81F 2B920-2CEAF 2F800-2FA1F")
_BERT_SPLIT_PATTERN = _BERT_SPACE + "+|" + _BERT_PUNCT + "|" + _BERT_CJK
_BERT_KEEP_PATTERN = _BERT_PUNCT + "|" + _BERT_CJK
