"""Semantic search: the corpus sentences nearest to each query, by embedding similarity.

    >>> from tfkosent import SentenceEncoder
    >>> model = SentenceEncoder.load()
    >>> corpus = ["한 남자가 음식을 먹는다.", "그 여자가 아이를 돌본다.", "한 남자가 말을 탄다."]
    >>> model.search(["남자가 뭔가를 먹고 있다."], corpus, top_k=2)   # the shipped model
    [[{'corpus_id': 0, 'score': 0.905...}, {'corpus_id': 2, 'score': 0.543...}]]

`semantic_search` takes embeddings and returns, per query, `{"corpus_id", "score"}` hits best
first: the same shape as sentence-transformers' `util.semantic_search`, so code written for that
carries over.  The search is exact (a matrix product per chunk, no approximate index); memory
holds one [query_chunk_size, corpus_chunk_size] block of scores at a time.

`paraphrase_mining` finds the most similar pairs within one set (near-duplicates, paraphrases);
`community_detection` groups a set into clusters of sentences close to one centre (deduplication,
topics), as sentence-transformers' `util.community_detection` does.
`top_k_similar` is the array form underneath, also used to pick the silver pairs' neighbours
(`tfkosent.training.silver.nearest_neighbors`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tfkosent.validation import check_finite_rows, cosine_value, is_extension_float, positive_int

SCORE_FUNCTIONS = ("cosine", "dot")


def _as_matrix(x, name: str) -> np.ndarray:
    what = f"{name} must be a float [n, dim] array (or one [dim] vector)"
    if x is None or isinstance(x, (dict, set, frozenset, str, bytes)):
        raise TypeError(f"{what}, got {type(x).__name__}")
    try:
        raw = np.asarray(x)
    except ValueError:  # NumPy: "setting an array element with a sequence ... inhomogeneous"
        raise ValueError(f"{what}; its rows differ in length") from None
    if raw.dtype.kind not in "biuf" and not is_extension_float(raw.dtype):
        raise TypeError(f"{what} of numbers, got {raw.dtype.name} values "
                        f"(e.g. {raw.reshape(-1)[0]!r})" if raw.size else f"{what} of numbers")
    with np.errstate(over="ignore"):
        array = raw.astype(np.float32)
    if raw.dtype.kind == "f" and raw.ndim in (1, 2):
        overflow = np.isfinite(raw) & ~np.isfinite(array)
        if overflow.any():
            row = int(np.flatnonzero(overflow.reshape(len(raw), -1).any(axis=1))[0]) if raw.ndim == 2 else 0
            raise ValueError(f"{name}[{row}] has a value that overflows float32 (beyond "
                             f"{np.finfo(np.float32).max:.3g} in magnitude)")
    if array.ndim == 1 and array.size == 0:
        raise ValueError(f"{name}: none given (an empty list); pass a [0, dim] array for none")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a [n, dim] array (or one [dim] vector), got shape "
                         f"{np.shape(x)}")
    check_finite_rows(array, name)
    return array


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _top_columns(block: np.ndarray, k: int) -> np.ndarray:
    """Column indices int64 [rows, k] of each row's k largest values, in column order; of equal
    values at the k-th place the lowest columns (argpartition alone would pick any of them, and
    a corpus with repeated sentences has exact ties)."""
    kth = -np.partition(-block, k - 1, axis=1)[:, k - 1:k]                   # [rows, 1]
    above = block > kth
    at = block == kth
    wanted = (k - above.sum(axis=1))[:, None]
    chosen = above | (at & (np.cumsum(at, axis=1) <= wanted))               # exactly k per row
    return np.nonzero(chosen)[1].reshape(len(block), k).astype(np.int64)


def top_k_similar(queries, corpus, k: int, score_function: str = "cosine",
                  exclude_self: bool = False, query_chunk_size: int = 1024,
                  corpus_chunk_size: int = 100_000) -> Tuple[np.ndarray, np.ndarray]:
    """The `k` corpus rows most similar to each query row, exactly.

    Args:
      queries: float [q, d] (or one [d] vector).
      corpus: float [n, d].
      k: hits per query; fewer when the corpus has fewer rows (k' = min(k, n), or
        min(k, n - 1) with `exclude_self`).
      score_function: "cosine" (rows normalized here) or "dot" (as given).
      exclude_self: queries and corpus are the same rows; row i never returns itself.
      query_chunk_size, corpus_chunk_size: the score block computed at a time.
    Returns:
      (indices int64 [q, k'], scores float32 [q, k']), best first; equal scores in
      corpus order (lower index first). Scores computed with different chunk sizes may
      differ by a float32 rounding (the matrix product sums in another order), which can
      reorder near-ties, e.g. the rows of a corpus that repeats a sentence.
    """
    if score_function not in SCORE_FUNCTIONS:
        raise ValueError(f"score_function must be one of {SCORE_FUNCTIONS}, got {score_function!r}")
    k = positive_int(k, "k")
    query_chunk_size = positive_int(query_chunk_size, "query_chunk_size")
    corpus_chunk_size = positive_int(corpus_chunk_size, "corpus_chunk_size")
    queries = _as_matrix(queries, "query embeddings")
    corpus = _as_matrix(corpus, "corpus embeddings")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"query embeddings have dim {queries.shape[1]} but corpus embeddings have "
                         f"dim {corpus.shape[1]}")
    if exclude_self and len(queries) != len(corpus):
        raise ValueError(f"exclude_self needs the queries to be the corpus rows, got {len(queries)} "
                         f"queries and {len(corpus)} corpus rows")
    if score_function == "cosine":
        queries, corpus = _normalized(queries), _normalized(corpus)
    n = len(corpus)
    k = min(k, n - 1 if exclude_self else n)
    indices = np.zeros((len(queries), max(k, 0)), np.int64)
    scores = np.zeros((len(queries), max(k, 0)), np.float32)
    if k <= 0:
        return indices, scores
    for q0 in range(0, len(queries), query_chunk_size):
        block_queries = queries[q0:q0 + query_chunk_size]
        rows = np.arange(len(block_queries))
        best_idx = np.zeros((len(rows), 0), np.int64)
        best_sim = np.zeros((len(rows), 0), np.float32)
        for c0 in range(0, n, corpus_chunk_size):
            block = block_queries @ corpus[c0:c0 + corpus_chunk_size].T          # [qc, cc]
            if exclude_self:
                own = q0 + rows - c0                                              # row i's column
                inside = (own >= 0) & (own < block.shape[1])
                block[rows[inside], own[inside]] = -np.inf
            top = _top_columns(block, min(k, block.shape[1]))
            best_idx = np.concatenate([best_idx, top + c0], axis=1)
            best_sim = np.concatenate([best_sim, np.take_along_axis(block, top, axis=1)], axis=1)
            order = np.lexsort((best_idx, -best_sim), axis=1)[:, :k]              # by score, then index
            best_idx = np.take_along_axis(best_idx, order, axis=1)
            best_sim = np.take_along_axis(best_sim, order, axis=1)
        indices[q0:q0 + len(rows)] = best_idx
        scores[q0:q0 + len(rows)] = best_sim
    return indices, scores


def semantic_search(query_embeddings, corpus_embeddings, top_k: int = 10,
                    score_function: str = "cosine", query_chunk_size: int = 1024,
                    corpus_chunk_size: int = 100_000) -> List[List[Dict[str, Union[int, float]]]]:
    """For each query, its `top_k` corpus hits `{"corpus_id": int, "score": float}`, best first.

    query_embeddings: float [q, d] (or one [d] vector, which still gives a list of one list);
    corpus_embeddings: float [n, d]; NumPy arrays, tf.Tensors or nested lists of numbers (bool,
    int or float; bfloat16 and float8 included), computed in float32.  `top_k`: a positive int (fewer hits
    when n is smaller).  `score_function` "cosine" or "dot"; equal scores in corpus order (but
    see `top_k_similar`: other chunk sizes may round scores differently).

    Raises ValueError for a bad `top_k`, chunk size or `score_function`, dims that differ, a
    row with a NaN or infinity (or a value beyond float32), and TypeError for non-numeric input.
    """
    top_k = positive_int(top_k, "top_k")
    indices, scores = top_k_similar(query_embeddings, corpus_embeddings, top_k, score_function,
                                    query_chunk_size=query_chunk_size,
                                    corpus_chunk_size=corpus_chunk_size)
    return [[{"corpus_id": int(i), "score": float(s)} for i, s in zip(row_i, row_s)]
            for row_i, row_s in zip(indices, scores)]


def paraphrase_mining(embeddings, top_k: int = 10, max_pairs: Optional[int] = None,
                      score_function: str = "cosine", chunk_size: int = 1024
                      ) -> List[Tuple[float, int, int]]:
    """The most similar pairs within one set of sentences: `(score, i, j)` with i < j, best
    first (ties by i, then j), each pair once.

    embeddings: float [n, d] (the dtypes `semantic_search` takes); fewer than 2 rows give [].
    Returns [(score float, i int, j int)].  Each row's `top_k` nearest other rows are the
    candidates (so a pair is found when either side ranks the other in its top k); `max_pairs`
    (None: all) keeps the best that many; `top_k`, `max_pairs` and `chunk_size` must be
    positive ints and `score_function` "cosine" or "dot" (ValueError).  The shape of
    sentence-transformers' `util.paraphrase_mining` (which takes the model and sentences; here
    `SentenceEncoder.paraphrase_mining` does).  Memory: the candidates ([n, top_k]) and one
    [chunk_size, min(n, 100k)] block of scores.
    """
    embeddings = _as_matrix(embeddings, "embeddings")
    top_k = positive_int(top_k, "top_k")
    if max_pairs is not None:
        max_pairs = positive_int(max_pairs, "max_pairs")
    # checked here, not only in top_k_similar: it is skipped below 2 rows, and names its
    # own argument (query_chunk_size)
    chunk_size = positive_int(chunk_size, "chunk_size")
    if score_function not in SCORE_FUNCTIONS:
        raise ValueError(f"score_function must be one of {SCORE_FUNCTIONS}, got {score_function!r}")
    if len(embeddings) < 2:
        return []
    indices, scores = top_k_similar(embeddings, embeddings, top_k, score_function,
                                    exclude_self=True, query_chunk_size=chunk_size)
    rows = np.repeat(np.arange(len(embeddings)), indices.shape[1])
    cols = indices.ravel()
    first, second = np.minimum(rows, cols), np.maximum(rows, cols)
    pair_scores = scores.ravel()
    # Each unordered pair once (score(i, j) and score(j, i) are the same product); then best
    # first, ties by (i, j).
    _, unique = np.unique(first * len(embeddings) + second, return_index=True)
    first, second, pair_scores = first[unique], second[unique], pair_scores[unique]
    order = np.lexsort((second, first, -pair_scores))[:max_pairs]
    return [(float(pair_scores[o]), int(first[o]), int(second[o])) for o in order]


# Cosines are float32: a row and its exact duplicate can score 0.9999993, not 1. A member may
# fall this far under the threshold, so that rounding never splits duplicates (threshold 1).
COSINE_TOLERANCE = 1e-5


def community_detection(embeddings, threshold: float = 0.85, min_community_size: int = 10,
                        batch_size: int = 1024) -> List[List[int]]:
    """Clusters of rows that are all within cosine `threshold` of one centre row.

    The algorithm of sentence-transformers' `util.community_detection`, made deterministic:
    every row whose cosine to row c is >= `threshold` (c itself included) is a candidate
    community of c when it holds at least `min_community_size` rows. Candidates are taken
    largest first (ties: lower centre first); each loses the rows an earlier one took, and is
    kept only if `min_community_size` rows remain. So a row is in at most one community, and
    rows near no dense group are in none.

    Args:
      embeddings: float [n, d] (the dtypes `semantic_search` takes); normalized here.
      threshold: the cosine a member needs to its centre, a number in [-1, 1]; cosines are
        float32, and a member may be `COSINE_TOLERANCE` (1e-5) under it, so exact duplicates
        meet a threshold of 1. The scale depends on the model: 0.85 (sentence-transformers'
        default is 0.75) groups gold paraphrase groups best with the default model, 0.95
        with zero-shot e5-small, whose cosines all sit high (BENCHMARKS.md §9).
      min_community_size: a positive int; 1 puts every row in some community. As in
        sentence-transformers, it is capped at n, so fewer than `min_community_size` rows
        can still form one community.
      batch_size: rows scored at a time (a positive int); memory holds a float32
        [batch_size, n] block of cosines, and every candidate's rows (an int64 per member:
        at a threshold that most rows pass, about n * n, as in sentence-transformers).
    Returns:
      [[int row, ...], ...], largest community first (ties: the one found first). Within one,
      its centre comes first when it kept it, then the others by cosine to the centre,
      highest first (ties: lower row first); a centre taken by an earlier community leaves
      its members listed in that order without it. [] when no community is dense enough.
    Raises:
      ValueError for a bad `threshold`, `min_community_size` or `batch_size`, or a row with a
      NaN or infinity; TypeError for non-numeric input.
    """
    return [members for _, members in
            communities_with_centres(embeddings, threshold, min_community_size, batch_size)]


def communities_with_centres(embeddings, threshold: float = 0.85, min_community_size: int = 10,
                             batch_size: int = 1024) -> List[Tuple[int, List[int]]]:
    """`community_detection`'s communities as (centre row, [member rows]): the centre is the
    row all members are within `threshold` of, also when an earlier community took it (then
    it is not among the members)."""
    embeddings = _as_matrix(embeddings, "embeddings")
    threshold = cosine_value(threshold, "threshold")
    min_community_size = min(positive_int(min_community_size, "min_community_size"),
                             max(len(embeddings), 1))
    batch_size = positive_int(batch_size, "batch_size")
    unit = _normalized(embeddings)
    reach = threshold - COSINE_TOLERANCE
    candidates = []
    for start in range(0, len(unit), batch_size):
        block = unit[start:start + batch_size] @ unit.T                        # [b, n] cosines
        rows = np.arange(len(block))
        # A centre is always its own member, first: a zero row's self-cosine is 0.
        block[rows, start + rows] = np.inf
        dense = np.flatnonzero((block >= reach).sum(axis=1) >= min_community_size)
        for row in dense:
            members = np.flatnonzero(block[row] >= reach)
            order = np.lexsort((members, -block[row, members]))             # by cosine, then row
            candidates.append((start + int(row), members[order]))
    candidates.sort(key=lambda c: len(c[1]), reverse=True)                 # stable: centre order
    taken = np.zeros(len(unit), bool)
    communities = []
    for centre, members in candidates:
        kept = members[~taken[members]]
        if len(kept) >= min_community_size:
            taken[kept] = True
            communities.append((centre, [int(i) for i in kept]))
    communities.sort(key=lambda c: len(c[1]), reverse=True)
    return communities


# --------------------------------------------------------------------------- the CLI


def read_corpus(path: str) -> Tuple[List[str], List[int]]:
    """A corpus file's sentences, one per line (UTF-8, optionally .gz), and their 1-based line
    numbers.  Blank lines are skipped (so a hit names its line, not its index); a line that is
    not valid UTF-8 raises `DatasetFormatError` naming the file and line."""
    from tfkosent.data.datasets import iter_lines
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: a directory, not a corpus file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such corpus file")
    sentences, lines = [], []
    for lineno, text in iter_lines(Path(path)):
        if text.strip():
            sentences.append(text)
            lines.append(lineno)
    if not sentences:
        raise ValueError(f"{path}: the corpus has no sentences (every line is blank)")
    return sentences, lines


def _model_files_digest(model_path: str) -> str:
    """sha256 over (relative path, size, mtime) of every file of a model or export directory:
    cheap, and changes when the model is rewritten in place."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(model_path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            stat = os.stat(full)
            digest.update(f"{os.path.relpath(full, model_path)}\t{stat.st_size}\t"
                          f"{stat.st_mtime_ns}\n".encode("utf-8"))
    return digest.hexdigest()


def corpus_fingerprint(sentences: Sequence[str], model_path: str) -> Dict[str, object]:
    """What a saved corpus-embeddings file was made from: the model (its path and files) and
    the sentences (count and sha256)."""
    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update(sentence.encode("utf-8"))
        digest.update(b"\n")
    return {"model": os.path.abspath(model_path), "model_files": _model_files_digest(model_path),
            "sentences": len(sentences), "sha256": digest.hexdigest()}


def _read_cached_embeddings(path: str, meta_path: str, fingerprint: Dict[str, object],
                            shape: Tuple[int, int]) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """(embeddings float32 `shape`, None) from a cache that matches `fingerprint`, else (None,
    why it was not used, naming the file); (None, None) when there is no cache at `path`."""
    if not os.path.isfile(path):
        return None, None
    try:
        with open(meta_path, encoding="utf-8") as f:
            saved = json.load(f)
    except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, f"{meta_path} was unreadable: {e}"
    if saved != fingerprint:
        return None, f"{meta_path} did not match this corpus and model"
    try:
        embeddings = np.load(path)
    except (ValueError, OSError, EOFError) as e:
        return None, f"{path} was unreadable: {e}"
    if not isinstance(embeddings, np.ndarray):  # an .npz archive
        embeddings.close()
        return None, f"{path} was unreadable: not one .npy array"
    if embeddings.shape != shape:
        return None, f"{path} holds shape {embeddings.shape}, not {shape}"
    return embeddings.astype(np.float32, copy=False), None


def cached_corpus_embeddings(model, sentences: Sequence[str], path: Optional[str],
                             batch_size: int = 64,
                             on_replace: Optional[Callable[[str], None]] = None,
                             describe: Optional[Callable[[int], str]] = None,
                             ) -> Tuple[np.ndarray, bool]:
    """The corpus embeddings, read from `path` (.npy, with its fingerprint in PATH.json) when it
    was made from the same model and sentences, else encoded and, with `path`, written there
    atomically.  Returns (embeddings float32 [n, d], whether they were read).

    A cache that does not match, or that cannot be read (PATH or PATH.json corrupt or
    truncated), is stale: encoded again and rewritten, after `on_replace` is called with
    why, naming the file (e.g. "PATH.json was unreadable: Expecting value: ...").

    describe(i) names sentence i in the encoder's warnings (e.g. "corpus.txt:12"; default
    `corpus[i]`).

    A `path` that exists without PATH.json was not written here (e.g. `tfkosent encode
    --output`): it is never overwritten; FileExistsError says so.
    """
    fingerprint = corpus_fingerprint(sentences, model.path)
    meta_path = f"{path}.json" if path else None
    if path and os.path.exists(path) and not os.path.isfile(meta_path):
        raise FileExistsError(f"{path} exists but {meta_path} does not, so it was not written as "
                              f"--corpus-embeddings and is not overwritten; remove it or choose "
                              f"another path")
    if path:
        embeddings, why = _read_cached_embeddings(path, meta_path, fingerprint,
                                                  (len(sentences), model.embedding_dim))
        if embeddings is not None:
            return embeddings, True
        if why and on_replace is not None:
            on_replace(why)
    embeddings = model._encode(list(sentences), batch_size=batch_size, normalize_embeddings=True,
                               argument="corpus", stacklevel=2, describe=describe)
    if path:
        # The fingerprint file is marked "writing" first and gets the fingerprint last: a run
        # killed in between leaves embeddings whose PATH.json matches no corpus, which the
        # next run encodes again (and may overwrite) instead of trusting.
        from tfkosent.evaluation.sts import write_json  # atomic

        write_json({"status": "writing"}, meta_path)
        tmp = f"{path}.tmp{os.getpid()}.npy"
        np.save(tmp, embeddings)
        os.replace(tmp, path)
        write_json(fingerprint, meta_path)
    return embeddings, False


def _cli_corpus(args):
    """(model, corpus sentences, their line numbers, embeddings float32 [n, d]) for `search` and
    `communities`: --corpus read, --corpus-embeddings reused or written (and said so on
    stderr)."""
    import sys

    from tfkosent.sentence_encoder import SentenceEncoder

    corpus, lines = read_corpus(args.corpus)
    model = SentenceEncoder.load(args.model)
    replaced = []
    corpus_emb, reused = cached_corpus_embeddings(model, corpus, args.corpus_embeddings,
                                                  batch_size=args.batch_size,
                                                  on_replace=replaced.append,
                                                  describe=lambda i: f"{args.corpus}:{lines[i]}")
    if args.corpus_embeddings:
        why = f" (replaced: {replaced[0]})" if replaced else ""
        print(f"{'read' if reused else 'wrote'} {len(corpus)} corpus embeddings "
              f"{'from' if reused else 'to'} {args.corpus_embeddings}{why}", file=sys.stderr)
    return model, corpus, lines, corpus_emb


def _check_corpus_embeddings_path(path: Optional[str]) -> None:
    from tfkosent.validation import check_output_path

    check_output_path(path, "--corpus-embeddings")
    if path:  # FILE.npy.json is written beside it
        check_output_path(path + ".json", "--corpus-embeddings")


def search_cli(args) -> int:
    from tfkosent.data.datasets import read_stdin_lines

    queries = args.queries or read_stdin_lines()
    if not queries:
        raise ValueError("no queries: give them as arguments or one per line on stdin")
    blank = [i for i, q in enumerate(queries) if not q.strip()]
    if blank:
        raise ValueError(f"query {blank[0] + 1} is blank")
    positive_int(args.top_k, "--top-k")
    _check_corpus_embeddings_path(args.corpus_embeddings)
    model, corpus, lines, corpus_emb = _cli_corpus(args)
    query_emb = model._encode(queries, batch_size=args.batch_size, normalize_embeddings=True,
                              argument="queries", describe=lambda i: f"query {i + 1}")
    hits = semantic_search(query_emb, corpus_emb, top_k=args.top_k)
    if args.json:
        out = [{"query": q, "hits": [{"corpus_id": h["corpus_id"], "line": lines[h["corpus_id"]],
                                      "score": round(h["score"], 6), "sentence": corpus[h["corpus_id"]]}
                                     for h in row]}
               for q, row in zip(queries, hits)]
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    for q, row in zip(queries, hits):
        print(q)
        for rank, h in enumerate(row, 1):
            print(f"  {rank:>2d}. {h['score']:.4f}  {args.corpus}:{lines[h['corpus_id']]}  "
                  f"{corpus[h['corpus_id']]}")
    return 0


def communities_cli(args) -> int:
    """`tfkosent communities`: the corpus's communities (`communities_with_centres`), each
    member with its cosine to the community's centre and its line."""
    cosine_value(args.threshold, "--threshold")
    _check_corpus_embeddings_path(args.corpus_embeddings)
    _, corpus, lines, corpus_emb = _cli_corpus(args)
    communities = communities_with_centres(corpus_emb, threshold=args.threshold,
                                           min_community_size=args.min_size)
    unit = _normalized(corpus_emb)
    community_of = {i: number for number, (_, members) in enumerate(communities, 1) for i in members}
    if args.json:
        out = [{"centre": {"corpus_id": centre, "line": lines[centre], "sentence": corpus[centre],
                           "community": community_of.get(centre)},
                "members": [{"corpus_id": i, "line": lines[i],
                             "score": round(float(unit[i] @ unit[centre]), 6), "sentence": corpus[i]}
                            for i in members]}
               for centre, members in communities]
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    in_any = sum(len(members) for _, members in communities)
    print(f"{_count(len(communities), 'community', 'communities')} of >= "
          f"{_count(min(args.min_size, len(corpus)), 'sentence')} within cosine {args.threshold} of their centre, "
          f"holding {in_any} of {len(corpus)} sentences")
    for number, (centre, members) in enumerate(communities, 1):
        # a kept community's centre is in it, or in a larger one found before, which took it
        elsewhere = ("" if community_of[centre] == number else
                     f" (its centre {args.corpus}:{lines[centre]} is in community "
                     f"{community_of[centre]})")
        print(f"{number}. {_count(len(members), 'sentence')}{elsewhere}")
        for i in members:
            print(f"  {float(unit[i] @ unit[centre]):.4f}  {args.corpus}:{lines[i]}  {corpus[i]}")
    return 0


def _count(n: int, singular: str, plural: Optional[str] = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
