"""STS evaluation with the published protocol of the Korean sentence-embedding tables.

Protocol (as in the KoSentenceBERT / KoSimCSE result tables, i.e. sentence-transformers'
EmbeddingSimilarityEvaluator): embed sentence1 and sentence2 of every pair, compute four
similarities per pair

    cosine      u.v / (|u| |v|)
    euclidean   -|u - v|_2       (negated distance: larger = more similar)
    manhattan   -|u - v|_1       (negated distance)
    dot         u.v

and correlate each with the gold scores over the whole set with Pearson and Spearman
(average ranks for ties).  All metrics are reported x100; "avg" is the mean of the
8 numbers.  `tfkosent evaluate` and the trainer's dev log score the embeddings the
model outputs, which are L2-normalized (as for sentence-transformers models ending in
a Normalize module): euclidean and dot then rank pairs as cosine does, and their
Spearman equals cosine's (dot's up to the float32 rounding of the vectors' unit norms).
Similarities are rounded to 1e-9 before ranking, so that exact ties (pairs of identical
sentences) tie instead of being ordered by float64 noise (`_for_ranking`).

KLUE-STS additionally gets the official KLUE metrics (only for examples that carry
`binary_label`, i.e. klue-sts-*):

    predicted score  = 5 * clip(cosine, 0, 1)            (`cosine_to_score`, 0-5 like the labels)
    "pearson"        = Pearson(predicted score, real-label) x100
    "f1"             = F1 of the positive class x100, predicted positive iff
                       predicted score >= 3 (i.e. cosine >= 0.6), gold = binary-label
                       (= real-label >= 3)

Metric keys of a result dict: cosine_pearson, cosine_spearman, euclidean_pearson,
euclidean_spearman, manhattan_pearson, manhattan_spearman, dot_pearson, dot_spearman,
avg, n (number of pairs) [, pearson, f1].

The fixed 0.6 cosine cut of "f1" suits models whose cosines spread over [0, 1]; a
contrastively trained model's cosines often do not (multilingual-e5 puts nearly all
pairs above 0.6, so "f1" becomes the all-positive predictor's).  A model may carry
its own cut, fitted on KLUE-STS *train* pairs only (`fit_f1_threshold`, stored as
`metadata["klue_f1_cosine_threshold"]` by the default-model packaging); given one,
klue-sts-* results also get "f1_fitted" (positive iff cosine >= that cut).

Cross-encoders use `evaluate_scores`
(keys pearson, spearman, n [, f1]).

The core needs numpy only; tqdm (progress bar) and matplotlib (`plot_scatter`) are
imported when used.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from tfkosent.data.datasets import (DatasetCountWarning, DatasetFormatError, PathLike, STSExample,
                                    atomic_write_bytes, dataset_path, get_dataset_info, load_sts,
                                    sha256_file)
from tfkosent.validation import cosine_value

EncodeFn = Callable[[List[str]], np.ndarray]

SIMILARITIES = ("cosine", "euclidean", "manhattan", "dot")
CORRELATIONS = ("pearson", "spearman")
METRIC_KEYS = tuple(f"{s}_{c}" for s in SIMILARITIES for c in CORRELATIONS)

BINARY_THRESHOLD = 3.0  # on the 0-5 scale: gold binary-label = real-label >= 3, same for predictions
MAX_SCORE = 5.0

# task name -> registry dataset name
TASKS: Dict[str, str] = {
    "korsts-dev": "korsts-dev",
    "korsts-test": "korsts-test",
    "klue-sts-dev": "klue-sts-dev",
    "korsts-train": "korsts-train",
    "klue-sts-train": "klue-sts-train",
}
DEFAULT_TASKS = ("korsts-dev", "korsts-test", "klue-sts-dev")

# (result key, column title) of `format_markdown_table`, in order
TABLE_COLUMNS = (
    ("n", "Pairs"),
    ("cosine_pearson", "Cosine Pearson"), ("cosine_spearman", "Cosine Spearman"),
    ("euclidean_pearson", "Euclidean Pearson"), ("euclidean_spearman", "Euclidean Spearman"),
    ("manhattan_pearson", "Manhattan Pearson"), ("manhattan_spearman", "Manhattan Spearman"),
    ("dot_pearson", "Dot Pearson"), ("dot_spearman", "Dot Spearman"), ("avg", "AVG"),
    ("pearson", "Pearson"), ("spearman", "Spearman"), ("f1", "F1 (cos≥0.6)"),
    ("f1_fitted", "F1 (fitted cut)"),
    ("spearman_ab", "Spearman (a,b)"), ("spearman_ba", "Spearman (b,a)"),
)


# --------------------------------------------------------------------------- statistics


def _as_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _gold_scores(values, name: str = "scores") -> np.ndarray:
    """`values` as float64 [n] of finite numbers; else an error naming the first bad one
    (`name[i]`): before, a NaN surfaced as "x and y must be finite" and a string as numpy's
    "could not convert string to float"."""
    if not (isinstance(values, np.ndarray) and values.dtype.kind in "biuf"):
        try:
            values = list(values)
        except TypeError:
            raise ValueError(f"{name} must be a sequence of numbers, got "
                             f"{type(values).__name__}") from None
        for i, value in enumerate(values):
            if not _is_number(value):
                raise ValueError(f"{name}[{i}] must be a number, got {value!r}")
    a = _as_1d(values, name)
    bad = np.flatnonzero(~np.isfinite(a))
    if len(bad):
        raise ValueError(f"{name}[{int(bad[0])}] is {a[bad[0]]}: gold scores must be finite numbers "
                         f"({len(bad)} of {a.size} are not)")
    return a


def _is_number(value) -> bool:
    """A real number (a NumPy or 0-d one too), not a str that float() would parse."""
    if isinstance(value, (str, bytes)):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def check_cosine_threshold(value) -> Optional[float]:
    """`f1_cosine_threshold` as a float in [-1, 1] (a cosine), or None; else a ValueError
    naming it (a string failed in numpy with a UFuncTypeError, 5 was accepted)."""
    return None if value is None else cosine_value(value, "f1_cosine_threshold")


def _paired(x, y):
    x, y = _as_1d(x, "x"), _as_1d(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape[0]} vs {y.shape[0]}")
    if x.size < 2:
        raise ValueError(f"need at least 2 pairs for a correlation, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    return x, y


def rankdata(x) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties get the average of their ranks (float64 [n])."""
    a = _as_1d(x, "x")
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], a.size]
    avg_rank = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = np.repeat(avg_rank, ends - starts)
    return ranks


def pearson(x, y) -> float:
    """Pearson correlation (float, in [-1, 1]) of two equal-length 1-D arrays (nan if either is
    constant). ValueError unless both are 1-D, of one length n >= 2, and finite."""
    x, y = _paired(x, y)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(dx @ dx) * float(dy @ dy))
    if denom == 0.0:
        return float("nan")
    return float(np.clip((dx @ dy) / denom, -1.0, 1.0))


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson of average ranks) of two 1-D arrays: float in [-1, 1]
    (nan if either is constant); the same ValueErrors as `pearson`."""
    x, y = _paired(x, y)
    return pearson(rankdata(x), rankdata(y))


def f1_binary(gold: Sequence[int], predicted: Sequence[int]) -> float:
    """F1 of the positive class (label 1) from TP/FP/FN counts, a float in [0, 1]; 0.0 when
    TP = 0. gold, predicted: 0/1 (or bool) [n]; ValueError when their shapes differ."""
    g = np.asarray(gold).astype(bool)
    p = np.asarray(predicted).astype(bool)
    if g.shape != p.shape:
        raise ValueError(f"gold and predicted differ in shape: {g.shape} vs {p.shape}")
    tp = int(np.sum(g & p))
    fp = int(np.sum(~g & p))
    fn = int(np.sum(g & ~p))
    return 0.0 if tp == 0 else 2.0 * tp / (2.0 * tp + fp + fn)


def cosine_to_score(cosine) -> np.ndarray:
    """Predicted KLUE-STS score on the 0-5 label scale: 5 * clip(cosine, 0, 1) (float64)."""
    return MAX_SCORE * np.clip(np.asarray(cosine, dtype=np.float64), 0.0, 1.0)


# --------------------------------------------------------------------------- embeddings


def encode_unique(encode_fn: EncodeFn, sentences: Sequence[str], batch_size: int = 64,
                  show_progress_bar: bool = False) -> np.ndarray:
    """Embeddings float32 [len(sentences), dim] of `sentences`, in their order.

    `encode_fn(list[str]) -> array [len(list), dim]` is called on batches of at most
    `batch_size` sentences, taken in order of length so that batches pad little; each
    call's output is checked for shape and finiteness (ValueError naming the problem, as for
    a `batch_size` <= 0). No sentences give float32 [0, 0].
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = sorted(range(len(sentences)), key=lambda i: (len(sentences[i]), i))
    starts = range(0, len(order), batch_size)
    if show_progress_bar:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="encode", unit="batch")
    out: Optional[np.ndarray] = None
    for start in starts:
        idx = order[start:start + batch_size]
        emb = np.asarray(encode_fn([sentences[i] for i in idx]), dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(idx):
            raise ValueError(f"encode_fn returned shape {emb.shape} for {len(idx)} sentences; "
                             f"expected [{len(idx)}, dim]")
        finite = np.isfinite(emb).all(axis=1)
        if not finite.all():
            bad = idx[int(np.argmin(finite))]
            raise ValueError(f"encode_fn returned non-finite values (NaN or inf) for sentence "
                             f"{sentences[bad]!r} ({int((~finite).sum())} of this batch of {len(idx)})")
        if out is None:
            out = np.empty((len(sentences), emb.shape[1]), dtype=np.float32)
        elif emb.shape[1] != out.shape[1]:
            raise ValueError(f"encode_fn changed its output dim from {out.shape[1]} to {emb.shape[1]}")
        out[idx] = emb
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def pair_similarities(emb1, emb2) -> Dict[str, np.ndarray]:
    """The four similarities of row-aligned embeddings [n, dim] -> {name: float64 [n]}.

    cosine = u.v/(|u||v|) (0 where a vector is zero), euclidean = -|u-v|_2,
    manhattan = -|u-v|_1, dot = u.v.
    """
    a = np.asarray(emb1, dtype=np.float64)
    b = np.asarray(emb2, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"embeddings must both be [n, dim], got {a.shape} and {b.shape}")
    dot = np.einsum("ij,ij->i", a, b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)
    diff = a - b
    return {
        "cosine": cosine,
        "euclidean": -np.sqrt(np.einsum("ij,ij->i", diff, diff)),
        "manhattan": -np.abs(diff).sum(axis=1),
        "dot": dot,
    }


def compute_similarities(encode_fn: EncodeFn, examples: Sequence[STSExample], batch_size: int = 64,
                         show_progress_bar: bool = False) -> Dict[str, np.ndarray]:
    """`pair_similarities` of the examples' sentence pairs, each unique sentence encoded once:
    {name: float64 [len(examples)]}. ValueError for no examples."""
    if not examples:
        raise ValueError("no examples to evaluate")
    index: Dict[str, int] = {}
    for ex in examples:
        index.setdefault(ex.sentence1, len(index))
        index.setdefault(ex.sentence2, len(index))
    emb = encode_unique(encode_fn, list(index), batch_size, show_progress_bar)
    i1 = np.fromiter((index[ex.sentence1] for ex in examples), dtype=np.int64, count=len(examples))
    i2 = np.fromiter((index[ex.sentence2] for ex in examples), dtype=np.int64, count=len(examples))
    return pair_similarities(emb[i1], emb[i2])


# --------------------------------------------------------------------------- metrics


def _gold(examples: Sequence[STSExample]) -> np.ndarray:
    return np.asarray([ex.score for ex in examples], dtype=np.float64)


def _binary_gold(examples: Sequence[STSExample]) -> Optional[np.ndarray]:
    if examples and all(ex.binary_label is not None for ex in examples):
        return np.asarray([ex.binary_label for ex in examples], dtype=np.int64)
    return None


def fit_f1_threshold(cosines, binary) -> float:
    """The cosine cut that maximizes F1 of the positive class on (training) pairs.

    cosines: float [n]; binary: int [n] gold labels (1 = similar).  Candidate cuts are
    the observed cosines (predict positive iff cosine >= cut); of cuts with equal F1 the
    highest is kept (the fewest predicted positives).  Returns that cosine, a float;
    ValueError when the lengths differ or no pair is positive."""
    x = _as_1d(cosines, "cosines")
    y = np.asarray(binary, dtype=np.int64)
    if y.shape != x.shape:
        raise ValueError(f"cosines and binary differ in length: {x.size} vs {y.size}")
    if not y.any():
        raise ValueError("no positive pair to fit a threshold on")
    order = np.argsort(-x, kind="stable")
    xs, ys = x[order], y[order]
    tp = np.cumsum(ys)                      # predicting the top k+1 positive
    fp = np.cumsum(1 - ys)
    fn = ys.sum() - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    # A cut can only sit where the next cosine is strictly lower (ties move together).
    valid = np.append(xs[1:] < xs[:-1], True)
    best = int(np.argmax(np.where(valid, f1, -1.0)))
    return float(xs[best])


def sts_metrics(similarities: Mapping[str, np.ndarray], examples: Sequence[STSExample],
                f1_cosine_threshold: Optional[float] = None) -> Dict[str, float]:
    """Protocol metrics (x100) of precomputed `pair_similarities` against the examples' gold.

    similarities: {name: float [n]} with the keys of `SIMILARITIES`; examples: n >= 2
    `STSExample`s. Returns {metric key: float x100, "n": int} (the keys listed in the module
    docstring); an undefined correlation is nan, with a RuntimeWarning.
    f1_cosine_threshold: a cosine cut fitted on training pairs; adds "f1_fitted" for
    examples with binary labels (see the module docstring)."""
    f1_cosine_threshold = check_cosine_threshold(f1_cosine_threshold)
    gold = _gold(examples)
    result: Dict[str, float] = {}
    for sim in SIMILARITIES:
        result[f"{sim}_pearson"] = 100.0 * pearson(similarities[sim], gold)
        result[f"{sim}_spearman"] = 100.0 * spearman(_for_ranking(similarities[sim]), gold)
    result["avg"] = float(np.mean([result[k] for k in METRIC_KEYS]))
    binary = _binary_gold(examples)
    if binary is not None:
        predicted = cosine_to_score(similarities["cosine"])
        result["pearson"] = 100.0 * pearson(predicted, gold)
        result["f1"] = 100.0 * f1_binary(binary, predicted >= BINARY_THRESHOLD)
        if f1_cosine_threshold is not None:
            result["f1_fitted"] = 100.0 * f1_binary(
                binary, np.asarray(similarities["cosine"]) >= f1_cosine_threshold)
    result["n"] = len(examples)
    _warn_if_nan(result)
    return result


def _for_ranking(similarity) -> np.ndarray:
    """Similarities rounded to 1e-9 before they are ranked.

    Pairs of identical sentences (KorSTS dev has 5, and 9 more in repeated pairs) get
    cosines like 0.9999999999999992, 0.9999999999999996 and 1.0: true ties that float64
    rounding would otherwise order arbitrarily, so that Spearman moved in its 5th decimal
    with the batch size.  Rounded, they tie (average ranks), and cosine, euclidean and dot
    Spearman of unit vectors agree exactly, as they should.  1e-9 is far below the float32
    resolution of the embeddings, so no other order changes."""
    return np.round(np.asarray(similarity, dtype=np.float64), 9)


def _warn_if_nan(result: Mapping[str, float]) -> None:
    nan = [k for k, v in result.items() if isinstance(v, float) and math.isnan(v)]
    if nan:
        warnings.warn(f"{', '.join(nan)} are NaN: a correlation is undefined when the predicted "
                      f"similarities or the gold scores are all equal ({result.get('n')} pairs)",
                      RuntimeWarning, stacklevel=3)


def evaluate_sts(encode_fn: EncodeFn, examples: Sequence[STSExample], batch_size: int = 64,
                 show_progress_bar: bool = False) -> Dict[str, float]:
    """Evaluates a bi-encoder on STS pairs with the published protocol (see module doc).

    encode_fn: list[str] -> float array [len(list), dim]; each unique sentence of
    `examples` is encoded exactly once.  Returns the metric dict (x100, plus "n").
    """
    return sts_metrics(compute_similarities(encode_fn, examples, batch_size, show_progress_bar),
                       examples)


def evaluate_scores(pred_scores, examples: Sequence[STSExample],
                    threshold: float = BINARY_THRESHOLD) -> Dict[str, float]:
    """Evaluates predicted pair scores (e.g. a cross-encoder's), float [n] aligned with `examples`.

    Returns {"pearson", "spearman"} x100 against the gold scores, "n", and for examples
    with binary labels "f1" x100 with positive iff score >= `threshold` (default 3 on the
    0-5 scale; pass e.g. 0.6 for scores on a 0-1 scale).
    """
    pred = _as_1d(pred_scores, "pred_scores")
    if pred.size != len(examples):
        raise ValueError(f"{pred.size} scores for {len(examples)} examples")
    gold = _gold(examples)
    result: Dict[str, float] = {"pearson": 100.0 * pearson(pred, gold),
                                "spearman": 100.0 * spearman(_for_ranking(pred), gold)}
    binary = _binary_gold(examples)
    if binary is not None:
        result["f1"] = 100.0 * f1_binary(binary, pred >= threshold)
    result["n"] = len(examples)
    _warn_if_nan(result)
    return result


# --------------------------------------------------------------------------- tasks


def _check_limit(limit: Optional[int]) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of pairs, got {limit!r}")


def load_task(task: str, data_dir: Optional[PathLike] = None,
              limit: Optional[int] = None) -> List[STSExample]:
    """The pairs of an evaluation task ("korsts-dev", ...; see `TASKS`).

    Without `limit` the file must hold the published set's number of pairs: a truncated or
    padded copy is an error (ValueError naming the file and both counts), because its
    numbers would be reported under the set's name.  With `limit` (a positive int) only the
    first `limit` pairs are used, for smoke checks; a count mismatch is then a warning.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)} (for a file of your "
                         f"own pairs, use load_sts_file / tfkosent evaluate --pairs FILE)")
    _check_limit(limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetCountWarning)
        examples = load_sts(TASKS[task], data_dir=data_dir)
    for w in caught:
        if issubclass(w.category, DatasetCountWarning) and limit is None:
            raise ValueError(f"{w.message}. The published protocol scores the whole set: "
                             f"restore the file, or score part of it on purpose with a limit "
                             f"(--limit N)")
        warnings.warn(w.message, w.category, stacklevel=2)
    return examples if limit is None else examples[:limit]


def dataset_provenance(task: str, data_dir: Optional[PathLike] = None) -> Dict[str, object]:
    """Which file a task's numbers come from: {"dataset", "path", "sha256", "published"}.

    "published" is True when the file's sha256 is the one the data registry expects (the
    file as published); False flags a local copy that differs."""
    name = TASKS[task]
    path = dataset_path(name, data_dir)
    digest = sha256_file(path)
    return {"dataset": name, "path": str(Path(path).resolve()), "sha256": digest,
            "published": digest == get_dataset_info(name).sha256}


def load_sts_file(path: PathLike) -> List[STSExample]:
    """Scored sentence pairs of your own, in the file format `tfkosent train` reads as `sts`.

    A TSV whose header row names the columns `sentence1`, `sentence2` and `score` (any
    order; other columns are ignored; no quoting), or JSON lines with those keys.  Scores
    may use any scale: the correlations do not depend on it.  An optional `binary_label`
    column (0/1) adds KLUE-STS's F1 columns, which assume scores on the 0-5 scale.
    Returns [STSExample(sentence1 str, sentence2 str, score float, binary_label int or None)]
    in file order.  A malformed line, or a file with no pairs, raises `DatasetFormatError`
    naming the file (and line); a missing path FileNotFoundError, a directory
    IsADirectoryError.
    """
    from tfkosent.training.data import read_table  # the training reader: one format, one parser

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"pairs file {path} is a directory, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} does not exist")
    _, rows = read_table(path, "sts")
    if not rows:
        raise DatasetFormatError(path, None, "no pairs (a header row naming sentence1, sentence2 "
                                 "and score, then one pair per line)")
    with_binary = "binary_label" in rows[0][1]
    examples = []
    for line, row in rows:
        binary = None
        if with_binary:
            binary = row.get("binary_label")
            if str(binary) not in ("0", "1"):
                raise DatasetFormatError(path, line, f"'binary_label' {binary!r} is not 0 or 1")
            binary = int(binary)
        examples.append(STSExample(row["sentence1"], row["sentence2"], float(row["score"]), binary))
    return examples


def _encode_fn_of(model) -> EncodeFn:
    """A SentenceEncoder (anything with .encode) or an encode function -> an encode function."""
    if hasattr(model, "encode") and not isinstance(model, (str, bytes)):  # str.encode is not it
        return lambda sentences: model.encode(sentences, show_progress_bar=False)
    if callable(model):
        return model
    raise TypeError(f"model must be a SentenceEncoder or a function list[str] -> array "
                    f"[n, dim], got {type(model).__name__}")


def evaluate_pairs(model, sentences1: Sequence[str], sentences2: Sequence[str], scores,
                   binary_labels: Optional[Sequence[int]] = None, batch_size: int = 64,
                   f1_cosine_threshold: Optional[float] = None) -> Dict[str, float]:
    """The protocol's metrics (x100, see the module docstring) on pairs of your own.

    The counterpart of sentence-transformers' ``EmbeddingSimilarityEvaluator(sentences1,
    sentences2, scores)``::

        from tfkosent import SentenceEncoder
        from tfkosent.evaluation import evaluate_pairs
        evaluate_pairs(SentenceEncoder.load(), ["한 남자가 음식을 먹는다."],
                       ["한 남자가 빵을 먹는다."], [4.2])  # (with at least 2 pairs)

    model: a `SentenceEncoder`, or a function list[str] -> float array [n, dim].
    sentences1, sentences2: str sequences of equal length n >= 2; scores: float [n], any scale.
    binary_labels: optional 0/1 [n] (KLUE-STS style; adds "pearson" on the 0-5 scale and "f1").
    batch_size: sentences per `encode_fn` call.  f1_cosine_threshold: None or a cosine in
    [-1, 1]; with binary labels, adds "f1_fitted" (see `sts_metrics`).
    Returns the metric dict ({key: float x100, "n": int}, see `sts_metrics`); each unique
    sentence is encoded once.  Raises ValueError for lengths that differ, n < 2, a score that
    is not a finite number, a label other than 0/1, a blank or non-str sentence, or a bad
    threshold; TypeError for a `model` that neither encodes nor is callable.
    """
    n = len(sentences1)
    scores = _gold_scores(scores, "scores")
    f1_cosine_threshold = check_cosine_threshold(f1_cosine_threshold)
    if len(sentences2) != n or scores.size != n:
        raise ValueError(f"sentences1, sentences2 and scores differ in length: {n}, "
                         f"{len(sentences2)}, {scores.size}")
    if binary_labels is not None:
        binary_labels = [int(b) for b in binary_labels]
        if len(binary_labels) != n or set(binary_labels) - {0, 1}:
            raise ValueError(f"binary_labels must be {n} values of 0 or 1")
    for name, column in (("sentences1", sentences1), ("sentences2", sentences2)):
        for i, text in enumerate(column):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{name}[{i}] must be non-empty text, got {text!r}")
    examples = [STSExample(a, b, float(score), None if binary_labels is None else binary_labels[i])
                for i, (a, b, score) in enumerate(zip(sentences1, sentences2, scores))]
    sims = compute_similarities(_encode_fn_of(model), examples, batch_size)
    return sts_metrics(sims, examples, f1_cosine_threshold)


def run_tasks(encode_fn: EncodeFn, tasks: Sequence[str] = DEFAULT_TASKS,
              data_dir: Optional[PathLike] = None, batch_size: int = 64,
              show_progress_bar: bool = False,
              plot_dir: Optional[PathLike] = None,
              limit: Optional[int] = None,
              f1_cosine_threshold: Optional[float] = None,
              pairs_files: Sequence[PathLike] = ()) -> Dict[str, Dict[str, float]]:
    """Evaluates `encode_fn` on each task ("korsts-dev", "korsts-test", "klue-sts-dev",
    "korsts-train", "klue-sts-train"), then on each of `pairs_files` (`load_sts_file`;
    its result is keyed by the path as given); returns {task: metric dict} in that order
    (`sts_metrics`).
    encode_fn: list[str] -> float array [len(list), dim], called on batches of at most
    `batch_size` sentences.  f1_cosine_threshold: see `sts_metrics` (a model's fitted
    KLUE-STS cut).  Every task name is checked before any file is read (ValueError for an
    unknown one, a bad `limit`, or nothing to evaluate).

    With `plot_dir`, also writes ``<plot_dir>/<task or file stem>.png``: gold score vs
    cosine.  With `limit`, only the first `limit` pairs of each task and file are used
    (smoke checks; published numbers always use whole sets, see `load_task`).
    """
    f1_cosine_threshold = check_cosine_threshold(f1_cosine_threshold)
    results: Dict[str, Dict[str, float]] = {}
    for name, examples in task_examples(tasks, data_dir, limit, pairs_files):
        sims = compute_similarities(encode_fn, examples, batch_size, show_progress_bar)
        results[name] = sts_metrics(sims, examples, f1_cosine_threshold)
        if plot_dir is not None:
            plot_scatter(_gold(examples), sims["cosine"], plot_path(plot_dir, name),
                         f"{name}: cosine Spearman {results[name]['cosine_spearman']:.2f}")
    return results


def task_examples(tasks: Sequence[str], data_dir: Optional[PathLike] = None,
                  limit: Optional[int] = None, pairs_files: Sequence[PathLike] = ()):
    """(name, examples) of each task (`load_task`) then each pairs file (`load_sts_file`),
    loaded lazily; every name is checked before the first file is read."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASKS)} (for a file of "
                         f"your own pairs: --pairs FILE)")
    _check_limit(limit)
    if not tasks and not pairs_files:
        raise ValueError("nothing to evaluate: no task and no pairs file")
    for task in tasks:
        yield task, load_task(task, data_dir, limit)
    for path in pairs_files:
        examples = load_sts_file(path)
        if limit is not None:
            examples = examples[:limit]
        if len(examples) < 2:  # else sts_metrics' error, which named no file
            raise DatasetFormatError(path, None, f"need at least 2 pairs for a correlation, got "
                                     f"{len(examples)}" + (f" (limit {limit})" if limit else ""))
        yield str(path), examples


def plot_path(plot_dir: PathLike, name: str) -> Path:
    """<plot_dir>/<name>.png for a task; a pairs file's plot is named after its stem."""
    return Path(plot_dir) / f"{name if name in TASKS else Path(name).stem}.png"


# --------------------------------------------------------------------------- output


def format_markdown_table(results: Mapping[str, Mapping[str, float]], digits: int = 2) -> str:
    """Markdown table, one row per task, columns in the seed tables' order.

    Columns: Pairs, Cosine/Euclidean/Manhattan/Dot Pearson and Spearman, AVG, then
    Pearson, Spearman, F1 — each column only if some task has it; a metric a task does not
    have is "-", an undefined one (NaN) "nan".
    """
    columns = [(key, title) for key, title in TABLE_COLUMNS
               if any(key in metrics for metrics in results.values())]
    lines = ["| Task | " + " | ".join(title for _, title in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for task, metrics in results.items():
        cells = []
        for key, _ in columns:
            value = metrics.get(key)
            if value is None:
                cells.append("-")                      # not computed for this task
            elif key == "n":
                cells.append(str(int(value)))
            elif math.isnan(value):
                cells.append("nan")                    # undefined (constant input): warned
            else:
                cells.append(f"{value:.{digits}f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(results, path: PathLike) -> Path:
    """Writes `results` as UTF-8 JSON (numpy scalars converted, NaN -> null), atomically."""
    text = json.dumps(_jsonable(results), ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


_KOREAN_FONTS = ("NanumGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic",
                 "AppleGothic", "UnDotum")


def _korean_font() -> Optional[str]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _KOREAN_FONTS if name in installed), None)


def plot_scatter(gold, cosine, path: PathLike, title: str = "",
                 ylabel: str = "cosine similarity") -> Path:
    """Writes a PNG scatter plot of gold score (x, float [n]) vs cosine similarity (y, [n]).

    `ylabel` names y when it is not a cosine (e.g. a cross-encoder's predicted score).
    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change).  A title
    with Hangul uses an installed Korean font if there is one; otherwise the missing glyphs
    are drawn as boxes, without warnings.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gold, cosine = _as_1d(gold, "gold"), _as_1d(cosine, "cosine")
    if gold.shape != cosine.shape:
        raise ValueError(f"gold and cosine differ in length: {gold.size} vs {cosine.size}")
    fig = Figure(figsize=(5, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(gold, cosine, s=6, alpha=0.4, linewidths=0)
    ax.set_xlabel("gold score")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        if title:
            font = _korean_font() if not title.isascii() else None
            ax.set_title(title, fontsize=10, **({"fontfamily": font} if font else {}))
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
