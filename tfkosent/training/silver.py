"""Silver-labelled sentence pairs (Augmented SBERT, Thakur et al. 2021).

A cross-encoder is more accurate than a bi-encoder but cannot embed; it can,
however, label pairs.  Augmented SBERT samples pairs of unlabelled sentences
that are likely to be similar, scores them with a cross-encoder and trains the
bi-encoder on gold + silver pairs.  Here:

  1. sentences: named datasets of `tfkosent.data` (raw corpora with an optional
     limit, "nsmc-reviews:100000"; the sentences of STS/NLI/paraphrase
     datasets), whitespace-normalized and deduplicated.  Every sentence of the
     evaluation sets (KorSTS dev/test, KLUE-STS dev) is removed explicitly, and
     evaluation sets are refused as sources;
  2. candidates (`sample_pairs`): for every sentence its `neighbors` nearest
     neighbours (or those at the ranks `neighbor_ranks`) under a bi-encoder
     (cosine, exact: one encode, then chunked numpy matmuls,
     `nearest_neighbors`) plus `random_pairs` uniformly random
     pairs (the "BM25 / semantic search + random" sampling of the paper),
     deduplicated as unordered pairs, identical sentences never paired; all
     randomness from one seed;
  3. scores (`PairScoreCache`): the cross-encoder's mean score of both orders
     (or, with a bi-encoder as the scorer, the clipped cosine),
     computed in shards written atomically (the shared mechanism of
     `teacher_cache.ShardedCache`), so a killed run continues where it stopped;
  4. `silver.tsv`: header `sentence1, sentence2, score` with scores on the 0-5
     STS scale, readable as `{path: OUT/silver.tsv, format: sts}` (or the plain
     path) in a recipe and by `tfkosent.training.data.load_sts_examples`.

Output directory (`build_silver`):

    candidates.json   the parameters and fingerprints the candidates were made from
    candidates.tsv    sentence1, sentence2 (the pairs to score, in order)
    score_cache/      manifest.json + shard-NNNNN.npy (float32 [shard] scores in [0, 1])
    score_cache_2/    ... of the second scorer, and so on (several --scorer)
    silver.tsv        sentence1, sentence2, score (0-5)
    summary.json      counts

CLI: `tfkosent silver --bi-encoder DIR (--cross-encoder DIR | --scorer DIR [--scorer DIR ...])
--out DIR [--sources ...] [--neighbors K] [--random N] [--resume]`.  `--scorer` takes any model
directory: a bi-encoder scores a pair by its clipped cosine (a strong 12-layer teacher
labelling pairs for a small student), a cross-encoder as above.  Given more than once, the
scorers' scores are averaged on the first one's scale (`combine_scores`): a cross-encoder and
the bi-encoder teacher together label KorSTS dev better than either.
`tfkosent silver-stats A.tsv [B.tsv ...]` (`compare_silver`) prints each file's label count and
mean, and how each later file's labels agree with A's on the pairs both hold.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from tfkosent.data.datasets import DatasetFormatError, atomic_write_bytes
from tfkosent.model_dir import EXPORT_INFO_FILE
from tfkosent.search import top_k_similar
from tfkosent.training.data import read_table
from tfkosent.training.teacher_cache import ShardedCache, TeacherCacheError, teacher_fingerprint

logger = logging.getLogger("tfkosent.training")

DEFAULT_SOURCES = ("nsmc-reviews:100000", "3i4k", "chatbot-qa", "news-comments",
                   "korsts-train", "klue-sts-train")
# Never a source, and every one of their sentences is removed from the candidates.
EVALUATION_SETS = ("korsts-dev", "korsts-test", "klue-sts-dev")
CANDIDATES_META = "candidates.json"
CANDIDATES_FILE = "candidates.tsv"
SCORE_CACHE_DIR = "score_cache"
SILVER_FILE = "silver.tsv"
SUMMARY_FILE = "summary.json"

Pair = Tuple[str, str]


class SilverError(ValueError):
    """Bad sources, or an output directory made for other inputs."""


def _model_dir_argument(value: str, flag: str) -> str:
    """A model directory for `flag`: "default" is the shipped model; an export directory or a
    missing path is a SilverError that says what is needed."""
    from tfkosent.sentence_encoder import resolve_default_model
    path = resolve_default_model(value)
    if not os.path.isfile(os.path.join(path, "config.json")):
        kind = ("an export directory" if os.path.isfile(os.path.join(path, EXPORT_INFO_FILE))
                else "not a model directory")
        raise SilverError(f"{flag} {value}: {kind}; silver needs a tfkosent model directory "
                          f"(config.json, weights.npz), or 'default'")
    return path


def normalize(sentence: str) -> str:
    """Whitespace collapsed (tabs and newlines too: the output is a TSV)."""
    return " ".join(sentence.split())


# --------------------------------------------------------------------------- sentences


def parse_source(spec: str) -> Tuple[str, Optional[int]]:
    """"name" or "name:limit" -> (name, limit)."""
    name, _, limit = spec.partition(":")
    if not limit:
        return name, None
    try:
        value = int(limit)
    except ValueError:
        raise SilverError(f"source {spec!r}: the limit after ':' must be an integer") from None
    if value <= 0:
        raise SilverError(f"source {spec!r}: the limit must be positive")
    return name, value


def evaluation_sentences(data_dir: Optional[str] = None,
                         names: Sequence[str] = EVALUATION_SETS) -> set:
    """Normalized sentences of the evaluation sets (both sides of every pair)."""
    from tfkosent.data.datasets import load_sts
    return {normalize(s) for name in names for e in load_sts(name, data_dir=data_dir)
            for s in (e.sentence1, e.sentence2)}


def collect_sentences(sources: Sequence[str], data_dir: Optional[str] = None,
                      exclude: Iterable[str] = ()) -> List[str]:
    """Unique normalized sentences of `sources` ("name" or "name:limit", registry datasets),
    in source order, without the sentences in `exclude` (normalized before comparing)."""
    from tfkosent.data.datasets import DATASETS
    from tfkosent.training.config import DataSource
    from tfkosent.training.data import sentences_of, read_source

    excluded = {normalize(s) for s in exclude}
    seen: Dict[str, None] = {}
    for spec in sources:
        name, limit = parse_source(spec)
        if name in EVALUATION_SETS:
            raise SilverError(f"source {name!r} is an evaluation set; its sentences are never "
                              f"trained on (silver pairs, pruning statistics)")
        if name not in DATASETS:
            raise SilverError(f"unknown source {name!r}; known: {', '.join(DATASETS)}")
        kind, records = read_source(DataSource(name=name, limit=limit), data_dir)
        sentences = sentences_of(kind, records)
        if limit is not None:
            sentences = sentences[:limit]
        for s in sentences:
            s = normalize(s)
            if s and s not in excluded:
                seen.setdefault(s, None)
    return list(seen)


# --------------------------------------------------------------------------- candidates


def nearest_neighbors(embeddings: np.ndarray, k: int, chunk_size: int = 2048
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top-k cosine neighbours of every row among the other rows.

    embeddings: float [n, d] (normalized here).  Returns (indices int64 [n, k'],
    similarities float32 [n, k']) with k' = min(k, n - 1), best first (ties by
    lower index).  Memory: one [chunk_size, min(n, 100k)] similarity block at a time.
    """
    emb = np.asarray(embeddings, np.float32)
    n = emb.shape[0]
    if min(k, n - 1) <= 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    return top_k_similar(emb, emb, k, exclude_self=True, query_chunk_size=chunk_size)


def neighbor_rank_list(neighbors: int, neighbor_ranks: Optional[Sequence[int]] = None) -> List[int]:
    """The 1-based neighbour ranks paired with each sentence: `neighbor_ranks` when given (e.g.
    [10]: only the tenth nearest, a pair further apart than the nearest ones), else 1..neighbors."""
    if neighbor_ranks is None:
        return list(range(1, neighbors + 1))
    ranks = [int(r) for r in neighbor_ranks]
    bad = [r for r in ranks if r < 1]
    if bad or len(set(ranks)) != len(ranks):
        raise SilverError(f"neighbor_ranks must be distinct ranks >= 1 (1 = the nearest), "
                          f"got {list(neighbor_ranks)}")
    return sorted(ranks)


def sample_pairs(sentences: Sequence[str], embeddings: Optional[np.ndarray], neighbors: int,
                 random_pairs: int, seed: int = 42, chunk_size: int = 2048,
                 neighbor_ranks: Optional[Sequence[int]] = None) -> List[Pair]:
    """Candidate pairs: each sentence with its `neighbors` nearest neighbours, or with its
    neighbours at the 1-based `neighbor_ranks` when given (needs `embeddings`), then
    `random_pairs` random pairs; unordered duplicates and pairs of identical sentences
    dropped.  Deterministic given `seed`."""
    ranks = neighbor_rank_list(neighbors, neighbor_ranks)
    n = len(sentences)
    seen = set()
    pairs: List[Pair] = []

    def add(i: int, j: int) -> bool:
        a, b = sentences[i], sentences[j]
        key = (a, b) if a <= b else (b, a)
        if a == b or key in seen:
            return False
        seen.add(key)
        pairs.append((a, b))
        return True

    if ranks and n > 1:
        if embeddings is None or len(embeddings) != n:
            raise ValueError("neighbour pairs need one embedding per sentence")
        indices, _ = nearest_neighbors(embeddings, max(ranks), chunk_size)
        columns = [r - 1 for r in ranks if r <= indices.shape[1]]   # a pool of n has n - 1 ranks
        for i in range(n):
            for j in indices[i, columns]:
                add(i, int(j))
    if random_pairs > 0 and n > 1:
        rng = np.random.default_rng([seed, 7])
        added, attempts = 0, 0
        while added < random_pairs and attempts < 20 * random_pairs + 100:
            batch = rng.integers(0, n, size=(max(16, 2 * (random_pairs - added)), 2))
            for i, j in batch:
                attempts += 1
                if add(int(i), int(j)):
                    added += 1
                    if added == random_pairs:
                        break
    return pairs


# --------------------------------------------------------------------------- scores


class PairScoreCache(ShardedCache):
    """Cross-encoder scores float32 [n] of `pairs`, sharded and resumable."""

    format = "tfkosent-pair-score-cache"
    ndim = 1
    what = "pair score cache"
    hint = "use another --out directory"
    error = SilverError


def cross_encoder_fingerprint(model_dir: str) -> Dict[str, str]:
    return {"cross_encoder_" + k: v for k, v in teacher_fingerprint(model_dir).items()}


def bi_encoder_pair_scores(model, pairs: Sequence[Pair], batch_size: int = 64) -> np.ndarray:
    """float32 [n] cosine similarity of each pair under a `SentenceEncoder`, clipped to [0, 1]
    (the silver scale; CoSENT only uses the order, and STS-tuned cosines are rarely negative).
    Each distinct sentence is encoded once (neighbour pairs share many)."""
    sentences = list(dict.fromkeys(s for pair in pairs for s in pair))
    index = {s: i for i, s in enumerate(sentences)}
    emb = model.encode(sentences, batch_size=batch_size, show_progress_bar=False)
    a = emb[[index[p[0]] for p in pairs]]
    b = emb[[index[p[1]] for p in pairs]]
    return np.clip(np.sum(a * b, axis=1), 0.0, 1.0).astype(np.float32)


def score_cache_dir(index: int) -> str:
    """The score cache of the index-th scorer (1-based): score_cache, score_cache_2, ..."""
    return SCORE_CACHE_DIR if index == 1 else f"{SCORE_CACHE_DIR}_{index}"


def score_pairs(pairs: Sequence[Pair], scorer_dir: str, cache_dir: str,
                shard_size: int = 8192, batch_size: int = 64, progress: bool = False,
                model=None) -> np.ndarray:
    """Scores in [0, 1] of `pairs`, via the cache in `cache_dir`.

    scorer_dir: a cross-encoder (score: the mean of both orders) or a bi-encoder (score: the
    clipped cosine, `bi_encoder_pair_scores`), told apart by `is_cross_encoder_dir`.
    `model`: that directory already loaded (else loaded when needed)."""
    from tfkosent.cross_encoder import is_cross_encoder_dir
    cross = is_cross_encoder_dir(scorer_dir)
    fingerprint = (cross_encoder_fingerprint(scorer_dir) if cross else
                   {"bi_encoder_scorer_" + k: v for k, v in teacher_fingerprint(scorer_dir).items()})
    cache = PairScoreCache(cache_dir, [tuple(p) for p in pairs], fingerprint, shard_size)
    if not cache.missing_shards():
        return cache.load()
    if cross:
        from tfkosent.cross_encoder import CrossEncoder
        model = model or CrossEncoder.from_model_dir(scorer_dir)
        compute = lambda chunk: model.predict(chunk, batch_size=batch_size, symmetric=True)  # noqa: E731
    else:
        from tfkosent.sentence_encoder import SentenceEncoder
        model = model or SentenceEncoder.load(scorer_dir)
        compute = lambda chunk: bi_encoder_pair_scores(model, chunk, batch_size)  # noqa: E731
    return cache.build(compute, batch_size=batch_size * 16, progress=progress)


def combine_scores(scores: Sequence[np.ndarray]) -> np.ndarray:
    """float32 [n] in [0, 1]: the mean of several scorers' scores of the same n pairs, each later
    scorer first mapped onto the first one's scale by a least-squares line over these pairs.

    Why map: a cross-encoder trained on the 0-5 gold spreads its scores over [0, 1], while an
    STS-tuned bi-encoder's cosines sit in about [0.6, 1]; CoSENT ranks silver pairs against gold
    pairs in the same batch, so the mixed label must stay on the first scorer's (the gold) scale.
    Why mix: the two kinds of scorer err differently. On KorSTS dev the default model's
    cross-encoder (84.39 Spearman) and its bi-encoder teacher (84.78) average to 85.67
    (`python benchmarks/silver_labellers.py`, session 21).
    """
    scores = [np.asarray(s, dtype=np.float64) for s in scores]
    if not scores:
        raise SilverError("combine_scores: no scores")
    if any(s.shape != scores[0].shape for s in scores):
        raise SilverError(f"combine_scores: scorers scored different numbers of pairs "
                          f"({[s.shape[0] for s in scores]})")
    mapped = [scores[0]]
    for i, s in enumerate(scores[1:], start=2):
        if s.size < 2 or np.ptp(s) == 0.0:
            raise SilverError(f"combine_scores: scorer {i} gave the same score to every pair; "
                              f"it cannot be mapped onto scorer 1's scale")
        slope, intercept = np.polyfit(s, scores[0], 1)
        mapped.append(slope * s + intercept)
    return np.clip(np.mean(mapped, axis=0), 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- files


def _write_tsv(path: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def write_sts_tsv(path: str, pairs: Sequence[Pair], scores: np.ndarray, scale: float = 5.0) -> str:
    """STS-format TSV (sentence1, sentence2, score = scale * score), written atomically."""
    scores = np.asarray(scores, np.float64)
    if len(scores) != len(pairs):
        raise ValueError(f"{len(scores)} scores for {len(pairs)} pairs")
    _write_tsv(path, ("sentence1", "sentence2", "score"),
               ((normalize(a), normalize(b), f"{scale * s:.4f}") for (a, b), s in zip(pairs, scores)))
    return os.path.abspath(path)


def _read_pairs(path: str) -> List[Pair]:
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    return [tuple(line.split("\t")) for line in lines[1:] if line]


def read_silver_tsv(path: str) -> Dict[Pair, float]:
    """{(sentence1, sentence2): score} of a silver file in the `sts` data format (`silver.tsv`).

    Parsed by the training data reader (`tfkosent.training.data.read_table`), so a malformed
    line is an error naming the file and line exactly as in training.  On top of that, a pair
    written twice (in either order) is an error naming its second line.  A pair is keyed as
    written; `compare_silver` matches pairs in either order.
    """
    try:
        _, rows = read_table(Path(path), "sts")
    except DatasetFormatError as e:
        raise SilverError(str(e)) from None
    scores: Dict[Pair, float] = {}
    for line_no, row in rows:
        pair = (row["sentence1"], row["sentence2"])
        if pair in scores or pair[::-1] in scores:
            raise SilverError(f"{path}:{line_no}: the pair is already on an earlier line")
        scores[pair] = float(row["score"])
    return scores


def compare_silver(paths: Sequence[str]) -> dict:
    """Label statistics of silver files, and how the labels of each later file agree with the
    first file's on the pairs they share (either order).

    Returns {"files": [{path, num_pairs, mean_score, std_score}], "against_first":
    [{path, shared_pairs, pearson, spearman, mean_abs_diff}]} (scores on the files' 0-5 scale).
    """
    from scipy import stats

    tables = [read_silver_tsv(p) for p in paths]
    files = []
    for path, table in zip(paths, tables):
        values = np.fromiter(table.values(), np.float64, len(table))
        files.append({"path": path, "num_pairs": len(table),
                      "mean_score": float(values.mean()) if len(values) else float("nan"),
                      "std_score": float(values.std()) if len(values) else float("nan")})
    against = []
    first = tables[0]
    for path, table in zip(paths[1:], tables[1:]):
        a, b = [], []
        for pair, score in first.items():
            other = table.get(pair, table.get(pair[::-1]))
            if other is not None:
                a.append(score)
                b.append(other)
        a, b = np.asarray(a), np.asarray(b)
        row = {"path": path, "shared_pairs": len(a)}
        if len(a) >= 2:
            row.update(pearson=float(stats.pearsonr(a, b)[0]), spearman=float(stats.spearmanr(a, b)[0]),
                       mean_abs_diff=float(np.abs(a - b).mean()))
        against.append(row)
    return {"files": files, "against_first": against}


def silver_stats_cli(args) -> int:
    """Entry point of `tfkosent silver-stats FILE [FILE ...]`."""
    import sys
    from tfkosent.training.cli import EXIT_ERROR
    try:
        result = compare_silver(args.files)
    except (SilverError, FileNotFoundError) as e:
        print(f"tfkosent silver-stats: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    for row in result["files"]:
        print(f"{row['path']}: {row['num_pairs']} pairs, mean label {row['mean_score']:.2f} "
              f"(std {row['std_score']:.2f}) of 5")
    for row in result["against_first"]:
        if "pearson" in row:
            print(f"{row['path']} vs {args.files[0]}: {row['shared_pairs']} shared pairs, Pearson "
                  f"{row['pearson']:.3f}, Spearman {row['spearman']:.3f}, mean |difference| "
                  f"{row['mean_abs_diff']:.2f}")
        else:
            print(f"{row['path']} vs {args.files[0]}: {row['shared_pairs']} shared pairs (too few to compare)")
    return 0


def build_silver(bi_encoder: str, scorer: Union[str, Sequence[str]], out_dir: str,
                 sources: Optional[Sequence[str]] = None, neighbors: int = 3,
                 random_pairs: int = 0, seed: int = 42, data_dir: Optional[str] = None,
                 resume: bool = False, batch_size: int = 64, shard_size: int = 8192,
                 exclude_sets: Optional[Sequence[str]] = None, progress: bool = False,
                 neighbor_ranks: Optional[Sequence[int]] = None) -> dict:
    """Writes OUT_DIR/silver.tsv (see the module docstring); returns the summary dict.

    Without `resume`, an output directory that already holds candidates is refused;
    with it, the candidates are reused (after checking they were made with the same
    parameters) and only the missing score shards are computed.
    scorer: the model directory that labels the pairs: a cross-encoder (Augmented SBERT) or a
    bi-encoder (e.g. the 12-layer teacher labelling pairs for a student; `score_pairs`); or a
    list of them, whose scores `combine_scores` averages on the first one's scale (each scorer
    has its own score cache: score_cache/, score_cache_2/, ...).
    sources: default `DEFAULT_SOURCES`; exclude_sets: the evaluation sets whose sentences
    are removed, default all of `EVALUATION_SETS`.  neighbor_ranks: pair each sentence with
    its neighbours at these 1-based ranks instead of its `neighbors` nearest.
    """
    from tfkosent.validation import int_at_least, positive_int

    # Before the pool is loaded and encoded (minutes), not when the first use fails.
    int_at_least(neighbors, "neighbors (--neighbors)", 0)
    int_at_least(random_pairs, "random_pairs (--random)", 0)
    positive_int(shard_size, "shard_size (--shard-size)")
    positive_int(batch_size, "batch_size (--batch-size)")
    sources = list(DEFAULT_SOURCES if sources is None else sources)
    exclude_sets = list(EVALUATION_SETS if exclude_sets is None else exclude_sets)
    out_dir = os.path.abspath(out_dir)
    meta_path = os.path.join(out_dir, CANDIDATES_META)
    pairs_path = os.path.join(out_dir, CANDIDATES_FILE)
    ranks = neighbor_rank_list(neighbors, neighbor_ranks)
    if not ranks and random_pairs == 0:
        raise SilverError("no candidate pairs to label: neighbors is 0 (--neighbors 0) and "
                          "random_pairs is 0 (--random 0); pair neighbours, add random pairs, "
                          "or both")
    params = {"sources": list(sources), "neighbors": neighbors, "random_pairs": random_pairs,
              "seed": seed, "excluded": list(exclude_sets),
              "bi_encoder": teacher_fingerprint(bi_encoder) if ranks else None}
    if neighbor_ranks is not None:   # only then: candidates made before this option still resume
        params.update(neighbors=None, neighbor_ranks=ranks)   # the ranks replace `neighbors`
    have = os.path.isfile(meta_path) and os.path.isfile(pairs_path)
    if resume and os.path.isdir(out_dir):   # what a killed run's atomic writes left behind
        from tfkosent.model_dir import remove_interrupted_writes
        remove_interrupted_writes(out_dir, [CANDIDATES_META, CANDIDATES_FILE, SILVER_FILE])
    if have and not resume:
        raise FileExistsError(f"{out_dir} already holds silver candidates; pass --resume to "
                              f"continue, or choose another --out")
    if have:
        with open(meta_path, encoding="utf-8") as f:
            saved = json.load(f)
        changed = sorted(k for k in params if saved.get(k) != params[k])
        if changed:
            raise SilverError(f"cannot resume {out_dir}: {', '.join(changed)} changed since the "
                              f"candidates were made; use another --out")
        pairs = _read_pairs(pairs_path)
        logger.info("silver: resuming with %d candidate pairs", len(pairs))
    else:
        for name in exclude_sets:
            if name not in EVALUATION_SETS:
                raise SilverError(f"{name!r} is not an evaluation set ({', '.join(EVALUATION_SETS)})")
        excluded = evaluation_sentences(data_dir, exclude_sets)
        sentences = collect_sentences(sources, data_dir, exclude=excluded)
        logger.info("silver: %d unique sentences from %s (%d evaluation sentences excluded)",
                    len(sentences), ", ".join(sources), len(excluded))
        embeddings = None
        if ranks:
            from tfkosent.sentence_encoder import SentenceEncoder
            encoder = SentenceEncoder.load(bi_encoder)
            embeddings = encoder.encode(sentences, batch_size=batch_size, normalize_embeddings=True,
                                        show_progress_bar=progress)
        pairs = sample_pairs(sentences, embeddings, neighbors, random_pairs, seed,
                             neighbor_ranks=neighbor_ranks)
        if not pairs:
            raise SilverError("no candidate pairs (fewer than 2 distinct sentences?)")
        os.makedirs(out_dir, exist_ok=True)
        _write_tsv(pairs_path, ("sentence1", "sentence2"), pairs)
        # the meta last: candidates exist only once both files do
        atomic_write_bytes(meta_path, (json.dumps(dict(params, num_sentences=len(sentences),
                                                       num_pairs=len(pairs)), indent=2)
                                       + "\n").encode("utf-8"))
        logger.info("silver: %d candidate pairs", len(pairs))
    scorers = [scorer] if isinstance(scorer, str) else list(dict.fromkeys(scorer))
    if not scorers:
        raise SilverError("no scorer given")
    each = [score_pairs(pairs, path, os.path.join(out_dir, score_cache_dir(i)), shard_size,
                        batch_size, progress=progress) for i, path in enumerate(scorers, start=1)]
    scores = combine_scores(each) if len(each) > 1 else each[0]
    silver = write_sts_tsv(os.path.join(out_dir, SILVER_FILE), pairs, scores)
    from tfkosent.cross_encoder import is_cross_encoder_dir
    kinds = ["cross-encoder" if is_cross_encoder_dir(p) else "bi-encoder" for p in scorers]
    summary = {"silver": silver, "num_pairs": len(pairs), "mean_score": float(5.0 * scores.mean()),
               "scorer": os.path.abspath(scorers[0]), "scorer_kind": kinds[0],
               "scorers": [os.path.abspath(p) for p in scorers], "scorer_kinds": kinds,
               "bi_encoder": os.path.abspath(bi_encoder), **{k: params[k] for k in
                                                             ("sources", "neighbors", "neighbor_ranks",
                                                              "random_pairs", "seed", "excluded")
                                                             if k in params}}
    atomic_write_bytes(os.path.join(out_dir, SUMMARY_FILE),
                       (json.dumps(summary, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return summary


def silver_cli(args) -> int:
    """Entry point of `tfkosent silver` (arguments: see `tfkosent.cli`)."""
    import sys
    from tfkosent.data.datasets import DownloadError
    from tfkosent.training.cli import EXIT_ERROR, configure_logging
    from tfkosent.training.data import DataError

    from tfkosent.training.stop import Interrupted, stopped_message, stops_anywhere

    configure_logging()
    sources = [s for spec in args.sources for s in spec.split(",") if s] if args.sources else None
    try:
        scorers = [args.cross_encoder] if args.cross_encoder else list(args.scorer)
        bi_encoder, scorers = _model_dir_argument(args.bi_encoder, "--bi-encoder"), [
            _model_dir_argument(s, "--scorer") for s in scorers]
        with stops_anywhere():
            summary = build_silver(bi_encoder, scorers, args.out, sources=sources,
                                   neighbors=args.neighbors, neighbor_ranks=args.neighbor_ranks,
                                   random_pairs=args.random, seed=args.seed, data_dir=args.data_dir,
                                   resume=args.resume, batch_size=args.batch_size,
                                   shard_size=args.shard_size, progress=sys.stderr.isatty())
    except (Interrupted, KeyboardInterrupt) as e:   # completed shards are kept
        message, status = stopped_message("tfkosent silver", e)
        print(message, file=sys.stderr)
        return status
    except (SilverError, TeacherCacheError, DataError, DownloadError, FileNotFoundError,
            FileExistsError) as e:
        print(f"tfkosent silver: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    scored_by = (f" (the mean of {len(summary['scorers'])} scorers)" if len(summary["scorers"]) > 1
                 else "")
    print(f"wrote {summary['num_pairs']} silver pairs (mean score {summary['mean_score']:.2f} / 5) "
          f"to {summary['silver']}{scored_by}")
    return 0
