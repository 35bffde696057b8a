"""Korean vocabulary pruning of a SentencePiece (unigram) encoder, and the Korean text readers.

A piece is kept if it is
  * a special piece (CONTROL / UNKNOWN / USER_DEFINED: <s> <pad> </s> <unk> <mask>),
  * produced by the unpruned tokenizer on the corpus texts (with the e5
    "query: " prefix; the pieces of the other prefixes are added too),
  * a single-character piece (with or without the leading U+2581) that is
    Hangul (syllables U+AC00-D7A3, jamo), printable ASCII or punctuation, or
  * the lowest- and the highest-scoring NORMAL piece: SentencePiece derives
    the unknown-character score (min - 10) and the USER_DEFINED score from them,
    so keeping both leaves every kept path's score unchanged.

Why the pruned tokenizer gives the same ids (mapped) on the corpus: its
lattice is a sub-lattice of the unpruned one, except for `<unk>` nodes at
characters whose single-character piece was dropped, and such a node scores
below the dropped piece. The unpruned best path uses only kept pieces, so it
is still the best path. Kept pieces stay in their old relative order
(specials keep ids 0-3), and `embeddings/word_embeddings` rows are gathered
accordingly. Everything is deterministic (sorted ids, no sampling).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import os
import unicodedata
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfkosent.config import EncoderConfig
from tfkosent.convert import sentencepiece_proto as spp

META = "\u2581"

# Relative to the data directory (see /work/shared/data/README.md).
STS_FILES = ("korsts/sts-train.tsv", "korsts/sts-dev.tsv", "korsts/sts-test.tsv",
             "klue-sts/klue_sts_train.csv", "klue-sts/klue-sts-v1.1_dev.json")
# The evaluation sets (the data README: "keep them out of every training mix"). The vocabulary
# is part of the model, so it is never chosen on their text: `prune_korean` refuses them.
# (Until session 27 they were in the default corpus; the shipped vocabulary was then re-pruned
# without them: MODEL_CARD.md, "Vocabulary".)
EVALUATION_FILES = ("korsts/sts-dev.tsv", "korsts/sts-test.tsv", "klue-sts/klue-sts-v1.1_dev.json")
KOREAN_CORPUS_FILES = tuple(f for f in STS_FILES if f not in EVALUATION_FILES) + (
    "klue-nli/klue_nli_train.tsv", "klue-nli/klue-nli-v1.1_dev.json",
    "xnli-ko/xnli.dev.ko.tsv", "xnli-ko/xnli.test.ko.tsv",
    "paraphrase/parakqc_groups.tsv", "paraphrase/stylekqc_groups.train.tsv",
    "paraphrase/sae4k_v1.tsv", "paraphrase/klue_nli_train.backtranslations.tsv",
    "raw/nsmc_reviews.txt.gz", "raw/3i4k_utterances.txt", "raw/chatbot_qa.csv",
    "raw/news_titles.txt", "raw/news_comments.txt")
# Header names of text columns in those files; headerless files use every non-numeric field.
TEXT_COLUMNS = ("sentence", "sentence1", "sentence2", "premise", "hypothesis", "original",
                "backtranslated", "Q", "A")
# Symbols (not Unicode punctuation) common in Korean text, kept as single-character pieces.
COMMON_SYMBOLS = "○●◎◇◆□■△▲▽▼→←↑↓↔★☆♡♥♪※°℃₩～"


# --- corpus readers ------------------------------------------------------------------

def default_data_dir() -> str:
    """$TFKOSENT_DATA_DIR, else `<repository>/../shared/data` in a source checkout that has one
    (`tfkosent.data.find_local_data_dir`); FileNotFoundError otherwise (an installed package
    has no repository next to it: the path had pointed into site-packages' parent)."""
    from tfkosent.data.datasets import ENV_DATA_DIR, find_local_data_dir

    local = find_local_data_dir()
    if local is None:
        raise FileNotFoundError(f"no data directory for the pruning corpus: pass --data-dir DIR "
                                f"(the datasets' directory, e.g. ../shared/data) or set ${ENV_DATA_DIR}")
    return str(local)


def _lines(path: str, max_lines: Optional[int]) -> List[str]:
    """Lines split on '\\n' only (a lone '\\r' inside a text is kept), '\\r\\n' stripped."""
    opener = gzip.open if path.endswith(".gz") else open
    out = []
    with opener(path, "rb") as f:
        for raw in f:
            if max_lines is not None and len(out) >= max_lines:
                break
            out.append(raw.decode("utf-8").rstrip("\n").removesuffix("\r"))
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _columns(rows: List[List[str]]) -> List[str]:
    if not rows:
        return []
    cols = [i for i, name in enumerate(rows[0]) if name in TEXT_COLUMNS]
    if cols:
        return [r[i] for r in rows[1:] for i in cols if i < len(r) and r[i]]
    return [x for r in rows for x in r if x and not _is_number(x)]  # headerless


def read_texts(path: str, max_lines: Optional[int] = None) -> List[str]:
    """The texts of one corpus file, in file order (duplicates kept).

    .tsv: split('\\t') (no CSV quoting); .csv: the csv module; .json: a list of
    records (KLUE); .txt / .txt.gz: one text per line. Table files take the
    columns named in TEXT_COLUMNS, or every non-numeric field if the file has
    no such header. max_lines limits the lines (rows) read.
    """
    name = path[:-3] if path.endswith(".gz") else path
    if name.endswith(".json"):
        with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
            records = json.load(f)[:max_lines]
        return [r[k] for r in records for k in TEXT_COLUMNS if isinstance(r.get(k), str) and r[k]]
    if name.endswith(".tsv"):
        return _columns([line.split("\t") for line in _lines(path, max_lines) if line])
    if name.endswith(".csv"):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            rows = []
            for row in csv.reader(f):
                if max_lines is not None and len(rows) >= max_lines:
                    break
                rows.append(row)
        return _columns(rows)
    return [line for line in _lines(path, max_lines) if line]


def resolve_files(files: Optional[Iterable[str]], data_dir: Optional[str] = None) -> List[str]:
    """Absolute paths; relative names are taken under data_dir (default_data_dir())."""
    from tfkosent.data.datasets import expand_path

    data_dir = default_data_dir() if data_dir is None else str(expand_path(data_dir))
    files = KOREAN_CORPUS_FILES if files is None else files
    return [f if os.path.isabs(f) else os.path.join(data_dir, f) for f in files]


def unique(texts: Iterable[str]) -> List[str]:
    """Distinct texts in first-seen order."""
    return list(dict.fromkeys(texts))


def sts_sentences(data_dir: Optional[str] = None, files: Sequence[str] = STS_FILES) -> List[str]:
    """Every distinct sentence of KorSTS (train/dev/test) and KLUE-STS (train/dev), in file order."""
    return unique(t for p in resolve_files(files, data_dir) for t in read_texts(p))


# --- piece selection -----------------------------------------------------------------

def is_kept_character(c: str) -> bool:
    """Hangul (syllables, jamo, compatibility jamo), printable ASCII, punctuation, COMMON_SYMBOLS."""
    o = ord(c)
    return (0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F
            or 0xA960 <= o <= 0xA97F or 0xD7B0 <= o <= 0xD7FF or 0x21 <= o <= 0x7E
            or unicodedata.category(c).startswith("P") or c in COMMON_SYMBOLS)


def used_piece_mask(processor, texts: Sequence[str], prefix: str = "",
                    extra_texts: Sequence[str] = (), batch: int = 65536) -> np.ndarray:
    """bool [vocab_size]: ids the processor produces on prefix + text, and on extra_texts."""
    used = np.zeros(processor.get_piece_size(), bool)
    for start in range(0, len(texts), batch):
        for ids in processor.encode([prefix + t for t in texts[start:start + batch]]):
            used[ids] = True
    for ids in processor.encode(list(extra_texts)):
        used[ids] = True
    return used


def select_korean_pieces(proto: bytes, texts: Sequence[str], *, prefix: str = "query: ",
                         extra_prefixes: Sequence[str] = ("passage: ",)) -> Tuple[np.ndarray, Dict[str, int]]:
    """Old ids to keep (int64, increasing) and how many each rule contributed.

    texts: the corpus (tokenized as prefix + text). extra_prefixes are tokenized
    alone when no piece has an inner U+2581 (then every U+2581 starts a piece and
    a prefix's pieces never merge with a text's), else as prefix + every text.
    """
    import sentencepiece as spm

    pieces, scores, types = spp.proto_vocab(proto)
    processor = spm.SentencePieceProcessor(model_proto=proto)
    special = np.array([t != spp.NORMAL for t in types])
    used = used_piece_mask(processor, texts, prefix, extra_texts=list(extra_prefixes))
    if any(META in p[1:] for p in pieces):
        for extra in extra_prefixes:
            used |= used_piece_mask(processor, texts, extra)
    single = np.array([t == spp.NORMAL and len(p.removeprefix(META)) == 1
                       and is_kept_character(p.removeprefix(META)) for p, t in zip(pieces, types)])
    normal = np.flatnonzero(~special)
    extremes = np.zeros(len(pieces), bool)
    extremes[[normal[np.argmin(scores[normal])], normal[np.argmax(scores[normal])]]] = True
    keep = special | used | single | extremes
    stats = {"special": int(special.sum()), "used_by_corpus": int((used & ~special).sum()),
             "single_char_only": int((single & ~used & ~special).sum()),
             "score_extremes_only": int((extremes & ~used & ~single).sum()),
             "kept": int(keep.sum()), "total": len(pieces)}
    return np.flatnonzero(keep).astype(np.int64), stats


def prune_vocabulary(config: EncoderConfig, weights: Mapping[str, np.ndarray], proto: bytes,
                     keep_ids: Sequence[int]) -> Tuple[EncoderConfig, Dict[str, np.ndarray], bytes]:
    """Keeps the pieces `keep_ids` (old ids, increasing) and their embedding rows.

    Returns (config with vocab_size = len(keep_ids), weights with
    `embeddings/word_embeddings` float32 [len(keep_ids), hidden] = old rows
    keep_ids (other arrays shared, not copied), serialized re-indexed proto).
    """
    keep = np.asarray(keep_ids, np.int64)
    if np.any(keep >= config.vocab_size):
        raise ValueError("keep_ids exceed the embedding rows (encoder.vocab_size)")
    new_proto = spp.subset_model_proto(proto, keep)
    new_weights = dict(weights)
    new_weights["embeddings/word_embeddings"] = np.ascontiguousarray(
        np.asarray(weights["embeddings/word_embeddings"])[keep])
    return dataclasses.replace(config, vocab_size=len(keep)), new_weights, new_proto


@dataclasses.dataclass
class PruneResult:
    """Output of `prune_korean`; `keep_ids[new_id] == old_id` (int64 [vocab_size])."""

    config: EncoderConfig
    weights: Dict[str, np.ndarray]
    proto: bytes
    keep_ids: np.ndarray
    stats: Dict[str, object]


def prune_korean(config: EncoderConfig, weights: Mapping[str, np.ndarray], proto: bytes,
                 corpus_files: Optional[Sequence[str]] = None, *, data_dir: Optional[str] = None,
                 max_lines_per_file: Optional[int] = None, prefix: str = "query: ",
                 extra_prefixes: Sequence[str] = ("passage: ",)) -> PruneResult:
    """Prunes an encoder + SentencePiece model to the pieces Korean text needs.

    corpus_files: paths (relative ones under data_dir); default KOREAN_CORPUS_FILES, which
      leaves out the evaluation sets (EVALUATION_FILES, refused if given).
    Missing files raise FileNotFoundError. stats holds vocab sizes and parameter
    counts before/after (tfkosent.layers.transformer.count_parameters).
    """
    from tfkosent.layers.transformer import count_parameters

    paths = resolve_files(corpus_files, data_dir)
    evaluation = {os.path.realpath(p) for p in resolve_files(EVALUATION_FILES, data_dir)}
    chosen_on_evaluation = [p for p in paths if os.path.realpath(p) in evaluation]
    if chosen_on_evaluation:
        raise ValueError(f"corpus file(s) {chosen_on_evaluation} are evaluation sets: a vocabulary "
                         f"chosen on their text would leak them into the model")
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"corpus file(s) not found: {missing}")
    per_file = {}
    texts: List[str] = []
    for p in paths:
        t = read_texts(p, max_lines_per_file)
        per_file[os.path.relpath(p, data_dir or default_data_dir())] = len(t)
        texts.extend(t)
    texts = unique(texts)
    keep, selection = select_korean_pieces(proto, texts, prefix=prefix, extra_prefixes=extra_prefixes)
    new_config, new_weights, new_proto = prune_vocabulary(config, weights, proto, keep)
    stats = {"vocab_size_before": config.vocab_size, "vocab_size_after": new_config.vocab_size,
             "params_before": count_parameters(config), "params_after": count_parameters(new_config),
             "selection": selection, "corpus_texts": per_file, "corpus_unique_texts": len(texts),
             "max_lines_per_file": max_lines_per_file, "prefix": prefix,
             "extra_prefixes": list(extra_prefixes)}
    return PruneResult(new_config, new_weights, new_proto, keep, stats)


def reprune_model_dir(model_dir: str, out_dir: str, full_proto: bytes, texts: Sequence[str], *,
                      prefix: str = "query: ", extra_prefixes: Sequence[str] = ("passage: ",),
                      overwrite: bool = False) -> Dict[str, object]:
    """Removes from an already pruned model the pieces the pruning rule would not keep on `texts`.

    For a model whose vocabulary was pruned from `full_proto` (the unpruned SentencePiece model)
    on a larger corpus: the pieces `select_korean_pieces(full_proto, texts)` keeps stay, in
    their order, with their embedding rows; the others go. On `texts` the tokenization is
    unchanged (the kept pieces hold every best path; see the module docstring). Writes
    `out_dir` (weights in the dtype they have) and returns {"removed": [pieces], "kept": n,
    "removed_ids": [old ids]}; the caller records why in the metadata.
    """
    from tfkosent.model_dir import load_model_dir, save_model_dir

    files = load_model_dir(model_dir)
    if files.sentencepiece_proto is None:
        raise ValueError(f"{model_dir}: not a SentencePiece model")
    keep_full, _ = select_korean_pieces(full_proto, texts, prefix=prefix, extra_prefixes=extra_prefixes)
    full_pieces = spp.proto_vocab(full_proto)[0]
    kept_pieces = {full_pieces[i] for i in keep_full}
    pieces, _, types = spp.proto_vocab(files.sentencepiece_proto)
    missing = sorted(kept_pieces - set(pieces))
    if missing:
        raise ValueError(f"{model_dir}: the rule keeps {len(missing)} pieces the model does not have "
                         f"(e.g. {missing[:5]}): it was not pruned from this full model on a superset "
                         f"of these texts")
    keep = np.array([i for i, (p, t) in enumerate(zip(pieces, types))
                     if p in kept_pieces or t != spp.NORMAL], np.int64)
    removed = np.setdiff1d(np.arange(len(pieces)), keep)
    config, weights, proto = prune_vocabulary(files.config.encoder, files.weights,
                                              files.sentencepiece_proto, keep)
    dtype = str(np.asarray(files.weights["embeddings/word_embeddings"]).dtype)
    save_model_dir(out_dir, dataclasses.replace(files.config, encoder=config), weights,
                   sentencepiece_proto=proto, dtype=dtype if dtype in ("float16", "float32") else "float32",
                   overwrite=overwrite)
    return {"removed": [pieces[i] for i in removed], "removed_ids": removed.tolist(), "kept": len(keep)}
