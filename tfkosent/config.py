"""Configuration of a tfkosent model: the encoder and its preprocessing.

A tfkosent *model directory* (what `SentenceEncoder.load` reads, what the
converters write and what the default model ships as) holds:

    config.json      {"format": "tfkosent-model", "format_version": 1,
                      "encoder": EncoderConfig, "preprocess": PreprocessConfig,
                      "metadata": {...free-form provenance...}}
    tokenizer.model  serialized SentencePiece ModelProto   (tokenizer_type "sentencepiece")
    vocab.txt        one WordPiece token per line         (tokenizer_type "wordpiece")
    weights.npz      numpy arrays keyed by the canonical names of
                     `tfkosent.layers.transformer.weight_names` (float16 or float32)

Both configs are frozen dataclasses that round-trip through JSON and reject
unknown keys and wrong types with an error naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Mapping

POOLING_MODES = ("cls", "mean", "cls_dense_tanh")
ACTIVATIONS = ("gelu", "gelu_approximate", "relu")
PACKING_PATTERNS = ("bert", "roberta")
TOKENIZER_TYPES = ("sentencepiece", "wordpiece")

MODEL_FORMAT = "tfkosent-model"
MODEL_FORMAT_VERSION = 1


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


class FieldError(ValueError):
    """One field of an object has a bad value: `owner: field message` (recipe parsing turns
    it into `file:line: key.path: message`)."""

    def __init__(self, owner: str, field, message: str):
        self.owner, self.field, self.message = owner, field, message
        super().__init__(f"{owner}: {field} {message}" if field else f"{owner}: {message}")


def _check_fields(cls, values: Mapping[str, Any], where: str) -> dict:
    """Validates `values` against the dataclass `cls`; returns a clean dict."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(fields)}")
    out = {}
    for name, value in values.items():
        expected = hints[name]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        ok = isinstance(value, expected) if isinstance(expected, type) else True
        if expected is int and isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError(
                f"{where}.{name}: expected {expected.__name__}, got {type(value).__name__} ({value!r})")
        out[name] = value
    return out


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of a BERT-family `TransformerEncoder` (post-layer-norm).

    position_offset: added to 0-based positions before the position-embedding
      lookup (0 for BERT/DistilBERT, 2 = pad_id + 1 for RoBERTa/XLM-R).
    type_vocab_size: 0 means no token-type embedding (DistilBERT).
    pooling: "cls" (first token), "mean" (mask-aware mean over all tokens,
      special tokens included, as multilingual-e5 does) or "cls_dense_tanh"
      (BERT's pooler). `pooled_output` is the sentence embedding before L2
      normalization.
    """

    vocab_size: int
    hidden_size: int = 384
    num_layers: int = 3
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    position_offset: int = 0
    layer_norm_epsilon: float = 1e-12
    hidden_activation: str = "gelu"
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    pooling: str = "mean"
    initializer_range: float = 0.02

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "max_position_embeddings"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"encoder.{name}: must be positive, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"encoder.hidden_size ({self.hidden_size}) must be divisible by "
                              f"encoder.num_heads ({self.num_heads})")
        if self.type_vocab_size < 0 or self.position_offset < 0:
            raise ConfigError("encoder.type_vocab_size and encoder.position_offset must be >= 0")
        if self.pooling not in POOLING_MODES:
            raise ConfigError(f"encoder.pooling: {self.pooling!r} is not one of {POOLING_MODES}")
        if self.hidden_activation not in ACTIVATIONS:
            raise ConfigError(
                f"encoder.hidden_activation: {self.hidden_activation!r} is not one of {ACTIVATIONS}")
        for name in ("dropout_rate", "attention_dropout_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"encoder.{name}: must be in [0, 1), got {getattr(self, name)}")

    @property
    def max_seq_length(self) -> int:
        """Longest sequence the position table allows."""
        return self.max_position_embeddings - self.position_offset

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EncoderConfig":
        return cls(**_check_fields(cls, values, "encoder"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """How raw strings become `input_word_ids`, `input_mask`, `input_type_ids`.

    packing: "bert" gives `[CLS] a [SEP] b [SEP]` with type ids 0/1;
      "roberta" gives `<s> a </s></s> b </s>` with all type ids 0.
    strip_accents: WordPiece only: NFD, then combining marks removed (BERT's
      uncased models; note that it decomposes Hangul syllables into jamo).
    text_prefix: prepended to every segment before tokenization (multilingual-e5
      needs "query: " or "passage: ").
    seq_length: default packed length of the preprocess module's default call and
      the longest sequence `SentenceEncoder.encode` feeds the encoder.
    """

    tokenizer_type: str = "sentencepiece"
    cls_token: str = "[CLS]"
    sep_token: str = "[SEP]"
    pad_token: str = "[PAD]"
    unk_token: str = "[UNK]"
    mask_token: str = "[MASK]"
    packing: str = "bert"
    lower_case: bool = False
    strip_accents: bool = False
    normalize_nfkc: bool = False
    text_prefix: str = ""
    seq_length: int = 128

    def __post_init__(self):
        if self.tokenizer_type not in TOKENIZER_TYPES:
            raise ConfigError(
                f"preprocess.tokenizer_type: {self.tokenizer_type!r} is not one of {TOKENIZER_TYPES}")
        if self.packing not in PACKING_PATTERNS:
            raise ConfigError(f"preprocess.packing: {self.packing!r} is not one of {PACKING_PATTERNS}")
        if self.strip_accents and self.tokenizer_type != "wordpiece":
            raise ConfigError("preprocess.strip_accents is only supported with tokenizer_type wordpiece")
        if self.seq_length < 3:
            raise ConfigError(f"preprocess.seq_length: must be >= 3, got {self.seq_length}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PreprocessConfig":
        return cls(**_check_fields(cls, values, "preprocess"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def special_tokens(self) -> dict:
        return {"cls_token": self.cls_token, "sep_token": self.sep_token,
                "pad_token": self.pad_token, "unk_token": self.unk_token,
                "mask_token": self.mask_token}


# Metadata keys that describe one set of weights: how they were trained and selected, what they
# scored, the KLUE-STS cut fitted on their scores.  A model derived from them (trained further, or
# cut into a student) gets its own, so `inherited_metadata` drops these; every other key (source,
# licence, prefixes, vocabulary pruning, task) describes the lineage and is kept.
WEIGHT_SPECIFIC_METADATA = ("training", "default_model", "klue_f1_cosine_threshold")


def inherited_metadata(metadata: Mapping[str, Any]) -> dict:
    """A copy of a parent model's metadata for a model derived from it: without the keys in
    `WEIGHT_SPECIFIC_METADATA` (a stale `klue_f1_cosine_threshold`, say, would make the child's
    fixed-cut KLUE-STS F1 use the parent's cut)."""
    return {k: v for k, v in metadata.items() if k not in WEIGHT_SPECIFIC_METADATA}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The whole `config.json` of a model directory."""

    encoder: EncoderConfig
    preprocess: PreprocessConfig
    metadata: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config.json") -> "ModelConfig":
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: expected a JSON object")
        fmt = values.get("format")
        if fmt != MODEL_FORMAT:
            raise ConfigError(f"{where}: 'format' is {fmt!r}, expected {MODEL_FORMAT!r}")
        version = values.get("format_version")
        if version != MODEL_FORMAT_VERSION:
            raise ConfigError(f"{where}: unsupported format_version {version!r} "
                              f"(this tfkosent reads {MODEL_FORMAT_VERSION})")
        unknown = sorted(set(values) - {"format", "format_version", "encoder", "preprocess", "metadata"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}")
        for key in ("encoder", "preprocess"):
            if key not in values:
                raise ConfigError(f"{where}: missing key {key!r}")
        try:
            return cls(encoder=EncoderConfig.from_dict(values["encoder"]),
                       preprocess=PreprocessConfig.from_dict(values["preprocess"]),
                       metadata=dict(values.get("metadata") or {}))
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"{where}: {e}") from e

    def to_dict(self) -> dict:
        return {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
                "encoder": self.encoder.to_dict(), "preprocess": self.preprocess.to_dict(),
                "metadata": self.metadata}

    @classmethod
    def load(cls, path: str) -> "ModelConfig":
        with open(path, encoding="utf-8") as f:
            try:
                values = json.load(f)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from e
        return cls.from_dict(values, where=path)
