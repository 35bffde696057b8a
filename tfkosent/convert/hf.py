"""Local Hugging Face BERT / RoBERTa / XLM-R / DistilBERT / ELECTRA directory -> tfkosent model directory.

`convert_hf(model_dir, out_dir, pooling=None)` reads a directory as written by
`save_pretrained` or downloaded from the Hub (config.json, model.safetensors or
pytorch_model.bin, possibly sharded, and the tokenizer files) and writes a
tfkosent model directory (format in `tfkosent.config`) whose tokenizer gives
the same token ids as the Hugging Face tokenizer and whose encoder gives the
same `last_hidden_state` (and pooler output) as the PyTorch model.

Korean checkpoints this covers
------------------------------
  klue/bert-base                      BERT, WordPiece vocab.txt (BertTokenizer, cased)
  klue/roberta-{small,base,large}     RoBERTa weights with a BertTokenizer vocab.txt:
                                      "[CLS] a [SEP] b [SEP]" packing; RoBERTa positions
  BM-K/KoSimCSE-roberta(-multitask),  RoBERTa / BERT fine-tuned for sentence embeddings;
  BM-K/KoSimCSE-bert(-multitask)      KoSimCSE embeds with the [CLS] vector of the last
                                      layer: convert with pooling="cls"
  monologg/kobert, monologg/distilkobert
                                      BERT / DistilBERT with a SentencePiece model plus a
                                      vocab.txt that re-numbers its pieces (KoBertTokenizer)
  monologg/koelectra-base-v3-discriminator (and other base / large ELECTRA discriminators)
                                      ELECTRA: BERT's encoder, WordPiece vocab.txt, no pooler
                                      (CLS pooling); ELECTRA-small's factorized embeddings
                                      are refused
  skt/kobert-base-v1                  BERT with spiece.model (kobert_tokenizer.KoBERTTokenizer:
                                      SentencePiece ids, "[CLS] a [SEP] b [SEP]")
  xlm-roberta-*, intfloat/multilingual-e5-*, sentence-transformers models on these bases
                                      XLM-R sentencepiece.bpe.model with the fairseq id
                                      offset, or tokenizer.json; sentence-transformers'
                                      `1_Pooling/config.json` chooses the pooling

With internet access, download and convert (the second command also writes
the TF Hub-style export next to the model directory):

    huggingface-cli download klue/roberta-base --local-dir klue-roberta-base
    tfkosent convert hf klue-roberta-base --out klue-roberta-base-tf

    huggingface-cli download BM-K/KoSimCSE-roberta --local-dir kosimcse-roberta
    tfkosent convert hf kosimcse-roberta --out kosimcse-tf    # RoBERTa: CLS pooling by default

(`hf download` is the newer name of `huggingface-cli download`.) monologg's
KoBERT repositories ship their tokenizer as custom code: download them the same
way; the converter reads `tokenizer_78b3253a26.model` + `vocab.txt` directly.

How it works
------------
Weights: one declarative table per architecture (`WEIGHT_TABLES`) maps
Hugging Face parameter names (regular expressions, with or without the
`bert.` / `roberta.` / `distilbert.` / `electra.` prefix of task models) to the canonical
names of `tfkosent.layers.transformer.weight_names`, with a transform
("T" = transpose a PyTorch Linear weight into a Keras kernel). Task heads
(`cls.*`, `lm_head.*`, `classifier.*`, ...) are skipped and listed in the
metadata. `.safetensors` is read with the safetensors numpy API (no torch);
`pytorch_model.bin` needs torch.

Config: `CONFIG_FIELDS` maps config.json fields to `EncoderConfig`. RoBERTa and
XLM-R number positions from pad_token_id + 1 (`position_offset`); DistilBERT
has no token types. A RoBERTa checkpoint with a BertTokenizer (KLUE) gets
"bert" packing, whose second segment has type id 1: its single token-type row
is duplicated so type 1 embeds exactly like type 0, the only type the PyTorch
model accepts.

Tokenizers (ids identical to the Hugging Face tokenizer's, checked by
tests/test_port_hf.py):
  * WordPiece (vocab.txt or a WordPiece tokenizer.json): `WordpieceTokenizer`,
    which reproduces BertTokenizer's normalizer and pre-tokenizer;
  * SentencePiece: the ModelProto is rebuilt so that piece i is the piece the
    Hugging Face tokenizer numbers i (fairseq offset for XLM-R, vocab.txt
    order for KoBERT, tokenizer.json's vocabulary otherwise); a Unigram
    tokenizer.json without the .model file is turned into a ModelProto.
Packing follows the tokenizer's post-processor: "bert" ([CLS] a [SEP] b [SEP],
type ids 0/1) or "roberta" (<s> a </s></s> b </s>, type ids 0).

An embedding table larger than the tokenizer's vocabulary (multilingual-e5-small)
gets never-produced placeholder tokens; a vocabulary larger than the table is
an error.

Known limitations: byte-level BPE tokenizers (English roberta-base's
vocab.json + merges.txt) are not supported; special-token strings typed inside
the text ("[MASK]", "<mask>") are not treated as special tokens; XLNet-style KoBERT tokenizers strip
accents (keep_accents=False) and re-split "digit," pieces in Python, which a
SentencePiece model does not: Korean text is unaffected, accented Latin
letters may tokenize differently. Decomposed Hangul (NFD jamo, e.g. text pasted
from macOS file names) differs from XLM-R's fast tokenizer: the rebuilt model
applies SentencePiece's normalization map, which composes the syllables, so
"한국어" in NFD gets the pieces of "한국어", where the fast tokenizer gives <unk>
pieces (measured on tests/test_port_hf.py's tiny XLM-R checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfkosent.config import ConfigError, EncoderConfig, ModelConfig, PreprocessConfig, POOLING_MODES
from tfkosent.convert.sentencepiece_proto import model_pb2 as sentencepiece_model_pb2

HF_CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
TOKENIZER_JSON = "tokenizer.json"
VOCAB_TXT = "vocab.txt"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")
DEFAULT_SEQ_LENGTH = 512


class HFConversionError(ValueError):
    """The Hugging Face directory cannot be converted; the message names the file and field."""


# --- weight-name tables ----------------------------------------------------------------

T = "T"  # transform: transpose a PyTorch nn.Linear weight [out, in] into a Keras kernel [in, out]
_LN_W, _LN_B = r"(?:weight|gamma)", r"(?:bias|beta)"  # older checkpoints use gamma/beta
_L = r"encoder\.layer\.(\d+)\."        # BERT / RoBERTa / XLM-R layer i
_D = r"transformer\.layer\.(\d+)\."    # DistilBERT layer i

# (Hugging Face name pattern, canonical name template, transform). Patterns are
# full matches after the base-model prefix is removed; templates use the groups.
_BERT_TABLE: Tuple[Tuple[str, str, Optional[str]], ...] = (
    (r"embeddings\.word_embeddings\.weight", "embeddings/word_embeddings", None),
    (r"embeddings\.position_embeddings\.weight", "embeddings/position_embeddings", None),
    (r"embeddings\.token_type_embeddings\.weight", "embeddings/token_type_embeddings", None),
    (rf"embeddings\.LayerNorm\.{_LN_W}", "embeddings/layer_norm/gamma", None),
    (rf"embeddings\.LayerNorm\.{_LN_B}", "embeddings/layer_norm/beta", None),
    (_L + r"attention\.self\.(query|key|value)\.weight", "layer_{0}/attention/{1}/kernel", T),
    (_L + r"attention\.self\.(query|key|value)\.bias", "layer_{0}/attention/{1}/bias", None),
    (_L + r"attention\.output\.dense\.weight", "layer_{0}/attention/output/kernel", T),
    (_L + r"attention\.output\.dense\.bias", "layer_{0}/attention/output/bias", None),
    (_L + rf"attention\.output\.LayerNorm\.{_LN_W}", "layer_{0}/attention_layer_norm/gamma", None),
    (_L + rf"attention\.output\.LayerNorm\.{_LN_B}", "layer_{0}/attention_layer_norm/beta", None),
    (_L + r"intermediate\.dense\.weight", "layer_{0}/intermediate/kernel", T),
    (_L + r"intermediate\.dense\.bias", "layer_{0}/intermediate/bias", None),
    (_L + r"output\.dense\.weight", "layer_{0}/output/kernel", T),
    (_L + r"output\.dense\.bias", "layer_{0}/output/bias", None),
    (_L + rf"output\.LayerNorm\.{_LN_W}", "layer_{0}/output_layer_norm/gamma", None),
    (_L + rf"output\.LayerNorm\.{_LN_B}", "layer_{0}/output_layer_norm/beta", None),
    (r"pooler\.dense\.weight", "pooler/kernel", T),
    (r"pooler\.dense\.bias", "pooler/bias", None),
)

_DISTILBERT_TABLE: Tuple[Tuple[str, str, Optional[str]], ...] = (
    (r"embeddings\.word_embeddings\.weight", "embeddings/word_embeddings", None),
    (r"embeddings\.position_embeddings\.weight", "embeddings/position_embeddings", None),
    (rf"embeddings\.LayerNorm\.{_LN_W}", "embeddings/layer_norm/gamma", None),
    (rf"embeddings\.LayerNorm\.{_LN_B}", "embeddings/layer_norm/beta", None),
    (_D + r"attention\.q_lin\.weight", "layer_{0}/attention/query/kernel", T),
    (_D + r"attention\.q_lin\.bias", "layer_{0}/attention/query/bias", None),
    (_D + r"attention\.k_lin\.weight", "layer_{0}/attention/key/kernel", T),
    (_D + r"attention\.k_lin\.bias", "layer_{0}/attention/key/bias", None),
    (_D + r"attention\.v_lin\.weight", "layer_{0}/attention/value/kernel", T),
    (_D + r"attention\.v_lin\.bias", "layer_{0}/attention/value/bias", None),
    (_D + r"attention\.out_lin\.weight", "layer_{0}/attention/output/kernel", T),
    (_D + r"attention\.out_lin\.bias", "layer_{0}/attention/output/bias", None),
    (_D + rf"sa_layer_norm\.{_LN_W}", "layer_{0}/attention_layer_norm/gamma", None),
    (_D + rf"sa_layer_norm\.{_LN_B}", "layer_{0}/attention_layer_norm/beta", None),
    (_D + r"ffn\.lin1\.weight", "layer_{0}/intermediate/kernel", T),
    (_D + r"ffn\.lin1\.bias", "layer_{0}/intermediate/bias", None),
    (_D + r"ffn\.lin2\.weight", "layer_{0}/output/kernel", T),
    (_D + r"ffn\.lin2\.bias", "layer_{0}/output/bias", None),
    (_D + rf"output_layer_norm\.{_LN_W}", "layer_{0}/output_layer_norm/gamma", None),
    (_D + rf"output_layer_norm\.{_LN_B}", "layer_{0}/output_layer_norm/beta", None),
)

WEIGHT_TABLES = {"bert": _BERT_TABLE, "distilbert": _DISTILBERT_TABLE}
_TRANSFORMS: Dict[Optional[str], Callable[[np.ndarray], np.ndarray]] = {
    None: lambda a: a, T: lambda a: np.ascontiguousarray(a.T)}
# Non-parameter buffers some checkpoints carry.
_BUFFERS = re.compile(r"embeddings\.(position_ids|token_type_ids)")

# EncoderConfig field -> config.json field (None: fixed value in `fixed`).
CONFIG_FIELDS = {
    "bert": {"vocab_size": "vocab_size", "hidden_size": "hidden_size",
             "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
             "intermediate_size": "intermediate_size",
             "max_position_embeddings": "max_position_embeddings",
             "type_vocab_size": "type_vocab_size", "layer_norm_epsilon": "layer_norm_eps",
             "hidden_activation": "hidden_act", "dropout_rate": "hidden_dropout_prob",
             "attention_dropout_rate": "attention_probs_dropout_prob",
             "initializer_range": "initializer_range"},
    "distilbert": {"vocab_size": "vocab_size", "hidden_size": "dim", "num_layers": "n_layers",
                   "num_heads": "n_heads", "intermediate_size": "hidden_dim",
                   "max_position_embeddings": "max_position_embeddings",
                   "hidden_activation": "activation", "dropout_rate": "dropout",
                   "attention_dropout_rate": "attention_dropout",
                   "initializer_range": "initializer_range"},
}
# Hugging Face activation name -> tfkosent activation.
ACTIVATIONS = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_approximate",
               "gelu_fast": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate",
               "gelu_python_tanh": "gelu_approximate", "relu": "relu"}
_TASK_SUFFIXES = ("Model", "ForPreTraining", "ForMaskedLM", "ForSequenceClassification",
                  "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice",
                  "ForNextSentencePrediction")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What differs between the supported model types."""

    model_type: str
    class_prefix: str            # of `architectures` entries: "Bert", "Roberta", ...
    table: str                   # key of WEIGHT_TABLES and CONFIG_FIELDS
    prefixes: Tuple[str, ...]    # base-model prefix in task checkpoints
    roberta_positions: bool = False
    fixed: Tuple[Tuple[str, object], ...] = ()

    @property
    def base_roots(self) -> Tuple[str, ...]:
        return ("embeddings.", "transformer.") if self.table == "distilbert" else (
            "embeddings.", "encoder.", "pooler.")


ARCHITECTURES = {
    "bert": Architecture("bert", "Bert", "bert", ("bert.",)),
    "roberta": Architecture("roberta", "Roberta", "bert", ("roberta.",), roberta_positions=True),
    "xlm-roberta": Architecture("xlm-roberta", "XLMRoberta", "bert", ("roberta.",),
                                roberta_positions=True),
    "distilbert": Architecture("distilbert", "DistilBert", "distilbert", ("distilbert.",),
                               fixed=(("type_vocab_size", 0), ("layer_norm_epsilon", 1e-12))),
    # ELECTRA's discriminator (KoELECTRA): BERT's encoder under "electra.", no pooler; its
    # factorized embeddings (embedding_size < hidden_size, ELECTRA-small) are refused by name.
    "electra": Architecture("electra", "Electra", "bert", ("electra.",)),
}


# --- small helpers ---------------------------------------------------------------------

def _read_json(path: str, required: bool = True) -> Optional[dict]:
    if not os.path.isfile(path):
        if required:
            raise HFConversionError(f"{path}: missing")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HFConversionError(f"{path}: not valid JSON ({e})") from e


def _token_content(value) -> Optional[str]:
    """A special token as written in tokenizer_config.json (str or AddedToken dict)."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


# --- reading weights -------------------------------------------------------------------

def find_weight_files(model_dir: str) -> List[str]:
    """The weight files of `model_dir` (shards resolved through the index), in load order."""
    for name in WEIGHT_FILES:
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            continue
        if not name.endswith(".index.json"):
            return [path]
        index = _read_json(path)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise HFConversionError(f"{path}: no 'weight_map' in the shard index")
        shards = [os.path.join(model_dir, s) for s in sorted(set(weight_map.values()))]
        for shard in shards:
            if not os.path.isfile(shard):
                raise HFConversionError(f"{shard}: missing (listed in {path})")
        return shards
    raise HFConversionError(f"{model_dir}: no weight file; expected one of {list(WEIGHT_FILES)}")


def _read_bf16_tensor(path: str, name: str) -> np.ndarray:
    """A bfloat16 tensor of a .safetensors file (numpy has no bfloat16) as float32."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        info = header[name]
        start, end = info["data_offsets"]
        f.seek(8 + header_len + start)
        raw = np.frombuffer(f.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def _read_safetensors(path: str) -> Dict[str, np.ndarray]:
    try:
        from safetensors import safe_open
    except ImportError as e:
        raise HFConversionError(f"{path}: reading .safetensors needs the 'safetensors' package "
                                "(pip install 'tfkosent[conversion]')") from e
    out = {}
    try:
        with safe_open(path, framework="np") as f:
            for name in f.keys():
                try:
                    out[name] = f.get_tensor(name)
                except TypeError:  # bfloat16
                    out[name] = _read_bf16_tensor(path, name)
    except HFConversionError:
        raise
    except Exception as e:  # SafetensorError, OSError, bad header JSON
        raise HFConversionError(f"{path}: unreadable or truncated safetensors file ({e})") from e
    return out


def _read_torch_bin(path: str) -> Dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:
        raise HFConversionError(
            f"{path}: a PyTorch pickle; reading it needs torch (pip install 'tfkosent[conversion]'), "
            "or re-save the checkpoint as model.safetensors") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle
        raise HFConversionError(f"{path}: unreadable or truncated PyTorch checkpoint ({e})") from e
    if not isinstance(state, Mapping):
        raise HFConversionError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {k: v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
            for k, v in state.items() if isinstance(v, torch.Tensor)}


def read_hf_weights(model_dir: str) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """All tensors of the checkpoint in `model_dir` (float tensors as float32) and their files."""
    files = find_weight_files(model_dir)
    tensors: Dict[str, np.ndarray] = {}
    for path in files:
        part = _read_safetensors(path) if path.endswith(".safetensors") else _read_torch_bin(path)
        tensors.update(part)
    tensors = {k: (v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v)
               for k, v in tensors.items()}
    return tensors, files


# --- config ----------------------------------------------------------------------------

def architecture_of(hf_config: Mapping, config_path: str) -> Architecture:
    """The `Architecture` of a config.json; errors name the field and value."""
    model_type = hf_config.get("model_type")
    archs = hf_config.get("architectures") or []
    if model_type is None and isinstance(archs, list) and archs:
        # Configs from before transformers 2.x have no model_type: infer it from the class.
        for candidate in sorted(ARCHITECTURES.values(), key=lambda a: -len(a.class_prefix)):
            if isinstance(archs[0], str) and archs[0].startswith(candidate.class_prefix):
                model_type = candidate.model_type
                break
    if model_type is None:
        raise HFConversionError(f"{config_path}: no model_type, and architectures {archs!r} names "
                                f"no supported class; add \"model_type\": one of "
                                f"{sorted(ARCHITECTURES)}")
    if model_type not in ARCHITECTURES:
        raise HFConversionError(f"{config_path}: model_type {model_type!r} is not supported "
                                f"(supported: {sorted(ARCHITECTURES)})")
    arch = ARCHITECTURES[model_type]
    if not isinstance(archs, list):
        raise HFConversionError(f"{config_path}: architectures must be a list, got {archs!r}")
    for name in archs:
        ok = isinstance(name, str) and name.startswith(arch.class_prefix) and \
            name[len(arch.class_prefix):] in _TASK_SUFFIXES
        if not ok:
            raise HFConversionError(
                f"{config_path}: architectures entry {name!r} is not supported for model_type "
                f"{model_type!r} (expected {arch.class_prefix} + one of {list(_TASK_SUFFIXES)})")
    for field, bad in (("is_decoder", True), ("add_cross_attention", True)):
        if hf_config.get(field) is bad:
            raise HFConversionError(f"{config_path}: {field}={bad} (decoder models) is not supported")
    pos_type = hf_config.get("position_embedding_type", "absolute")
    if pos_type not in (None, "absolute"):
        raise HFConversionError(f"{config_path}: position_embedding_type {pos_type!r} is not "
                                "supported (only 'absolute')")
    if arch.table == "distilbert" and hf_config.get("sinusoidal_pos_embds"):
        raise HFConversionError(f"{config_path}: sinusoidal_pos_embds=true is not supported "
                                "(only learned position embeddings)")
    return arch


def encoder_config_from_hf(hf_config: Mapping, arch: Architecture, config_path: str,
                           pooling: str) -> EncoderConfig:
    """Maps config.json fields onto an EncoderConfig (via CONFIG_FIELDS)."""
    values = dict(arch.fixed)
    for ours, theirs in CONFIG_FIELDS[arch.table].items():
        if ours in values:
            continue
        if theirs not in hf_config:
            if ours in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                        "max_position_embeddings"):
                raise HFConversionError(f"{config_path}: missing field {theirs!r}")
            continue  # EncoderConfig default (e.g. dropout)
        values[ours] = hf_config[theirs]
    act_field = CONFIG_FIELDS[arch.table]["hidden_activation"]
    act = values.get("hidden_activation", "gelu")
    if act not in ACTIVATIONS:
        raise HFConversionError(f"{config_path}: {act_field} {act!r} is not supported "
                                f"(supported: {sorted(ACTIVATIONS)})")
    values["hidden_activation"] = ACTIVATIONS[act]
    if arch.roberta_positions:
        pad = hf_config.get("pad_token_id")
        if not isinstance(pad, int):
            raise HFConversionError(f"{config_path}: pad_token_id is needed for RoBERTa positions, "
                                    f"got {pad!r}")
        values["position_offset"] = pad + 1
    if arch.model_type == "electra" and hf_config.get("embedding_size", values["hidden_size"]) \
            != values["hidden_size"]:
        raise HFConversionError(
            f"{config_path}: embedding_size {hf_config['embedding_size']} differs from hidden_size "
            f"{values['hidden_size']}: factorized ELECTRA embeddings (embeddings_project, as in "
            f"ELECTRA-small) are not supported; base and large discriminators are")
    values["pooling"] = pooling
    for key in ("dropout_rate", "attention_dropout_rate"):
        if values.get(key) is None:
            values.pop(key, None)
    try:
        return EncoderConfig.from_dict(values)
    except ConfigError as e:
        raise HFConversionError(f"{config_path}: {e}") from e


# --- weights ---------------------------------------------------------------------------

@dataclasses.dataclass
class MappedWeights:
    weights: Dict[str, np.ndarray]  # canonical name -> float32
    ignored: List[str]              # task-head tensors left out


def map_weights(tensors: Mapping[str, np.ndarray], arch: Architecture, source: str) -> MappedWeights:
    """Applies the architecture's table to every tensor name.

    Base-model tensors that no row matches are an error (an unsupported
    variant); tensors outside the base model (task heads) are ignored.
    """
    table = [(re.compile(p), template, transform) for p, template, transform in WEIGHT_TABLES[arch.table]]
    # Task checkpoints (BertForPreTraining, ...) prefix the encoder: "bert.embeddings...".
    prefixed = any(name.startswith(arch.prefixes) for name in tensors)
    out: Dict[str, np.ndarray] = {}
    origin: Dict[str, str] = {}
    ignored = []
    for name in sorted(tensors):
        short, stripped = name, False
        for prefix in arch.prefixes:
            if name.startswith(prefix):
                short, stripped = name[len(prefix):], True
                break
        in_base = stripped if prefixed else name.startswith(arch.base_roots)
        if not in_base:
            ignored.append(name)  # a task head: cls.*, lm_head.*, classifier.*, ...
            continue
        if _BUFFERS.fullmatch(short):
            continue
        for pattern, template, transform in table:
            m = pattern.fullmatch(short)
            if m:
                canonical = template.format(*m.groups())
                if canonical in out:
                    raise HFConversionError(f"{source}: {name!r} and {origin[canonical]!r} both map "
                                            f"to {canonical!r}")
                out[canonical] = _TRANSFORMS[transform](np.asarray(tensors[name], np.float32))
                origin[canonical] = name
                break
        else:
            raise HFConversionError(f"{source}: weight {name!r} is not part of a supported "
                                    f"{arch.model_type} encoder (unsupported variant?)")
    return MappedWeights(out, ignored)


def _check_weights(weights: Mapping[str, np.ndarray], config: EncoderConfig, source: str,
                   config_path: str) -> None:
    from tfkosent.layers.transformer import weight_names

    expected = dict(weight_names(config))
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise HFConversionError(
            f"{source}: weights do not match {config_path} (missing {missing[:6]}"
            f"{'...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}"
            f"{'...' if len(unexpected) > 6 else ''})")
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise HFConversionError(f"{source}: {name} has shape {tuple(weights[name].shape)}, "
                                    f"{config_path} implies {shape}")


# --- pooling ---------------------------------------------------------------------------

def sentence_transformers_pooling(model_dir: str) -> Optional[Tuple[str, str]]:
    """(pooling, file) from sentence-transformers' module config, or None without one."""
    modules = _read_json(os.path.join(model_dir, "modules.json"), required=False) or []
    pooling_dir = "1_Pooling"
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", ""))
        if kind.endswith(".Pooling"):
            pooling_dir = module.get("path") or pooling_dir
        elif kind.endswith(".Dense"):
            raise HFConversionError(f"{os.path.join(model_dir, 'modules.json')}: a Dense projection "
                                    f"module ({module.get('path')}) is not supported")
    path = os.path.join(model_dir, pooling_dir, "config.json")
    cfg = _read_json(path, required=False)
    if cfg is None:
        return None
    modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
    mapping = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}
    if len(modes) != 1 or modes[0] not in mapping:
        raise HFConversionError(f"{path}: pooling {modes} is not supported (only one of "
                                f"{sorted(mapping)})")
    return mapping[modes[0]], path


# --- tokenizers ------------------------------------------------------------------------

@dataclasses.dataclass
class ConvertedTokenizer:
    preprocess: PreprocessConfig
    vocab_size: int
    source: str                                  # the file the vocabulary came from
    sentencepiece_proto: Optional[bytes] = None
    wordpiece_vocab: Optional[List[str]] = None
    notes: Dict[str, object] = dataclasses.field(default_factory=dict)


_WORDPIECE_CLASSES = {"BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer", "BertJapaneseTokenizer"}
_FAIRSEQ_SP_CLASSES = {"XLMRobertaTokenizer", "CamembertTokenizer"}
_KOBERT_SP_CLASSES = {"KoBertTokenizer", "KoBERTTokenizer", "XLNetTokenizer"}
# Classes that name no tokenizer model (transformers 4's generic fast class, transformers 5's
# backend): the tokenizer.json (or vocab files) decide, as if no class were given.
GENERIC_TOKENIZER_CLASSES = {"PreTrainedTokenizerFast", "TokenizersBackend"}
_BYTE_BPE_CLASSES = {"RobertaTokenizer", "GPT2Tokenizer", "BartTokenizer", "LongformerTokenizer"}
_SP_MODEL_NAMES = ("sentencepiece.bpe.model", "spiece.model", "tokenizer.model")


class _TokenizerFiles:
    """The tokenizer-related files of a Hugging Face directory."""

    def __init__(self, model_dir: str):
        self.dir = model_dir
        self.config_path = os.path.join(model_dir, TOKENIZER_CONFIG)
        self.config = _read_json(self.config_path, required=False) or {}
        self.special_map = _read_json(os.path.join(model_dir, SPECIAL_TOKENS_MAP), required=False) or {}
        self.json_path = os.path.join(model_dir, TOKENIZER_JSON)
        self.json = _read_json(self.json_path, required=False)
        vocab = os.path.join(model_dir, VOCAB_TXT)
        self.vocab_txt = vocab if os.path.isfile(vocab) else None
        models = [os.path.join(model_dir, n) for n in _SP_MODEL_NAMES
                  if os.path.isfile(os.path.join(model_dir, n))]
        models += sorted(os.path.join(model_dir, n) for n in os.listdir(model_dir)
                         if n.endswith(".model") and n not in _SP_MODEL_NAMES)
        self.sp_model = models[0] if models else None
        cls = self.config.get("tokenizer_class")
        self.tokenizer_class_as_written = cls
        if cls in GENERIC_TOKENIZER_CLASSES:  # no model-specific class: tokenizer.json decides
            cls = None
        self.tokenizer_class = cls[:-4] if isinstance(cls, str) and cls.endswith("Fast") else cls

    def special(self, key: str, default: Optional[str]) -> Optional[str]:
        for source in (self.config, self.special_map):
            value = _token_content(source.get(key))
            if value:
                return value
        return default


def _read_vocab_txt(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n").rstrip("\r") for line in f]
    while vocab and vocab[-1] == "":
        vocab.pop()
    if not vocab:
        raise HFConversionError(f"{path}: empty vocabulary")
    return vocab


def _json_vocab_by_id(vocab: Mapping[str, int], path: str, added=()) -> List[str]:
    """tokenizer.json's WordPiece vocabulary as a list by id, with added tokens past its end."""
    by_id: Dict[int, str] = {}
    for token, i in vocab.items():
        by_id[int(i)] = token
    for token in added or ():
        if isinstance(token, Mapping) and int(token.get("id", -1)) >= len(vocab):
            by_id[int(token["id"])] = token.get("content")
    if sorted(by_id) != list(range(len(by_id))):
        raise HFConversionError(f"{path}: model.vocab ids are not 0..{len(by_id) - 1}")
    return [by_id[i] for i in range(len(by_id))]


def _post_processor_packing(post: Optional[Mapping], path: str) -> Optional[Tuple[str, str, str]]:
    """(packing, cls token, sep token) from a tokenizer.json post_processor, or None."""
    if not post:
        return None
    kind = post.get("type")
    if kind == "Sequence":
        found = [p for p in post.get("processors", []) if p.get("type") != "ByteLevel"]
        return _post_processor_packing(found[0], path) if len(found) == 1 else None
    if kind == "BertProcessing":
        return "bert", post["cls"][0], post["sep"][0]
    if kind == "RobertaProcessing":
        return "roberta", post["cls"][0], post["sep"][0]
    if kind != "TemplateProcessing":
        raise HFConversionError(f"{path}: post_processor {kind!r} is not supported")
    items = []
    for item in post.get("pair", []):
        if "SpecialToken" in item:
            items.append(("S", item["SpecialToken"]["id"], item["SpecialToken"]["type_id"]))
        else:
            items.append(("A" if item["Sequence"]["id"] == "A" else "B", None,
                          item["Sequence"]["type_id"]))
    shape = [k for k, _, _ in items]
    types = [t for _, _, t in items]
    if shape == ["S", "A", "S", "B", "S"] and items[2][1] == items[4][1] and types == [0, 0, 0, 1, 1]:
        return "bert", items[0][1], items[2][1]
    if shape == ["S", "A", "S", "S", "B", "S"] and len({items[i][1] for i in (2, 3, 5)}) == 1 \
            and not any(types):
        return "roberta", items[0][1], items[2][1]
    raise HFConversionError(f"{path}: post_processor pair template {items} is neither "
                            "'[CLS] A [SEP] B [SEP]' (type ids 0/1) nor '<s> A </s></s> B </s>' (type ids 0)")


def _bert_normalizer_flags(normalizer: Optional[Mapping], path: str) -> Tuple[bool, bool]:
    """(lower_case, strip_accents) of a WordPiece tokenizer.json normalizer."""
    if not normalizer or normalizer.get("type") != "BertNormalizer":
        raise HFConversionError(f"{path}: normalizer {normalizer and normalizer.get('type')!r} is not "
                                "supported for WordPiece (only BertNormalizer)")
    if not normalizer.get("clean_text", True) or not normalizer.get("handle_chinese_chars", True):
        raise HFConversionError(f"{path}: BertNormalizer with clean_text or handle_chinese_chars "
                                "false is not supported")
    lower = bool(normalizer.get("lowercase", True))
    strip = normalizer.get("strip_accents")
    return lower, lower if strip is None else bool(strip)


def _wordpiece_tokenizer(files: _TokenizerFiles, packing: Optional[Tuple[str, str, str]]
                         ) -> ConvertedTokenizer:
    if files.json is not None and files.json.get("model", {}).get("type") == "WordPiece":
        model = files.json["model"]
        source = files.json_path
        vocab = _json_vocab_by_id(model.get("vocab", {}), source, files.json.get("added_tokens"))
        lower, strip = _bert_normalizer_flags(files.json.get("normalizer"), source)
        pre = (files.json.get("pre_tokenizer") or {}).get("type")
        if pre != "BertPreTokenizer":
            raise HFConversionError(f"{source}: pre_tokenizer {pre!r} is not supported for WordPiece "
                                    "(only BertPreTokenizer)")
        unk = model.get("unk_token", "[UNK]")
        if model.get("continuing_subword_prefix", "##") != "##" or \
                model.get("max_input_chars_per_word", 100) != 100:
            raise HFConversionError(f"{source}: WordPiece continuing_subword_prefix other than '##' or "
                                    "max_input_chars_per_word other than 100 is not supported")
    else:
        source = files.vocab_txt
        vocab = _read_vocab_txt(source)
        lower = bool(files.config.get("do_lower_case", True))
        strip = files.config.get("strip_accents")
        strip = lower if strip is None else bool(strip)
        if files.config.get("tokenize_chinese_chars", True) is False:
            raise HFConversionError(f"{files.config_path}: tokenize_chinese_chars=false is not supported")
        unk = files.special("unk_token", "[UNK]")
    pack, cls, sep = packing or ("bert", files.special("cls_token", "[CLS]"),
                                 files.special("sep_token", "[SEP]"))
    tokens = dict(cls_token=cls, sep_token=sep, pad_token=files.special("pad_token", "[PAD]"),
                  unk_token=unk, mask_token=files.special("mask_token", "[MASK]"))
    notes = {}
    index = set(vocab)
    for key, token in tokens.items():
        if token not in index:
            if key == "mask_token":
                notes["mask_token"] = f"{token!r} is not in the vocabulary; [MASK] falls back to unk"
                tokens[key] = unk
                continue
            raise HFConversionError(f"{source}: special token {token!r} ({key}) is not in the vocabulary")
    preprocess = PreprocessConfig(tokenizer_type="wordpiece", packing=pack, lower_case=lower,
                                  strip_accents=strip, **tokens)
    return ConvertedTokenizer(preprocess, len(vocab), source, wordpiece_vocab=vocab, notes=notes)


SCORE_QUANTUM = 2.0 ** -12
# sentencepiece.ModelProto.SentencePiece.Type and TrainerSpec.ModelType values.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED = 1, 2, 3, 4, 5
UNIGRAM = 1




def quantize_scores(model_proto) -> None:
    """Rounds piece scores to multiples of SCORE_QUANTUM, in place.

    Segmentations that are permutations of the same pieces ("0" + "00" vs
    "00" + "0" in "000", runs of "ㅋ") tie exactly. Hugging Face's Unigram
    sums scores in float64, so it sees the tie and keeps the first path found;
    the SentencePiece op of tensorflow_text sums in float32, and rounding picks
    a path that depends on the summation order. With scores on a 2^-12 grid the
    float32 sums are exact (up to |sum| < 4096, a few hundred pieces), so
    SentencePiece sees the same ties and breaks them the same way. The
    rounding (<= 1.2e-4 per piece) only decides between paths whose scores
    differ by less than that.
    """
    for piece in model_proto.pieces:
        piece.score = float(np.round(np.float64(piece.score) / SCORE_QUANTUM) * SCORE_QUANTUM)


def reorder_sentencepiece(proto: bytes, vocab: Sequence[str], *, unk_token: str,
                          control_tokens: Sequence[str], user_defined_tokens: Sequence[str] = (),
                          proto_source: str = "SentencePiece model", vocab_source: str = "vocabulary",
                          quantize: bool = True) -> bytes:
    """A copy of `proto` whose piece i is `vocab[i]`, so SentencePiece ids == model ids.

    `quantize`: round the scores (`quantize_scores`) when the reference tokenizer is the
    `tokenizers` library's Unigram (a fast tokenizer); keep them as they are when it is the
    sentencepiece library itself (KoBERT's tokenizers), whose float32 tie-breaks the
    SentencePiece op of tensorflow_text, the same C++ code, then reproduces exactly.

    `vocab[i]` keeps its piece's score and type when the model has it;
    `unk_token` becomes the UNKNOWN piece, `control_tokens` CONTROL pieces (never
    matched in text), `user_defined_tokens` USER_DEFINED (matched verbatim), and
    any other entry the model lacks an UNUSED piece (never produced, as in
    Hugging Face where SentencePiece never emits it). Every piece the model can
    produce must be in `vocab` (Hugging Face would map it to unk, which a
    SentencePiece model cannot express).
    """
    m = sentencepiece_model_pb2().ModelProto()
    try:
        m.ParseFromString(proto)
    except Exception as e:
        raise HFConversionError(f"{proto_source}: not a SentencePiece model ({e})") from e
    if m.trainer_spec.byte_fallback:
        raise HFConversionError(f"{proto_source}: byte_fallback models are not supported")
    producible = (NORMAL, USER_DEFINED)
    if len(set(vocab)) != len(vocab):
        dup = sorted({t for t in vocab if vocab.count(t) > 1})[:5] if len(vocab) < 50000 else "..."
        raise HFConversionError(f"{vocab_source}: repeated tokens {dup}")
    by_piece = {p.piece: p for p in m.pieces}
    wanted = set(vocab)
    lost = [p.piece for p in m.pieces if p.type in producible and p.piece not in wanted]
    if lost:
        raise HFConversionError(
            f"{len(lost)} pieces of {proto_source} are not in {vocab_source} (e.g. {lost[:5]}): "
            "the Hugging Face tokenizer maps them to unk, which a SentencePiece model cannot express")
    if unk_token not in wanted:
        raise HFConversionError(f"{vocab_source}: unk token {unk_token!r} is missing")
    controls, users = set(control_tokens), set(user_defined_tokens)
    new = sentencepiece_model_pb2().ModelProto()
    new.CopyFrom(m)
    del new.pieces[:]
    for token in vocab:
        old = by_piece.get(token)
        if token == unk_token:
            new.pieces.add(piece=token, score=0.0, type=UNKNOWN)
        elif token in users:
            new.pieces.add(piece=token, score=0.0, type=USER_DEFINED)
        elif token in controls:
            new.pieces.add(piece=token, score=0.0, type=CONTROL)
        elif old is not None and old.type in producible:
            new.pieces.add(piece=token, score=old.score, type=old.type)
        else:
            new.pieces.add(piece=token, score=0.0, type=UNUSED)
    if quantize:  # only to match the `tokenizers` library's Unigram (see quantize_scores)
        quantize_scores(new)
    index = {t: i for i, t in enumerate(vocab)}
    t = new.trainer_spec
    t.vocab_size = len(vocab)
    t.unk_id, t.unk_piece = index[unk_token], unk_token
    for field in ("bos", "eos", "pad"):
        setattr(t, f"{field}_id", -1)
    for field, token in zip(("bos", "eos", "pad"), control_tokens):
        if token in index:
            setattr(t, f"{field}_id", index[token])
            setattr(t, f"{field}_piece", token)
    return new.SerializeToString()


def sentencepiece_from_unigram_json(tokenizer_json: Mapping, path: str,
                                    special_tokens: Sequence[str], unk_token: str,
                                    mask_token: Optional[str]) -> bytes:
    """A SentencePiece ModelProto equivalent to a Unigram tokenizer.json (converted from SP)."""
    import base64

    model = tokenizer_json["model"]
    if model.get("byte_fallback"):
        raise HFConversionError(f"{path}: Unigram byte_fallback is not supported")
    normalizer = tokenizer_json.get("normalizer") or {}
    parts = normalizer.get("normalizers", [normalizer]) if normalizer.get("type") == "Sequence" \
        else ([normalizer] if normalizer else [])
    charsmap = b""
    for part in parts:
        kind = part.get("type")
        if kind == "Precompiled":
            charsmap = base64.b64decode(part.get("precompiled_charsmap") or "")
        elif kind == "Replace" and part.get("content") == " ":
            pass  # " {2,}" -> " ": SentencePiece's remove_extra_whitespaces
        else:
            raise HFConversionError(f"{path}: normalizer {kind!r} is not supported for Unigram")
    pre = tokenizer_json.get("pre_tokenizer") or {}
    pres = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    metaspace = [p for p in pres if p.get("type") == "Metaspace"]
    if len(metaspace) != 1 or any(p.get("type") not in ("Metaspace", "WhitespaceSplit") for p in pres):
        raise HFConversionError(f"{path}: pre_tokenizer {pre.get('type')!r} is not supported for "
                                "Unigram (only [WhitespaceSplit,] Metaspace)")
    prepend = metaspace[0].get("prepend_scheme", "always" if metaspace[0].get("add_prefix_space", True)
                               else "never")
    vocab = [(str(p), float(s)) for p, s in model["vocab"]]
    unk_id = model.get("unk_id")
    if unk_id is None or vocab[unk_id][0] != unk_token:
        raise HFConversionError(f"{path}: model.unk_id {unk_id!r} is not the unk token {unk_token!r}")
    m = sentencepiece_model_pb2().ModelProto()
    specials = set(special_tokens)
    for piece, score in vocab:
        if piece == unk_token:
            typ = UNKNOWN
        elif piece == mask_token:
            typ = USER_DEFINED
        elif piece in specials:
            typ = CONTROL
        else:
            typ = NORMAL
        m.pieces.add(piece=piece, score=score, type=typ)
    quantize_scores(m)
    t = m.trainer_spec
    t.model_type = UNIGRAM
    t.vocab_size = len(vocab)
    t.unk_id = unk_id
    t.bos_id = t.eos_id = t.pad_id = -1
    norm = m.normalizer_spec
    norm.name = "user_defined" if charsmap else "identity"
    norm.precompiled_charsmap = charsmap
    norm.add_dummy_prefix = prepend != "never"
    norm.remove_extra_whitespaces = True
    norm.escape_whitespaces = True
    return m.SerializeToString()


PROBE_TEXTS = ("한국어 문장 임베딩을 만듭니다.", "오늘 날씨가 정말 좋네요!", "KoBERT와 KLUE-RoBERTa, 2024년 3월.",
               "  여러   칸의 공백 ", "😀 emoji 漢字 mixed",
               # runs of one piece: segmentations that tie, where score rounding decides
               "000", "1,000,000원", "ㅋㅋㅋㅋㅋㅋㅋ")


def _tokenizers_reference(tokenizer_json: str) -> Optional[Callable[[str], List[int]]]:
    """ids (no special tokens) of the `tokenizers` library on tokenizer.json, if it is installed."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    try:
        tok = Tokenizer.from_file(tokenizer_json)
    except Exception as e:
        raise HFConversionError(f"{tokenizer_json}: the tokenizers library cannot read it ({e})") from e
    return lambda text: tok.encode(text, add_special_tokens=False).ids


def _check_sentencepiece(new_proto: bytes, reference: Callable[[str], List[int]], what: str,
                         exact: bool = False) -> None:
    """Compares the rebuilt model's ids with the reference tokenizer's on PROBE_TEXTS.

    `exact`: the reference is the sentencepiece library on the original scores, the very
    algorithm the rebuilt model runs, so every probe must match. Otherwise (the `tokenizers`
    library sums scores in float64, SentencePiece in float32 on rounded scores) one probe may
    differ by a tie; a wrong id mapping shows on every probe."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=new_proto)
    wrong = [(text, sp.encode(text), reference(text)) for text in PROBE_TEXTS]
    wrong = [w for w in wrong if w[1] != w[2]]
    if len(wrong) > (0 if exact else 1):
        text, got, want = wrong[0]
        raise HFConversionError(f"{what}: the rebuilt SentencePiece model gives {got} for "
                                f"{text!r}, the original tokenizer {want}")


def _sentencepiece_tokenizer(files: _TokenizerFiles, model_type: str,
                             packing: Optional[Tuple[str, str, str]]) -> ConvertedTokenizer:
    import sentencepiece as spm

    fairseq = files.tokenizer_class in _FAIRSEQ_SP_CLASSES or (
        files.tokenizer_class is None and model_type == "xlm-roberta")
    if fairseq:
        defaults = dict(cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>",
                        mask_token="<mask>")
    else:
        defaults = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
                        mask_token="[MASK]")
    tokens = {k: files.special(k, v) for k, v in defaults.items()}
    if packing:
        tokens["cls_token"], tokens["sep_token"] = packing[1], packing[2]
        pack = packing[0]
    else:
        pack = "roberta" if fairseq else "bert"
    unk, mask = tokens["unk_token"], tokens["mask_token"]
    controls = [tokens["cls_token"], tokens["sep_token"], tokens["pad_token"]]
    json_model = (files.json or {}).get("model", {})
    notes: Dict[str, object] = {}
    if files.sp_model is not None:
        with open(files.sp_model, "rb") as f:
            original = f.read()
        try:
            orig_sp = spm.SentencePieceProcessor(model_proto=original)
        except Exception as e:
            raise HFConversionError(f"{files.sp_model}: not a SentencePiece model ({e})") from e
        orig_pieces = [orig_sp.id_to_piece(i) for i in range(orig_sp.get_piece_size())]
        if json_model.get("type") == "Unigram":
            vocab, vocab_source = [p for p, _ in json_model["vocab"]], files.json_path
        elif files.vocab_txt is not None:
            vocab, vocab_source = _read_vocab_txt(files.vocab_txt), files.vocab_txt
        elif fairseq:  # fairseq: <s> <pad> </s> <unk>, then SentencePiece ids + 1, <mask> last
            vocab = [tokens["cls_token"], tokens["pad_token"], tokens["sep_token"], unk] + \
                orig_pieces[3:] + [mask]
            vocab_source = f"{files.sp_model} (fairseq offset)"
        else:  # KoBERT (kobert_tokenizer): SentencePiece ids as they are
            vocab, vocab_source = orig_pieces, files.sp_model
        # Which library the checkpoint's own tokenizer runs: a tokenizer.json Unigram or
        # XLM-R's fast tokenizer (converted from the .model by transformers) -> `tokenizers`;
        # KoBERT's KoBertTokenizer / KoBERTTokenizer -> the sentencepiece library itself.
        via_tokenizers = json_model.get("type") == "Unigram" or fairseq
        proto = reorder_sentencepiece(original, vocab, unk_token=unk, control_tokens=controls,
                                      user_defined_tokens=[mask] if mask in vocab else [],
                                      proto_source=files.sp_model, vocab_source=vocab_source,
                                      quantize=via_tokenizers)
        index = {t: i for i, t in enumerate(vocab)}

        def reference(text):  # what the HF tokenizer does: SP pieces, looked up in its vocabulary
            return [index.get(p, index[unk]) for p in orig_sp.encode_as_pieces(text)]

        if json_model.get("type") == "Unigram":
            reference = _tokenizers_reference(files.json_path) or reference
        _check_sentencepiece(proto, reference, f"{files.sp_model} + {vocab_source}",
                             exact=not via_tokenizers)
        source = files.sp_model if vocab_source == files.sp_model else f"{files.sp_model} + {vocab_source}"
    elif json_model.get("type") == "Unigram":
        vocab = [p for p, _ in json_model["vocab"]]
        special = [a.get("content") for a in files.json.get("added_tokens", []) if a.get("special")]
        proto = sentencepiece_from_unigram_json(files.json, files.json_path, special + controls, unk, mask)
        source = files.json_path
        reference = _tokenizers_reference(files.json_path)
        if reference is not None:
            _check_sentencepiece(proto, reference, source)
    else:
        raise HFConversionError(f"{files.dir}: no SentencePiece model (*.model) and no Unigram "
                                f"{TOKENIZER_JSON}")
    if files.config.get("do_lower_case"):
        notes["lower_case"] = "case folding (ICU) before SentencePiece"
    for key, token in list(tokens.items()):
        if token not in vocab:
            if key == "mask_token":
                tokens[key] = unk
                notes["mask_token"] = f"{token!r} is not in the vocabulary; mask falls back to unk"
                continue
            raise HFConversionError(f"{source}: special token {token!r} ({key}) is not in the vocabulary")
    preprocess = PreprocessConfig(tokenizer_type="sentencepiece", packing=pack,
                                  lower_case=bool(files.config.get("do_lower_case", False)), **tokens)
    return ConvertedTokenizer(preprocess, len(vocab), source, sentencepiece_proto=proto, notes=notes)


def convert_tokenizer(model_dir: str, model_type: str) -> ConvertedTokenizer:
    """PreprocessConfig + vocabulary reproducing the directory's Hugging Face tokenizer."""
    files = _TokenizerFiles(model_dir)
    cls = files.tokenizer_class
    if cls in _BYTE_BPE_CLASSES or (files.json or {}).get("model", {}).get("type") == "BPE" or (
            cls is None and files.json is None and os.path.isfile(os.path.join(model_dir, "merges.txt"))):
        raise HFConversionError(f"{files.config_path if cls else model_dir}: byte-level BPE tokenizers "
                                f"({cls or 'vocab.json + merges.txt'}) are not supported; tfkosent "
                                "supports WordPiece (vocab.txt) and SentencePiece tokenizers")
    known = _WORDPIECE_CLASSES | _FAIRSEQ_SP_CLASSES | _KOBERT_SP_CLASSES
    if cls is not None and cls not in known:
        raise HFConversionError(f"{files.config_path}: tokenizer_class "
                                f"{files.tokenizer_class_as_written!r} is not supported "
                                f"(supported: {sorted(known)})")
    packing = _post_processor_packing((files.json or {}).get("post_processor"), files.json_path) \
        if files.json is not None else None
    json_type = (files.json or {}).get("model", {}).get("type")
    if cls in _WORDPIECE_CLASSES or (cls is None and (json_type == "WordPiece" or (
            json_type is None and files.vocab_txt and not files.sp_model))):
        if json_type != "WordPiece" and files.vocab_txt is None:
            raise HFConversionError(f"{model_dir}: no {VOCAB_TXT} and no WordPiece {TOKENIZER_JSON}")
        return _wordpiece_tokenizer(files, packing)
    if files.sp_model is None and json_type != "Unigram":
        raise HFConversionError(f"{model_dir}: no tokenizer found (expected {VOCAB_TXT}, a SentencePiece "
                                f"*.model or {TOKENIZER_JSON})")
    return _sentencepiece_tokenizer(files, model_type, packing)


# --- the conversion --------------------------------------------------------------------

def _resolve_model_dir(model_dir: str) -> str:
    """The directory holding config.json (older sentence-transformers: 0_Transformer/)."""
    if os.path.isfile(os.path.join(model_dir, HF_CONFIG)):
        return model_dir
    modules = _read_json(os.path.join(model_dir, "modules.json"), required=False) or []
    for module in modules if isinstance(modules, list) else []:
        if str(module.get("type", "")).endswith(".Transformer") and module.get("path"):
            candidate = os.path.join(model_dir, module["path"])
            if os.path.isfile(os.path.join(candidate, HF_CONFIG)):
                return candidate
    return model_dir


# Architectures pre-trained without a next-sentence task: a pooler in their checkpoint is untrained.
UNTRAINED_POOLER_TYPES = ("roberta", "xlm-roberta")


def convert_hf(model_dir: str, out_dir: str, pooling: Optional[str] = None, *,
               seq_length: Optional[int] = None, dtype: str = "float32",
               overwrite: bool = False) -> str:
    """Converts a local Hugging Face model directory into a tfkosent model directory.

    pooling: "cls_dense_tanh" (BERT's pooler), "cls" or "mean"; default: the
      sentence-transformers pooling config if the directory has one, else "cls" for
      RoBERTa / XLM-R (their pooler is never pre-trained), else "cls_dense_tanh" when the
      checkpoint has pooler weights, else "cls".
    seq_length: PreprocessConfig.seq_length (default: min(512, the encoder's limit)).
    Returns the absolute path of `out_dir`, written atomically.
    """
    from tfkosent.model_dir import save_model_dir

    if not os.path.isdir(model_dir):
        raise HFConversionError(f"{model_dir}: no such directory")
    root = os.path.abspath(model_dir)
    hf_dir = _resolve_model_dir(root)
    config_path = os.path.join(hf_dir, HF_CONFIG)
    hf_config = _read_json(config_path)
    arch = architecture_of(hf_config, config_path)
    tokenizer = convert_tokenizer(hf_dir if _has_tokenizer(hf_dir) else root, arch.model_type)
    tensors, weight_files = read_hf_weights(hf_dir)
    weight_source = weight_files[0] if len(weight_files) == 1 else f"{hf_dir} (sharded weights)"
    mapped = map_weights(tensors, arch, weight_source)
    weights = mapped.weights

    has_pooler = "pooler/kernel" in weights
    st = sentence_transformers_pooling(root)
    if pooling is not None:
        if pooling not in POOLING_MODES:
            raise HFConversionError(f"pooling {pooling!r} is not one of {POOLING_MODES}")
        pooling_source = "argument"
    elif st is not None:
        pooling, pooling_source = st[0], st[1]
    elif arch.model_type in UNTRAINED_POOLER_TYPES:
        # RoBERTa and XLM-R are pre-trained without a next-sentence task, so a pooler in their
        # checkpoint (RobertaModel saves one) was never trained: its tanh(dense(CLS)) is noise
        # around the CLS vector. The CLS vector itself is what KoSimCSE-roberta embeds with.
        pooling = "cls"
        pooling_source = (f"{arch.model_type}: no pre-trained pooler, so the CLS vector "
                          f"(pooling='cls_dense_tanh' uses the checkpoint's pooler anyway)")
    else:
        pooling = "cls_dense_tanh" if has_pooler else "cls"
        pooling_source = "checkpoint has a pooler" if has_pooler else "checkpoint has no pooler"
    if pooling == "cls_dense_tanh" and not has_pooler:
        raise HFConversionError(f"{weight_source}: pooling 'cls_dense_tanh' needs pooler.dense weights, "
                                "which this checkpoint does not have")
    if pooling != "cls_dense_tanh":
        weights = {k: v for k, v in weights.items() if not k.startswith("pooler/")}

    config = encoder_config_from_hf(hf_config, arch, config_path, pooling)
    notes = dict(tokenizer.notes)
    if tokenizer.preprocess.packing == "bert" and config.type_vocab_size == 1:
        # BertTokenizer-style pairs use type id 1; the PyTorch model only has type 0.
        weights["embeddings/token_type_embeddings"] = np.repeat(
            weights["embeddings/token_type_embeddings"], 2, axis=0)
        config = dataclasses.replace(config, type_vocab_size=2)
        notes["token_type_embeddings"] = ("row 0 duplicated as type 1 (bert packing, one type in "
                                          "the checkpoint)")
    _check_weights(weights, config, weight_source, config_path)
    rows = weights["embeddings/word_embeddings"].shape[0]
    if tokenizer.vocab_size > rows:
        raise HFConversionError(
            f"vocabulary size mismatch: {tokenizer.source} has {tokenizer.vocab_size} tokens, "
            f"{weight_source} has {rows} word-embedding rows ({config_path} vocab_size="
            f"{hf_config.get('vocab_size')})")
    if tokenizer.vocab_size < rows:  # padded embedding table (multilingual-e5-small: 250037 rows)
        notes["vocabulary"] = (f"{rows - tokenizer.vocab_size} never-produced placeholder tokens "
                               f"added: {tokenizer.source} has {tokenizer.vocab_size} tokens, "
                               f"the embedding table {rows} rows")
        tokenizer = pad_vocabulary(tokenizer, rows)

    max_len = min(DEFAULT_SEQ_LENGTH, config.max_seq_length)
    st_cfg = _read_json(os.path.join(root, "sentence_bert_config.json"), required=False) or {}
    if isinstance(st_cfg.get("max_seq_length"), int):
        max_len = min(max_len, st_cfg["max_seq_length"])
    seq_length = min(seq_length or max_len, config.max_seq_length)
    preprocess = dataclasses.replace(tokenizer.preprocess, seq_length=max(3, seq_length))
    if st_cfg.get("do_lower_case") and not preprocess.lower_case:
        # sentence-transformers lower-cases the text (str.lower) before its tokenizer runs
        preprocess = dataclasses.replace(preprocess, lower_case=True)
        notes["lower_case"] = ("sentence_bert_config.json do_lower_case: text lower-cased "
                               "(ICU case folding) before the tokenizer")
    metadata = {"name": os.path.basename(root.rstrip(os.sep)), "source": "huggingface",
                "hf_model_dir": root, "model_type": arch.model_type,
                "architectures": hf_config.get("architectures"),
                "weights_file": [os.path.basename(f) for f in weight_files],
                "tokenizer": tokenizer.source.replace(root + os.sep, ""),
                "pooling_source": pooling_source,
                "ignored_weights": mapped.ignored[:50] + (["..."] if len(mapped.ignored) > 50 else []),
                "converted_by": "tfkosent.convert.hf.convert_hf"}
    if notes:
        metadata["notes"] = notes
    model_config = ModelConfig(encoder=config, preprocess=preprocess, metadata=metadata)
    return save_model_dir(out_dir, model_config, weights,
                          sentencepiece_proto=tokenizer.sentencepiece_proto,
                          wordpiece_vocab=tokenizer.wordpiece_vocab, dtype=dtype, overwrite=overwrite)


def pad_vocabulary(tokenizer: ConvertedTokenizer, size: int) -> ConvertedTokenizer:
    """Extends the vocabulary to `size` ids with tokens the tokenizer never produces.

    WordPiece placeholders are bracketed (brackets are punctuation, so no word
    can equal them); SentencePiece placeholders are UNUSED pieces.
    """
    extra = [f"[tfkosent_unused_{i}]" for i in range(size - tokenizer.vocab_size)]
    if tokenizer.wordpiece_vocab is not None:
        return dataclasses.replace(tokenizer, vocab_size=size,
                                   wordpiece_vocab=tokenizer.wordpiece_vocab + extra)
    m = sentencepiece_model_pb2().ModelProto()
    m.ParseFromString(tokenizer.sentencepiece_proto)
    for piece in extra:
        m.pieces.add(piece=piece, score=0.0, type=UNUSED)
    m.trainer_spec.vocab_size = len(m.pieces)
    return dataclasses.replace(tokenizer, vocab_size=size, sentencepiece_proto=m.SerializeToString())


def _has_tokenizer(path: str) -> bool:
    names = set(os.listdir(path))
    return bool(names & {TOKENIZER_JSON, VOCAB_TXT, TOKENIZER_CONFIG}) or any(
        n.endswith(".model") for n in names)
