"""Training data: sources -> examples of one kind -> token ids -> deterministic tf.data epochs.

Example kinds (what a loss trains on) and their text columns:

    sentences      text                          (unsupervised SimCSE, distillation)
    pairs          anchor, positive              (MultipleNegativesRanking)
    triplets       anchor, positive, negative    (supervised SimCSE)
    scored_pairs   sentence1, sentence2 + score  (CoSENT, cosine-MSE)

Every example also carries an int32 label "group": examples with equal groups
are paraphrases of each other (a paraphrase group, one NLI premise, one
sentence text), which in-batch-negative losses must not treat as negatives.

Sources are registry datasets of `tfkosent.data` (converted to the kind the
loss needs: STS -> scored pairs or sentences, NLI -> triplets, pairs or
sentences, paraphrase groups -> adjacent pairs or sentences, raw -> sentences)
or files:

    .txt / .txt.gz    one sentence per line, blank lines skipped (format sentences)
    .jsonl            one JSON object per line, keys as below
    other (TSV)       a header row naming the columns, '\\t'-separated, no quoting

    format      columns
    sts         sentence1, sentence2, score
    nli         premise, hypothesis, label (entailment | neutral | contradiction)
    triplets    anchor, positive, negative
    pairs       anchor, positive
    groups      group, sentence
    sentences   text

UTF-8 (a BOM is dropped), LF or CR LF line ends; a training score is a number in [0, 5]. A
malformed line (blank line between rows, wrong column count, bad UTF-8, a truncated
.gz) raises DatasetFormatError naming the file and line.

Data order.  `epoch_batches` makes the batches of one epoch of one task as a
pure function of (seed, task index, epoch): permute, drop the remainder, sort
chunks of `bucket_batches` batches by token length (length bucketing: a batch
holds similar lengths and is packed to its longest), shuffle the batches.  The
position (epoch, batch index) therefore pins the data exactly; resuming builds
the same epochs and skips the consumed batches without reading them.

Cross-encoders (`model_type: cross_encoder`) train on scored pairs packed as one
2-segment sequence per example (`TokenizedTask(..., paired=True).pair_element_fn`);
their length buckets use the pair's total length.

Tokenization happens once, up front, with the model's own Preprocessor; each
tf.data element gathers token ids from that table and packs them with
`tfkosent.layers.packing.pack_segments`, so the pipeline is pure TensorFlow
(TPU hosts included).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfkosent.data import datasets as registry
from tfkosent.data.datasets import DatasetFormatError, NLI_LABELS, STSExample, NLIExample
from tfkosent.training.config import EVALUATION_ONLY, REPORT_ONLY

KINDS: Dict[str, Tuple[str, ...]] = {
    "sentences": ("text",),
    "pairs": ("anchor", "positive"),
    "triplets": ("anchor", "positive", "negative"),
    "scored_pairs": ("sentence1", "sentence2"),
}

FILE_FORMATS: Dict[str, Tuple[str, ...]] = {
    "triplets": ("anchor", "positive", "negative"),  # before "pairs": a superset of its columns
    "sts": ("sentence1", "sentence2", "score"),
    "nli": ("premise", "hypothesis", "label"),
    "pairs": ("anchor", "positive"),
    "groups": ("group", "sentence"),
    "sentences": ("text",),
}

# registry kind -> record kind of this module
_REGISTRY_KINDS = {"sts": "sts", "nli": "nli", "paraphrase_groups": "groups", "pairs": "pairs",
                   "raw": "sentences"}


class DataError(ValueError):
    """A data source is missing, malformed, empty or cannot feed the loss."""


@dataclasses.dataclass
class TaskData:
    """The examples of one task.

    texts:  {column: list of str}, all columns of `KINDS[kind]`, equal lengths.
    labels: {"group": int32 [n], "score": float32 [n] (scored_pairs),
             "teacher": float32 [n, hidden] (attached for distillation)}.
    """

    kind: str
    texts: Dict[str, List[str]]
    labels: Dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.texts[KINDS[self.kind][0]])

    def head(self, n: int) -> "TaskData":
        return TaskData(self.kind, {k: v[:n] for k, v in self.texts.items()},
                        {k: v[:n] for k, v in self.labels.items()})


# --------------------------------------------------------------------------- reading sources


class _JSONObject(dict):
    """A JSON object that remembers the keys it held more than once (json keeps the last)."""
    repeated: Tuple[str, ...] = ()


def _json_object(pairs) -> _JSONObject:
    """json.loads' object_pairs_hook."""
    out = _JSONObject(pairs)
    if len(out) != len(pairs):
        out.repeated = tuple(_repeated(k for k, _ in pairs))
    return out


def _repeated(names) -> List[str]:
    seen: set = set()
    return [n for n in names if n in seen or seen.add(n)]


def read_table(path: Path, fmt: Optional[str]) -> Tuple[str, List[Tuple[int, Dict[str, Any]]]]:
    """The file's format and its rows as (line number, dict) (header-TSV or JSONL).

    Every field the format needs is validated; a malformed line raises `DatasetFormatError`
    naming the file and line.  The line numbers let callers name a line in their own checks
    (e.g. `tfkosent.training.silver.read_silver_tsv`'s duplicate pairs).
    """
    rows: List[Tuple[int, Dict[str, Any]]] = []
    # registry.iter_lines: UTF-8 checked per line (errors name it), BOM and CR LF handled,
    # lines end only at LF (a lone CR inside a field does not split the row), trailing blank
    # lines ignored; a blank line followed by more rows is an error, not a dropped row.
    if path.suffix == ".jsonl":
        for line_no, line in registry.iter_lines(path):
            if not line.strip():
                raise DatasetFormatError(path, line_no, "blank line")
            try:
                record = json.loads(line, object_pairs_hook=_json_object)
            except json.JSONDecodeError as e:
                raise DatasetFormatError(path, line_no, f"invalid JSON: {e.msg}") from None
            if not isinstance(record, dict):
                raise DatasetFormatError(path, line_no, "expected a JSON object")
            rows.append((line_no, record))
        header = list(rows[0][1]) if rows else []
    else:
        lines = list(registry.iter_lines(path))
        if not lines:
            return fmt or "sentences", []
        header = lines[0][1].split("\t")
        for line_no, line in lines[1:]:
            if not line.strip():
                raise DatasetFormatError(path, line_no, "blank line")
            fields = line.split("\t")
            if len(fields) != len(header):
                raise DatasetFormatError(path, line_no, f"expected {len(header)} tab-separated "
                                         f"columns ({', '.join(header)}), got {len(fields)}")
            rows.append((line_no, dict(zip(header, fields))))
    if fmt is None:
        fmt = next((f for f, cols in FILE_FORMATS.items() if set(cols) <= set(header)), None)
        if fmt is None:
            raise DatasetFormatError(path, 1, f"cannot tell the format from the columns {header}; "
                                     f"expected one of " + "; ".join(
                                         f"{f}: {', '.join(c)}" for f, c in FILE_FORMATS.items()))
    missing = [c for c in FILE_FORMATS[fmt] if c not in header]
    if missing and rows:
        raise DatasetFormatError(path, 1, f"format {fmt!r} needs column(s) {missing}, got {header}")
    # A column the format reads, named twice, would be read from its last copy, silently; others
    # (e.g. two empty names from trailing tabs) are never read.
    repeated = [c for c in _repeated(header) if c in FILE_FORMATS[fmt]]
    if repeated:
        raise DatasetFormatError(path, 1, f"column {repeated[0]!r} appears twice")
    for line_no, row in rows:
        repeated = [k for k in getattr(row, "repeated", ()) if k in FILE_FORMATS[fmt]]
        if repeated:
            raise DatasetFormatError(path, line_no, f"key {repeated[0]!r} appears twice")
        for column in FILE_FORMATS[fmt]:
            value = row.get(column)
            if column == "score":
                try:
                    ok = not isinstance(value, bool) and math.isfinite(float(value))
                except (TypeError, ValueError):
                    ok = False
                if not ok:  # the [0, 5] range is the trainer's (`_read_file`): evaluation takes any scale
                    raise DatasetFormatError(path, line_no, f"non-numeric score {value!r}")
            elif column == "group" and isinstance(value, int):
                continue
            elif not isinstance(value, str) or not value.strip():
                raise DatasetFormatError(path, line_no, f"empty or non-text {column!r}")
        if fmt == "nli" and row["label"] not in NLI_LABELS:
            raise DatasetFormatError(path, line_no, f"label {row['label']!r} is not one of "
                                     f"{list(NLI_LABELS)}")
    return fmt, rows


def _read_file(path: Path, fmt: Optional[str]) -> Tuple[str, list]:
    """(record kind, records) of an explicit data file (formats in the module docstring)."""
    name = path.name
    if fmt in (None, "sentences") and (name.endswith(".txt") or name.endswith(".txt.gz")):
        # Blank lines separate paragraphs in raw text: skipped, not sentences.
        return "sentences", [line.strip() for _, line in registry.iter_lines(path) if line.strip()]
    fmt, numbered = read_table(path, fmt)
    rows = [row for _, row in numbered]
    if fmt == "sts":  # the losses read scores on KorSTS's 0-5 scale (cosine-MSE: score / 5)
        return "sts", [STSExample(r["sentence1"], r["sentence2"], registry.parse_score(r["score"], path, n, "score"))
                       for n, r in numbered]
    if fmt == "nli":
        return "nli", [NLIExample(r["premise"], r["hypothesis"], r["label"]) for r in rows]
    if fmt == "groups":
        groups: Dict[str, List[str]] = {}
        for r in rows:
            groups.setdefault(r["group"], []).append(r["sentence"])
        return "groups", list(groups.values())
    return fmt, [tuple(r[c] for c in FILE_FORMATS[fmt]) if fmt != "sentences" else r["text"]
                 for r in rows]


def evaluation_copy(path: Path, names: Sequence[str]) -> Optional[str]:
    """The registry dataset among `names` whose file `path` is (same sha256), else None.

    The recipe checks refuse evaluation sets by name; this catches the same file given by
    path (e.g. `data: [../shared/data/korsts/sts-test.tsv]`). A copy edited by even one byte
    is not caught: this guards against mistakes, not against intent."""
    candidates = [n for n in names if n in registry.DATASETS]
    if not candidates or path.stat().st_size > 64 * 2 ** 20:  # evaluation files are < 1 MB
        return None
    digest = registry.sha256_file(path)
    return next((n for n in candidates if registry.get_dataset_info(n).sha256 == digest), None)


def read_source(source, data_dir: Optional[str] = None,
                refuse: Sequence[str] = ()) -> Tuple[str, list]:
    """(record kind, records) of a `config.DataSource`.

    Record kinds: "sts" (STSExample), "nli" (NLIExample), "triplets" / "pairs"
    (tuples of str), "groups" (lists of str), "sentences" (str).
    refuse: registry names (evaluation sets) whose file may not be given by path either.
    """
    if source.name is not None:
        info = registry.get_dataset_info(source.name)
        kind = _REGISTRY_KINDS[info.kind]
        loaders = {"sts": registry.load_sts, "nli": registry.load_nli,
                   "groups": registry.load_paraphrase_groups, "pairs": registry.load_pairs}
        if kind == "sentences":
            return kind, registry.load_raw_sentences(source.name, limit=source.limit, data_dir=data_dir)
        return kind, loaders[kind](source.name, data_dir=data_dir)
    path = registry.expand_path(source.path)  # ~ and $VARS, as the recipe's other paths
    if not path.is_file():
        import difflib
        hint = ""
        if "/" not in source.path and not path.suffix:  # a plain word: a misspelled dataset name?
            close = difflib.get_close_matches(source.path, list(registry.DATASETS), n=3)
            hint = (" (a plain name is read as a path unless it is a registry dataset"
                    + (f"; did you mean {', '.join(close)}?" if close else "")
                    + ")")
        raise FileNotFoundError(f"data file {path} does not exist{hint}")
    copy = evaluation_copy(path, refuse)
    if copy is not None:
        raise DatasetFormatError(path, None, f"this file is the evaluation set {copy!r} (the same "
                                 f"bytes); it cannot be used here")
    return _read_file(path, source.format)


# --------------------------------------------------------------------------- conversion


def _unique(texts) -> List[str]:
    return list(dict.fromkeys(texts))


def _ids(texts: Sequence[str]) -> np.ndarray:
    """int32 id of each text's first occurrence (equal texts, equal ids)."""
    index: Dict[str, int] = {}
    return np.asarray([index.setdefault(t, len(index)) for t in texts], np.int32).reshape(-1)


def sentences_of(kind: str, records: list) -> List[str]:
    if kind == "sts":
        return _unique(s for r in records for s in (r.sentence1, r.sentence2))
    if kind == "nli":
        return _unique(s for r in records for s in (r.premise, r.hypothesis))
    if kind == "groups":
        return _unique(s for g in records for s in g)
    if kind in ("pairs", "triplets"):
        return _unique(s for r in records for s in r)
    return _unique(records)


def _pairs_of(kind: str, records: list) -> Tuple[List[Tuple[str, str]], np.ndarray]:
    if kind == "groups":
        pairs, groups = [], []
        for g, members in enumerate(records):
            for a, b in zip(members, members[1:]):
                pairs.append((a, b))
                groups.append(g)
        return pairs, np.asarray(groups, np.int32).reshape(-1)
    if kind == "nli":
        pairs = [(r.premise, r.hypothesis) for r in records if r.label == "entailment"]
        return pairs, _ids([p for p, _ in pairs])
    if kind == "triplets":
        pairs = [(a, p) for a, p, _ in records]
        return pairs, _ids([a for a, _ in pairs])
    if kind == "pairs":
        return list(records), _ids([p for _, p in records])
    raise KeyError(kind)


def _convert(kind: str, source_kind: str, records: list) -> TaskData:
    """Records of `source_kind` as TaskData of `kind`; KeyError if it cannot."""
    columns = KINDS[kind]
    if kind == "sentences":
        texts = sentences_of(source_kind, records)
        return TaskData(kind, {"text": texts}, {"group": np.arange(len(texts), dtype=np.int32)})
    if kind == "scored_pairs":
        if source_kind != "sts":
            raise KeyError(source_kind)
        return TaskData(kind, {"sentence1": [r.sentence1 for r in records],
                               "sentence2": [r.sentence2 for r in records]},
                        {"score": np.asarray([r.score for r in records], np.float32).reshape(-1),
                         "group": np.arange(len(records), dtype=np.int32)})
    if kind == "triplets":
        if source_kind == "nli":
            records = registry.nli_triplets(records)
        elif source_kind != "triplets":
            raise KeyError(source_kind)
        rows = list(records)
        return TaskData(kind, {c: [r[i] for r in rows] for i, c in enumerate(columns)},
                        {"group": _ids([r[0] for r in rows])})
    pairs, groups = _pairs_of(source_kind, records)
    return TaskData(kind, {c: [p[i] for p in pairs] for i, c in enumerate(columns)}, {"group": groups})


_NEEDS = {"scored_pairs": "an STS dataset (e.g. korsts-train, klue-sts-train) or an sts file",
          "triplets": "an NLI dataset (e.g. klue-nli-train) or a triplets file",
          "pairs": "paraphrase groups (parakqc, stylekqc), pairs, NLI or triplets",
          "sentences": "any dataset"}


def concat(parts: Sequence[TaskData]) -> TaskData:
    """Concatenates TaskData of one kind, then makes its groups hold across sources
    (`paraphrase_groups`): group ids are first offset to stay distinct per source."""
    kind = parts[0].kind
    texts = {c: [t for p in parts for t in p.texts[c]] for c in parts[0].texts}
    labels, offset, groups = {}, 0, []
    for p in parts:
        groups.append(p.labels["group"] + offset)
        offset += int(p.labels["group"].max()) + 1 if len(p) else 0
    labels["group"] = np.concatenate(groups).astype(np.int32)
    if kind in PARAPHRASE_COLUMNS:
        labels["group"] = paraphrase_groups(labels["group"],
                                            [texts[c] for c in PARAPHRASE_COLUMNS[kind]])
    for key in parts[0].labels:
        if key != "group":
            labels[key] = np.concatenate([p.labels[key] for p in parts])
    return TaskData(kind, texts, labels)


# The columns of each kind whose texts are paraphrases of one another within an example
# (a triplet's negative is not).
PARAPHRASE_COLUMNS = {"sentences": ("text",), "pairs": ("anchor", "positive"),
                      "triplets": ("anchor", "positive")}


def paraphrase_groups(groups: np.ndarray, columns: Sequence[Sequence[str]]) -> np.ndarray:
    """Group ids int32 [n] under which in-batch losses never use a paraphrase as a negative.

    Examples are joined (union-find) when they share a group id, or when any text of
    `columns` (the paraphrase columns, each a list of n texts) is equal between them, in
    any column: the same sentence from two sources, a sentence in two paraphrase groups,
    and pairs (q, p1), (q, p2) with one anchor, whose p2 is no negative for q. Ids are
    renumbered 0.. in order of first appearance."""
    n = len(groups)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: Dict[Tuple[str, object], int] = {}
    keys = [("group", int(g)) for g in groups]
    for i in range(n):
        for key in [keys[i]] + [("text", column[i]) for column in columns]:
            j = first.setdefault(key, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = [find(i) for i in range(n)]
    return _ids([str(r) for r in roots])


def load_task_data(kind: str, sources: Sequence, data_dir: Optional[str] = None,
                   where: str = "data", loss_name: str = "") -> TaskData:
    """Reads and converts every source; errors name `where[i]`, the file and the problem."""
    parts = []
    for i, source in enumerate(sources):
        label = f"{where}[{i}] ({source.label})"
        try:
            source_kind, records = read_source(source, data_dir, refuse=EVALUATION_ONLY)
        except (FileNotFoundError, DatasetFormatError, registry.DownloadError) as e:
            raise DataError(f"{label}: {e}") from e
        if not records:
            raise DataError(f"{label}: the dataset is empty")
        try:
            part = _convert(kind, source_kind, records)
        except KeyError:
            raise DataError(f"{label}: {source_kind} data cannot feed loss {loss_name!r}, which trains "
                            f"on {kind} (needs {_NEEDS[kind]})") from None
        if source.limit is not None:
            part = part.head(source.limit)
        if not len(part):
            raise DataError(f"{label}: yields no {kind} examples (e.g. no premise has both an "
                            f"entailment and a contradiction hypothesis)")
        parts.append(part)
    return concat(parts)


def load_sts_examples(source, data_dir: Optional[str] = None, limit: Optional[int] = None,
                      where: str = "eval.dataset") -> List[STSExample]:
    """STS examples of a DataSource (registry STS dataset or sts file), for evaluation."""
    try:
        kind, records = read_source(source, data_dir, refuse=REPORT_ONLY)
    except (FileNotFoundError, DatasetFormatError, registry.DownloadError) as e:
        raise DataError(f"{where} ({source.label}): {e}") from e
    if kind != "sts":
        raise DataError(f"{where} ({source.label}): is {kind} data, evaluation needs STS pairs")
    records = records[:limit] if limit else records
    if len(records) < 2:
        raise DataError(f"{where} ({source.label}): needs at least 2 pairs, got {len(records)}")
    return records


# --------------------------------------------------------------------------- tokenization


@dataclasses.dataclass
class TokenTable:
    """Unique token sequences: int32 values and int64 row_splits of a ragged [n, (tokens)]."""

    values: np.ndarray
    row_splits: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_splits).astype(np.int32)

    def ragged(self):
        import tensorflow as tf
        return tf.RaggedTensor.from_row_splits(tf.constant(self.values, tf.int32),
                                               tf.constant(self.row_splits, tf.int64), validate=False)


def tokenize_texts(texts: Sequence[str], tokenize: Callable, chunk_size: int = 4096) -> TokenTable:
    """Token ids of `texts` with `tokenize(tf.string [n]) -> ragged int [n, (tokens)]`."""
    import tensorflow as tf

    values, lengths = [], []
    for start in range(0, len(texts), chunk_size):
        ids = tokenize(tf.constant(list(texts[start:start + chunk_size]), tf.string))
        while ids.shape.rank > 2:
            ids = ids.merge_dims(-2, -1)
        values.append(ids.flat_values.numpy().astype(np.int32))
        lengths.append(ids.row_lengths().numpy())
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    return TokenTable(np.concatenate(values) if values else np.zeros(0, np.int32),
                      np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


class TokenizedTask:
    """A task's examples as indices into one table of unique token sequences.

    views: the text columns a loss encodes per example (repeats allowed).
    columns: {column: int32 [n]} row of each example's text in `table`.
    example_lengths: int32 [n], longest view of each example in tokens (paired: the
      sum of both views, which a cross-encoder packs into one sequence).
    """

    def __init__(self, data: TaskData, views: Sequence[str], tokenize: Callable, paired: bool = False):
        needed = list(dict.fromkeys(views))
        unique = _unique(t for c in needed for t in data.texts[c])
        index = {t: i for i, t in enumerate(unique)}
        self.table = tokenize_texts(unique, tokenize)
        self.columns = {c: np.asarray([index[t] for t in data.texts[c]], np.int32).reshape(-1)
                        for c in needed}
        lengths = self.table.lengths
        per_view = np.stack([lengths[self.columns[c]] for c in needed])
        # paired (cross-encoder): both views go into one sequence, so their lengths add up
        self.example_lengths = (per_view.sum(axis=0) if paired else per_view.max(axis=0)).astype(np.int32)
        self.paired = paired
        self.views = tuple(views)
        self.labels = data.labels
        self.num_examples = len(data)

    def num_batches(self, batch_size: int) -> int:
        return self.num_examples // batch_size

    def element_fn(self, label_keys: Sequence[str], special_ids: Dict[str, int], packing: str):
        """(example ids int32 [b], seq_length int32 []) -> {"inputs", "labels"} of one batch.

        inputs: {input_word_ids, input_mask, input_type_ids}: int32 [b, len(views), seq_length]
        labels: {key: [b, ...]} for `label_keys`.
        """
        import tensorflow as tf
        from tfkosent.layers.packing import pack_segments
        from tfkosent.layers.transformer import ENCODER_INPUT_KEYS

        table = self.table.ragged()
        columns = {c: tf.constant(v) for c, v in self.columns.items()}
        labels = {k: tf.constant(self.labels[k]) for k in label_keys}
        views = self.views

        def element(ids, seq_length):
            packed = {c: pack_segments([tf.gather(table, tf.gather(column, ids))], seq_length,
                                       special_ids["start_of_sequence_id"],
                                       special_ids["end_of_segment_id"],
                                       special_ids["padding_id"], packing)
                      for c, column in columns.items()}
            inputs = {k: tf.stack([packed[v][k] for v in views], axis=1) for k in ENCODER_INPUT_KEYS}
            return {"inputs": inputs, "labels": {k: tf.gather(v, ids) for k, v in labels.items()}}

        return tf.autograph.experimental.do_not_convert(element)

    def pair_element_fn(self, label_keys: Sequence[str], special_ids: Dict[str, int], packing: str,
                        swap_seed: Optional[int] = None):
        """Cross-encoder batches: (example ids int32 [b], seq_length) -> {"inputs", "labels"}.

        inputs: {input_word_ids, input_mask, input_type_ids}: int32 [b, seq_length], each
        example's two views packed as one sequence of 2 segments (`pack_segments`, as
        `Preprocessor.bert_pack_inputs([a, b])`; round-robin truncation).
        swap_seed: when set, each example's (a, b) becomes (b, a) with probability 1/2,
        drawn statelessly from (swap_seed, the batch's example ids), so the augmentation is
        a pure function of the data position (resumes see the same swaps).
        """
        import tensorflow as tf
        from tfkosent.layers.packing import pack_segments

        if len(self.views) != 2:
            raise ValueError(f"a cross-encoder packs 2 views, got {self.views}")
        table = self.table.ragged()
        first, second = (tf.constant(self.columns[v]) for v in self.views)
        labels = {k: tf.constant(self.labels[k]) for k in label_keys}

        def element(ids, seq_length):
            a, b = tf.gather(first, ids), tf.gather(second, ids)
            if swap_seed is not None:
                ids64 = tf.cast(ids, tf.int64)
                key = tf.reduce_sum(ids64 * (tf.range(tf.size(ids64, out_type=tf.int64)) + 1))
                swap = tf.random.stateless_uniform(
                    tf.shape(ids), seed=tf.stack([tf.constant(swap_seed, tf.int64), key])) < 0.5
                a, b = tf.where(swap, b, a), tf.where(swap, a, b)
            inputs = pack_segments([tf.gather(table, a), tf.gather(table, b)], seq_length,
                                   special_ids["start_of_sequence_id"],
                                   special_ids["end_of_segment_id"], special_ids["padding_id"], packing)
            return {"inputs": inputs, "labels": {k: tf.gather(v, ids) for k, v in labels.items()}}

        return tf.autograph.experimental.do_not_convert(element)


# --------------------------------------------------------------------------- epochs


def epoch_batches(num_examples: int, batch_size: int, seed: int, epoch: int, stream: int = 0,
                  lengths: Optional[np.ndarray] = None, bucket_batches: int = 50) -> np.ndarray:
    """Example ids of every batch of one epoch: int64 [num_examples // batch_size, batch_size].

    A pure function of its arguments (numpy's PCG64 seeded with [seed, stream,
    epoch]).  With `lengths`, chunks of `bucket_batches` batches are sorted by
    length before batching and the batches shuffled afterwards.
    """
    rng = np.random.default_rng([seed, stream, epoch])
    num_batches = num_examples // batch_size
    if num_batches == 0:
        raise DataError(f"{num_examples} examples are fewer than one batch of {batch_size}")
    order = rng.permutation(num_examples)[:num_batches * batch_size]
    if lengths is None or bucket_batches <= 1:
        return order.reshape(num_batches, batch_size)
    chunk = bucket_batches * batch_size
    order = np.concatenate([c[np.argsort(lengths[c], kind="stable")]
                            for c in np.split(order, range(chunk, order.size, chunk))])
    return order.reshape(num_batches, batch_size)[rng.permutation(num_batches)]


def batch_seq_lengths(batches: np.ndarray, example_lengths: np.ndarray, num_special: int,
                      multiple: int, cap: int) -> np.ndarray:
    """int32 [num_batches]: each batch's longest example plus special tokens,
    rounded up to `multiple` and capped at `cap` (longer examples are truncated)."""
    longest = example_lengths[batches].max(axis=1) + num_special
    return np.minimum(-(-longest // multiple) * multiple, cap).astype(np.int32)


def make_dataset(element_fn: Callable, batches: np.ndarray, seq_lengths: np.ndarray,
                 num_replicas: int = 1, input_context=None):
    """tf.data.Dataset of the per-replica batches of `batches` (example ids [n, batch_size]).

    Each global batch is cut into `num_replicas` consecutive slices that follow
    each other in the dataset (the order in which
    `strategy.distribute_datasets_from_function` hands elements to replicas);
    with several input pipelines (multi-worker), each keeps its replicas' slices.
    """
    import tensorflow as tf

    num_batches, batch_size = batches.shape
    per_replica = batch_size // num_replicas
    slices = batches.reshape(num_batches, num_replicas, per_replica)
    if input_context is not None and input_context.num_input_pipelines > 1:
        local = num_replicas // input_context.num_input_pipelines
        first = input_context.input_pipeline_id * local
        slices = slices[:, first:first + local]
    replicas_here = slices.shape[1]
    ids = slices.reshape(-1, per_replica).astype(np.int32)
    lengths = np.repeat(seq_lengths, replicas_here).astype(np.int32)
    options = tf.data.Options()
    options.deterministic = True
    ds = tf.data.Dataset.from_tensor_slices((ids, lengths)).with_options(options)
    ds = ds.map(element_fn, num_parallel_calls=tf.data.AUTOTUNE)
    if len(lengths) and (lengths == lengths[0]).all():
        # One length for every batch (pad_to_multiple_of >= max_seq_length): the element spec
        # says so, [rows, ..., length] instead of [None, ..., None]. TPUs compile one program
        # per input shape and need it static; the step function is traced for this one shape.
        ds = ds.map(lambda element: _with_static_shape(element, per_replica, int(lengths[0])))
    return ds.prefetch(tf.data.AUTOTUNE)


def _with_static_shape(element, rows: int, seq_length: int):
    """`element` ({"inputs", "labels"}) with its row count, and its inputs' last dimension (the
    sequence), set in the static shape; a tensor that disagrees fails at run time."""
    import tensorflow as tf

    def fix(tensor, sequence: bool):
        shape = tensor.shape.as_list()
        shape[0] = rows
        if sequence:
            shape[-1] = seq_length
        return tf.ensure_shape(tensor, shape)

    return {"inputs": tf.nest.map_structure(lambda t: fix(t, True), element["inputs"]),
            "labels": tf.nest.map_structure(lambda t: fix(t, False), element["labels"])}
