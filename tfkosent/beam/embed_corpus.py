"""Embed text files with Apache Beam: read -> validate -> RunInference -> shards.

    tfkosent embed-corpus 'corpus/*.txt' out/ --model EXPORT_DIR \\
        --direct_num_workers 2 --direct_running_mode multi_processing
    tfkosent embed-corpus news/ reviews/part-1.txt out/ --model EXPORT_DIR   # INPUT... OUTPUT

    from tfkosent.beam.embed_corpus import run
    result = run("corpus/*.txt", "out/", "EXPORT_DIR",
                 pipeline_options=["--direct_num_workers", "2",
                                   "--direct_running_mode", "multi_processing"])
    result.counts   # {"files": 3, "read": 10000, "embedded": 9990, "dead_lettered": 10, ...}

The pipeline:

1. MatchAll(INPUTs) -> ReadMatches -> `ReadLinesFn`: each file is read as raw
   bytes, line by line, so every line's 1-based number is exact and invalid
   UTF-8 can be seen (a decoding text source would fail or replace it).
   `.gz`/`.bz2`/... inputs are decompressed by extension. A line is split on
   "\\n" only; a trailing "\\r" (CRLF files) and a UTF-8 BOM on line 1 are
   dropped. With `column=N` the line is a TSV row and its N-th field
   (0-based) is the sentence. Files a directory or glob input matches that are
   named like this pipeline's output (`embeddings-*-of-*.tfrecord|.parquet`,
   `dead_letter.jsonl`, `embed_corpus.json`, anything under `beam-temp-*` or a
   staging directory) are an earlier run's output, not text: they are skipped
   and counted (`skipped_output_files`). A file named as an INPUT itself is
   always read.
2. Each line gets the id `<file>:<line>` (file relative to the common
   directory of the inputs: with one input its directory, as `corpus/a.txt`
   -> `a.txt:7`; with `d1/x.txt` and `d2/x.txt`, `d1/x.txt:7` and
   `d2/x.txt:7`) and is either valid, or goes to the dead-letter output with
   its reason: `invalid_utf8`, `empty`, `whitespace_only`, `missing_column`.
   Ids that would collide are refused before the pipeline starts.
3. Reshuffle (spreads the lines of one file over all workers), then
   RunInference with `SentenceEncoderModelHandler` over the exported
   `sentence_encoder/1` serving signature, batched by min/max batch size.
   Sentences longer than the model's token limit are truncated (as `encode`
   does) and counted (`truncated`, when the export has its `preprocess/`).
4. Writes `embeddings-SSSSS-of-NNNNN.tfrecord` (tf.train.Example {id,
   embedding}) and/or `.parquet` shards and `dead_letter.jsonl` (see
   `tfkosent.beam.outputs`). Beam's file sinks write to a temporary directory
   and rename on success, so a retried bundle never leaves a duplicate.

A run never loses work. Every argument is checked before anything is
touched, and OUTPUT must be a directory outside the inputs (not an existing
file, not inside a directory input or a `**` pattern's base directory). The
pipeline writes into a staging directory `OUTPUT/.embed-corpus-staging-<id>/`
(Beam's temporary directories land inside it); the result is verified there,
and only then moved into OUTPUT: an earlier run's output (`overwrite=True`)
is first moved aside into `OUTPUT/.embed-corpus-replaced-<id>/`, the new
files moved in, the manifest `embed_corpus.json` last, then the old files
deleted. A failed run deletes its staging directory and leaves OUTPUT as it
was. A killed run leaves OUTPUT as it was too: the next run into OUTPUT
removes its staging directory (and top-level `beam-temp-*` directories),
rolls back a half-done move (restoring the earlier output), logs what it
removed, and starts from scratch. So run one job at a time per OUTPUT.

After the run, counts come from Beam metrics and are checked against the
written output (`verify=True` re-reads the ids: every valid line exactly
once). Read the result back with `tfkosent.beam.read_embeddings(OUTPUT)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple, Union

try:
    import apache_beam as beam
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("tfkosent.beam.embed_corpus needs Apache Beam: "
                      "pip install 'tfkosent[beam]' (apache-beam)") from e
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics, MetricsFilter
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from tfkosent.beam import outputs
from tfkosent.beam.paths import (basename, common_base, has_glob, is_file, is_under, is_url,
                                 join_path, normalize_pattern, not_directory, pattern_base_dir,
                                 relative_name, relative_to)
from tfkosent.beam.publish import (REPLACED_PREFIX, STAGING_PREFIX, WORK_DIR_PREFIXES,
                                   existing_outputs, publish, recover)
from tfkosent.beam.model_handler import (METRICS_NAMESPACE, TRUNCATED_COUNTER,
                                         SentenceEncoderModelHandler, export_info, preprocess_dir,
                                         resolve_serving_dir, token_limit)
from tfkosent.validation import int_at_least

_LOGGER = logging.getLogger(__name__)

DEAD_LETTER_TAG = "dead_letter"
REASONS = ("invalid_utf8", "empty", "whitespace_only", "missing_column")
PREVIEW_CHARS = 200
_BOM = b"\xef\xbb\xbf"
_SHARD_NAME_RE = re.compile(r"^" + re.escape(outputs.EMBEDDINGS_PREFIX)
                            + r"-\d+-of-\d+(" + "|".join(re.escape(x) for x in outputs.SUFFIXES.values())
                            + r")$")


# ---------------------------------------------------------------- input ---

def is_output_name(rel: str) -> bool:
    """Whether `rel` ("/"-separated, relative to an input's base directory) is named like
    embed-corpus output: a shard, the dead letters, the manifest, or anything inside a
    Beam temporary or staging directory."""
    parts = rel.split("/")
    if any(part.startswith(WORK_DIR_PREFIXES) for part in parts[:-1]):
        return True
    name = parts[-1]
    return name in (outputs.DEAD_LETTER_NAME, outputs.MANIFEST_NAME) or bool(_SHARD_NAME_RE.match(name))


def output_skip_rules(patterns: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(base directories of the glob patterns, the plain file patterns) of normalized
    patterns: what `is_earlier_output` needs."""
    return ([pattern_base_dir(p) for p in patterns if has_glob(p)],
            [p for p in patterns if not has_glob(p)])


def is_earlier_output(path: str, glob_bases: Sequence[str], plain: Sequence[str]) -> bool:
    """Whether a matched file is an earlier run's output found by a directory or glob input
    (one named as an input itself is read whatever its name)."""
    if path in plain:
        return False
    for base in glob_bases:
        rel = relative_to(path, base)
        if rel is not None and is_output_name(rel):
            return True
    return False


def make_id(name: str, line_number: int) -> str:
    return f"{name}:{line_number}"


def _preview(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="backslashreplace")
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


def check_line(raw: bytes, column: Optional[int] = None):
    """`(sentence, None)` for a valid line, `(None, (reason, detail))` otherwise.

    `raw` is one line without its terminator.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, ("invalid_utf8", f"{e.reason} at byte {e.start}")
    if column is not None:
        fields = text.split("\t")
        if column >= len(fields):
            return None, ("missing_column", f"{len(fields)} field(s), wanted column {column} (0-based)")
        text = fields[column]
    if not text:
        return None, ("empty", "empty line" if column is None else f"empty column {column}")
    if not text.strip():
        return None, ("whitespace_only", f"{len(text)} whitespace character(s)")
    return text, None


class ReadLinesFn(beam.DoFn):
    """ReadableFile -> (id, sentence), and dead letters on the `dead_letter` output; ids name
    files relative to `id_base` (`common_base` of the inputs)."""

    def __init__(self, id_base: str, column: Optional[int] = None, skip_header_lines: int = 0):
        self._id_base = id_base
        self._column = column
        self._skip = skip_header_lines
        self._files = Metrics.counter(METRICS_NAMESPACE, "files")
        self._read = Metrics.counter(METRICS_NAMESPACE, "read")
        self._valid = Metrics.counter(METRICS_NAMESPACE, "valid")
        self._dead = Metrics.counter(METRICS_NAMESPACE, "dead_lettered")
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "skipped_header_lines")
        self._reasons = {r: Metrics.counter(METRICS_NAMESPACE, f"dead_lettered_{r}") for r in REASONS}

    def process(self, readable_file: fileio.ReadableFile):
        path = readable_file.metadata.path
        name = relative_name(path, self._id_base)
        self._files.inc()
        with readable_file.open(mime_type="application/octet-stream") as f:
            # readline splits on b"\n" only (bytes.splitlines would also split
            # on a lone "\r" and shift the line numbers).
            for number, raw in enumerate(iter(f.readline, b""), start=1):
                if number <= self._skip:
                    self._skipped.inc()
                    continue
                if raw.endswith(b"\n"):
                    raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                self._read.inc()
                sentence_id = make_id(name, number)
                sentence, problem = check_line(raw, self._column)
                if problem is None:
                    self._valid.inc()
                    yield sentence_id, sentence
                else:
                    reason, detail = problem
                    self._dead.inc()
                    self._reasons[reason].inc()
                    yield beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, {
                        "id": sentence_id, "file": path, "line": number, "reason": reason,
                        "detail": detail, "text": _preview(raw)})


class SkipOutputFilesFn(beam.DoFn):
    """FileMetadata -> itself, unless an earlier run's output (counted: `skipped_output_files`)."""

    def __init__(self, patterns: Sequence[str]):
        self._glob_bases, self._plain = output_skip_rules(patterns)
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "skipped_output_files")

    def process(self, metadata):
        if is_earlier_output(metadata.path, self._glob_bases, self._plain):
            self._skipped.inc()
            return
        yield metadata


# --------------------------------------------------------------- output ---

class ToRecordFn(beam.DoFn):
    """(id, PredictionResult) -> serialized tf.train.Example {id, embedding}."""

    def __init__(self):
        self._embedded = Metrics.counter(METRICS_NAMESPACE, "embedded")

    def process(self, element):
        import tensorflow as tf

        sentence_id, result = element
        self._embedded.inc()
        example = tf.train.Example(features=tf.train.Features(feature={
            outputs.ID_FEATURE: tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[sentence_id.encode("utf-8")])),
            outputs.EMBEDDING_FEATURE: tf.train.Feature(float_list=tf.train.FloatList(
                value=result.inference.tolist())),
        }))
        yield example.SerializeToString()


def _parquet_row(element):
    sentence_id, result = element
    return {outputs.ID_FEATURE: sentence_id,
            outputs.EMBEDDING_FEATURE: [float(v) for v in result.inference]}


def _count_parquet(element):
    Metrics.counter(METRICS_NAMESPACE, "embedded").inc()
    return element


def _dead_letter_json(record) -> str:
    return json.dumps(record, ensure_ascii=False)


def _check_crc32c() -> None:
    # Beam's TFRecord sink needs a crc32c implementation (it has no fallback).
    for module in ("google_crc32c", "crcmod", "snappy"):
        try:
            __import__(module)
            return
        except ImportError:
            pass
    raise ImportError("writing TFRecord shards with Beam needs google-crc32c (or crcmod): "
                      "pip install google-crc32c, or use --format parquet")


def build_pipeline(pipeline: beam.Pipeline, input_patterns: Union[str, Sequence[str]], output_dir: str,
                   serving_dir: str, *, column: Optional[int] = None, batch_size: int = 64,
                   max_batch_size: Optional[int] = None, formats: Sequence[str] = ("tfrecord",),
                   num_shards: int = 0, skip_header_lines: int = 0,
                   intra_op_threads: Optional[int] = None) -> Dict[str, beam.PCollection]:
    """Adds the embed-corpus transforms to `pipeline`; returns its PCollections.

    Writes straight into `output_dir` (`run` passes its staging directory).
    Returns {"sentences": (id, str), "embeddings": (id, PredictionResult),
    "dead_letters": dict}.
    """
    patterns = [input_patterns] if isinstance(input_patterns, str) else list(input_patterns)
    patterns = [normalize_pattern(p) for p in patterns]
    id_base = common_base([pattern_base_dir(p) for p in patterns])
    handler = SentenceEncoderModelHandler(serving_dir, inference_batch_size=batch_size,
                                          max_batch_size=max_batch_size,
                                          intra_op_threads=intra_op_threads)
    p = pipeline
    paths = (p | "Patterns" >> beam.Create(patterns)
             | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
             | "SkipDirectories" >> beam.Filter(not_directory)
             | "SkipEarlierOutput" >> beam.ParDo(SkipOutputFilesFn(patterns))
             | "Paths" >> beam.Map(lambda m: m.path)
             | "DistinctFiles" >> beam.Distinct())  # a file matched by two patterns is read once
    lines = (paths
             | "ReadMatches" >> fileio.ReadMatches()
             | "ReadLines" >> beam.ParDo(ReadLinesFn(id_base, column, skip_header_lines))
             .with_outputs(DEAD_LETTER_TAG, main="sentences"))
    sentences = lines.sentences
    dead_letters = lines[DEAD_LETTER_TAG]
    embeddings = (sentences
                  | "Spread" >> beam.Reshuffle()
                  | "Embed" >> RunInference(KeyedModelHandler(handler)))
    prefix = join_path(output_dir, outputs.EMBEDDINGS_PREFIX)
    if "tfrecord" in formats:
        (embeddings
         | "ToExample" >> beam.ParDo(ToRecordFn())
         | "WriteTFRecord" >> beam.io.WriteToTFRecord(
             prefix, file_name_suffix=outputs.SUFFIXES["tfrecord"], num_shards=num_shards))
    if "parquet" in formats:
        import pyarrow as pa

        schema = pa.schema([(outputs.ID_FEATURE, pa.string()),
                            (outputs.EMBEDDING_FEATURE, pa.list_(pa.float32()))])
        rows = embeddings | "ToRow" >> beam.Map(_parquet_row)
        if "tfrecord" not in formats:
            rows = rows | "CountEmbedded" >> beam.Map(_count_parquet)
        rows | "WriteParquet" >> beam.io.WriteToParquet(
            prefix, schema, file_name_suffix=outputs.SUFFIXES["parquet"], num_shards=num_shards)
    (dead_letters
     | "DeadLetterJson" >> beam.Map(_dead_letter_json)
     | "WriteDeadLetter" >> beam.io.WriteToText(
         join_path(output_dir, outputs.DEAD_LETTER_NAME), num_shards=1, shard_name_template=""))
    return {"sentences": sentences, "embeddings": embeddings, "dead_letters": dead_letters}


# ------------------------------------------------------------------ run ---

@dataclasses.dataclass
class EmbedCorpusResult:
    output_dir: str
    counts: Dict[str, int]
    files: Dict[str, List[str]]
    seconds: float
    manifest_path: str
    # Tokens of a sentence that are embedded (a longer one is truncated); None: not known.
    max_tokens: Optional[int] = None


def _counters(result) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    try:
        query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except Exception as e:  # some runners report no metrics
        _LOGGER.warning("could not query Beam metrics: %s", e)
        return counts
    for c in query["counters"]:
        try:
            value = c.committed
        except Exception:
            value = None
        if value is None:
            value = c.attempted
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + int(value or 0)
    return counts


# ---------------------------------------------------- checks up front ---

def check_arguments(formats: Sequence[str], column: Optional[int], batch_size: int,
                    max_batch_size: Optional[int], num_shards: int, skip_header_lines: int,
                    intra_op_threads: Optional[int]) -> Tuple[str, ...]:
    """Checks every argument of `run` before anything is touched; returns `formats` deduplicated.

    Errors name the argument and its CLI option: a bad value found after an earlier output was
    replaced would cost that output (it no longer can: see `run`), and found on the workers it
    would be a Beam traceback.
    """
    formats = tuple(dict.fromkeys(formats))
    bad = [f for f in formats if f not in outputs.FORMATS]
    if not formats or bad:
        raise ValueError(f"formats (--format) must be a non-empty subset of {outputs.FORMATS}, got {formats}")
    int_at_least(column, "column (--column, 0-based)", 0, optional=True)
    int_at_least(batch_size, "batch_size (--batch-size)", 1)
    int_at_least(max_batch_size, "max_batch_size (--max-batch-size)", 1, optional=True)
    if max_batch_size is not None and max_batch_size < batch_size:
        raise ValueError(f"max_batch_size (--max-batch-size) must be >= batch_size (--batch-size), "
                         f"got {max_batch_size} < {batch_size}")
    int_at_least(num_shards, "num_shards (--num-shards; 0: the runner decides)", 0)
    int_at_least(skip_header_lines, "skip_header_lines (--skip-header-lines)", 0)
    int_at_least(intra_op_threads, "intra_op_threads (--tf-threads)", 1, optional=True)
    return formats


def check_output_location(output_dir: str, patterns: Sequence[str], normalized: Sequence[str]) -> None:
    """OUTPUT must be a directory that no input reads.

    Not an existing file: an unquoted shell glob (`in/*.txt out/`) puts an input file last.
    Not inside a directory input or under a `**` pattern's base directory: the run's own
    files would be read as input.
    """
    if is_file(output_dir):
        raise FileExistsError(f"OUTPUT {output_dir} is an existing file, not a directory (OUTPUT is "
                              f"the last path; if the shell expanded a glob, quote it: 'corpus/*.txt')")
    for pattern, norm in zip(patterns, normalized):
        if "**" in norm and is_under(output_dir, pattern_base_dir(norm)):
            raise ValueError(f"OUTPUT {output_dir} is inside the input {pattern}, which reads every file "
                             f"under {pattern_base_dir(norm)}: write the output outside it")


def list_inputs(patterns: Sequence[str], normalized: Sequence[str]) -> List[str]:
    """The files the pipeline will read (directories and earlier output left out); every
    pattern must match one."""
    glob_bases, plain = output_skip_rules(normalized)
    files: Dict[str, None] = {}
    for pattern, norm in zip(patterns, normalized):
        matched = [m.path for m in FileSystems.match([norm])[0].metadata_list if not_directory(m)]
        kept = [p for p in matched if not is_earlier_output(p, glob_bases, plain)]
        if not kept:
            skipped = f" (skipped {len(matched)} named like embed-corpus output)" if matched else ""
            raise FileNotFoundError(f"{pattern}: no input file matches{skipped}")
        files.update(dict.fromkeys(kept))
    return list(files)


def check_unique_ids(paths: Sequence[str], id_base: str) -> None:
    """Refuses input files whose ids would collide (the job would only fail at its end)."""
    by_name: Dict[str, List[str]] = {}
    for path in paths:
        by_name.setdefault(relative_name(path, id_base), []).append(path)
    clashes = {name: same for name, same in by_name.items() if len(same) > 1}
    if clashes:
        name, same = next(iter(clashes.items()))
        raise ValueError(f"{len(clashes)} input file name(s) would give duplicate ids, e.g. {name}:LINE "
                         f"for {', '.join(same[:3])}: an id's FILE is relative to the inputs' common "
                         f"directory ({id_base or 'none'}); rename the files or embed them separately")


def _pipeline_options(pipeline_options) -> PipelineOptions:
    if pipeline_options is None:
        return PipelineOptions([])
    if isinstance(pipeline_options, PipelineOptions):
        return pipeline_options
    return PipelineOptions(list(pipeline_options))


# ----------------------------------------------------------------- run ---

def _embed_into(staging: str, pipeline: beam.Pipeline, formats: Sequence[str],
                verify: bool) -> Tuple[Dict[str, int], Dict[str, List[str]]]:
    """Runs the built pipeline; returns (counts, file names) of what it wrote into `staging`."""
    result = pipeline.run()
    state = result.wait_until_finish()
    if str(state).upper().rsplit(".", 1)[-1] not in ("DONE", "NONE"):
        raise RuntimeError(f"embed-corpus pipeline ended in state {state}")
    counts = _counters(result)

    files: Dict[str, List[str]] = {}
    for fmt in formats:
        matched = FileSystems.match([join_path(staging, f"{outputs.EMBEDDINGS_PREFIX}-*"
                                                   f"{outputs.SUFFIXES[fmt]}")])[0].metadata_list
        files[fmt] = sorted(basename(m.path) for m in matched)
    files["dead_letter"] = [outputs.DEAD_LETTER_NAME]

    if verify:
        for fmt in formats:
            ids = outputs.read_ids_from_files([join_path(staging, n) for n in files[fmt]], fmt)
            if len(set(ids)) != len(ids):
                raise RuntimeError(f"{len(ids) - len(set(ids))} duplicate id(s) in the {fmt} shards")
            counts.setdefault("embedded", len(ids))
            if "valid" in counts and len(ids) != counts["valid"]:
                raise RuntimeError(f"{counts['valid']} valid lines but {len(ids)} embeddings in the "
                                   f"{fmt} shards")
            counts[f"written_{fmt}"] = len(ids)
    if "valid" in counts and counts.get("embedded", counts["valid"]) != counts["valid"]:
        raise RuntimeError(f"{counts['valid']} valid lines but {counts['embedded']} embedded")
    return counts, files


def run(input_patterns: Union[str, Sequence[str]], output_dir: str, model: str, *,
        column: Optional[int] = None, batch_size: int = 64, max_batch_size: Optional[int] = None,
        formats: Sequence[str] = ("tfrecord",), num_shards: int = 0, skip_header_lines: int = 0,
        pipeline_options: Union[None, PipelineOptions, Sequence[str]] = None,
        overwrite: bool = False, verify: bool = True,
        intra_op_threads: Optional[int] = None) -> EmbedCorpusResult:
    """Runs the pipeline to completion; see the module docstring.

    Args:
      input_patterns: file, directory (every file under it) or glob (or a
        list of them); `.gz` etc. are decompressed.
      output_dir: directory for the shards (created; must hold no earlier
        output unless `overwrite`; not an existing file, not inside an input).
      model: export directory written by `tfkosent export` (or its
        `sentence_encoder/` or `sentence_encoder/1/`).
      column: TSV column (0-based) holding the sentence; None: the whole line.
      batch_size: sentences per model call (and Beam's min batch size).
      max_batch_size: Beam's max batch size (default 8 * batch_size).
      formats: any of "tfrecord", "parquet".
      num_shards: output shards per format; 0 lets the runner decide.
      skip_header_lines: lines to skip at the top of every file (TSV headers).
      pipeline_options: PipelineOptions or Beam command-line flags.
      overwrite: replace an earlier run's shards, dead letters and manifest
        (only once the new run has succeeded).
      verify: re-read the written ids and check each valid line is there once.
      intra_op_threads: TF intra-op threads per worker process.
    """
    start = time.time()
    formats = check_arguments(formats, column, batch_size, max_batch_size, num_shards,
                              skip_header_lines, intra_op_threads)
    if "tfrecord" in formats:
        _check_crc32c()
    patterns = [input_patterns] if isinstance(input_patterns, str) else list(input_patterns)
    if not patterns:
        raise ValueError("no input given")
    normalized = [normalize_pattern(p) for p in patterns]
    if not is_url(output_dir):
        output_dir = os.path.abspath(os.path.expanduser(output_dir))
    check_output_location(output_dir, patterns, normalized)
    id_base = common_base([pattern_base_dir(p) for p in normalized])
    check_unique_ids(list_inputs(patterns, normalized), id_base)
    serving_dir = resolve_serving_dir(model)
    info = export_info(serving_dir)
    max_tokens = token_limit(info) if preprocess_dir(serving_dir) else None
    options = _pipeline_options(pipeline_options)

    recover(output_dir)
    existing = existing_outputs(output_dir)
    if existing and not overwrite:
        raise FileExistsError(f"{output_dir} already holds embed-corpus output "
                              f"({basename(existing[0])}, ...); pass --overwrite or another directory")
    token = uuid.uuid4().hex
    staging = join_path(output_dir, STAGING_PREFIX + token)
    FileSystems.mkdirs(staging)
    try:
        pipeline = beam.Pipeline(options=options)
        build_pipeline(pipeline, patterns, staging, serving_dir, column=column,
                       batch_size=batch_size, max_batch_size=max_batch_size, formats=formats,
                       num_shards=num_shards, skip_header_lines=skip_header_lines,
                       intra_op_threads=intra_op_threads)
        try:
            counts, files = _embed_into(staging, pipeline, formats, verify)
        except RuntimeError as e:
            raise RuntimeError(f"{output_dir}: {e} (OUTPUT left as it was)") from e
        counts.setdefault("skipped_output_files", 0)
        if max_tokens is not None:
            counts.setdefault(TRUNCATED_COUNTER, 0)
        manifest = {
            "format": outputs.MANIFEST_FORMAT, "format_version": outputs.MANIFEST_FORMAT_VERSION,
            "input": normalized, "id_base": id_base,
            "column": column, "skip_header_lines": skip_header_lines,
            "model": model if is_url(model) else os.path.abspath(model), "serving_dir": serving_dir,
            "hidden_size": info.get("hidden_size"), "seq_length": info.get("seq_length"),
            "max_tokens": max_tokens, "counts": counts, "files": files,
            "id": "FILE:LINE, FILE relative to id_base (the common directory of the inputs' "
                  "directories; with one input, its directory), LINE 1-based",
            "seconds": round(time.time() - start, 3),
        }
        with FileSystems.create(join_path(staging, outputs.MANIFEST_NAME)) as f:
            f.write(json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
        publish(staging, output_dir, join_path(output_dir, REPLACED_PREFIX + token))
    except BaseException:
        try:  # the staging directory goes; a half-done publish is rolled back
            recover(output_dir, log=False)
        except Exception as cleanup_error:  # keep the run's own error
            _LOGGER.warning("embed-corpus: could not clean up %s: %s", staging, cleanup_error)
        raise
    return EmbedCorpusResult(output_dir, counts, files, time.time() - start,
                             join_path(output_dir, outputs.MANIFEST_NAME), max_tokens)


# ------------------------------------------------------------------ CLI ---

def _extra_parser() -> argparse.ArgumentParser:
    # Options of embed-corpus that tfkosent.cli does not declare; the rest of
    # the unknown arguments are Beam pipeline options.
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--format", dest="output_format", choices=("tfrecord", "parquet", "both"),
                   default="tfrecord")
    p.add_argument("--max-batch-size", type=int, default=None)
    p.add_argument("--num-shards", type=int, default=0)
    p.add_argument("--skip-header-lines", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-verify", dest="verify", action="store_false")
    p.add_argument("--tf-threads", type=int, default=None)
    return p


CLI_USAGE = "tfkosent embed-corpus INPUT [INPUT ...] OUTPUT --model DIR [options] [Beam options]"

CLI_HELP = f"""\
{CLI_USAGE}

  INPUT                 file, directory (every file under it) or glob ('corpus/*.txt',
                        'corpus/**'); .gz/.bz2 inputs are decompressed; several may be given
  OUTPUT                the last path: directory for embeddings-*.tfrecord|.parquet,
                        dead_letter.jsonl, embed_corpus.json (not inside a directory input)
  --model DIR           export directory written by `tfkosent export`
  --column N            the sentence is field N (0-based) of a TSV line
  --batch-size N        sentences per model call (default 64)
  --max-batch-size N    Beam's max batch (default 8 x batch size)
  --format F            tfrecord (default), parquet or both
  --num-shards N        shards per format (default: the runner decides)
  --skip-header-lines N lines to skip at the top of every file
  --overwrite           replace an earlier run's output in OUTPUT (once the new run succeeded)
  --no-verify           do not re-read the written ids
  --tf-threads N        TF intra-op threads per worker process
  --runner R            Beam runner (default DirectRunner)
  Beam options, e.g.    --direct_num_workers 2 --direct_running_mode multi_processing

Quote globs ('corpus/*.txt'): the shell would expand them, and its last file would be OUTPUT.
A run writes into OUTPUT/.embed-corpus-staging-*/ and moves its files into OUTPUT only when
it succeeded: a failed or killed run leaves OUTPUT as it was (the next run cleans up).
"""


def beam_option_arities() -> Dict[str, bool]:
    """Every option Beam's PipelineOptions classes define -> whether it takes a value.

    Built the way `PipelineOptions.get_all_options` builds its parser (each subclass adds its
    arguments); a switch such as `--save_main_session` takes none."""
    from apache_beam.options import pipeline_options as po

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    classes = {}
    pending = list(po.PipelineOptions.__subclasses__())
    while pending:  # the subclasses of subclasses too (runner-specific option classes)
        cls = pending.pop()
        classes.setdefault(str(cls), cls)
        pending.extend(cls.__subclasses__())
    for cls in classes.values():
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError:  # an option two classes declare: the first one stands
            continue
    return {option: action.nargs != 0 for action in parser._actions for option in action.option_strings}


STRAY_MESSAGE = ("unexpected argument(s) {}: INPUT [INPUT ...] OUTPUT must stand together, and "
                 "each option takes one value")


def _is_option(token: str) -> bool:
    """An option, not a path or a value: starts with "-", but is not "-" (stdin) or a
    negative number."""
    return token.startswith("-") and token != "-" and not re.fullmatch(r"-\d[\d.]*", token)


def _arity(name: str, takes_value: Dict[str, bool]) -> Optional[bool]:
    """Whether option `name` takes a value: as `takes_value` says, also for an unambiguous
    prefix (argparse accepts `--overw` for `--overwrite`); None when unknown or ambiguous."""
    if name in takes_value:
        return takes_value[name]
    matches = {takes_value[o] for o in takes_value if o.startswith(name)} if name.startswith("--") else set()
    return matches.pop() if len(matches) == 1 else None


def paths_first(tokens: Sequence[str], takes_value: Dict[str, bool]) -> List[str]:
    """`tokens` (embed-corpus's arguments) with its paths moved in front of the options.

    argparse reads INPUT [INPUT ...] OUTPUT only where the paths stand first or after the
    options it knows, and it does not know Beam's: in `--direct_num_workers 2 in.txt out` it
    took "2" for the first path. Here each option takes its value with it, as `takes_value`
    (option -> bool) says; an option it does not know takes the next token as its value
    unless that token is an option too (Beam's own rule for options it does not declare).
    After "--" every token is a path (they follow the options and the "--").

    The paths must stand together, anywhere: a bare token apart from them (`--overwrite yes`)
    is refused (ValueError), never taken for OUTPUT. The largest run of bare tokens is the
    paths (the first of equals)."""
    groups: List[List[str]] = []
    options: List[str] = []
    after_dashes: Optional[List[str]] = None
    in_group = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            after_dashes = list(tokens[i + 1:])
            break
        if _is_option(token):
            options.append(token)
            has_value = _arity(token.split("=", 1)[0], takes_value)
            if has_value is None:
                has_value = i + 1 < len(tokens) and not _is_option(tokens[i + 1])  # "--" is one too
            if "=" not in token and has_value and i + 1 < len(tokens):
                options.append(tokens[i + 1])
                i += 1
            in_group = False
        else:
            if not in_group:
                groups.append([])
            groups[-1].append(token)
            in_group = True
        i += 1
    if after_dashes is not None:
        stray = [t for g in groups for t in g]
        if stray:
            raise ValueError(STRAY_MESSAGE.format(" ".join(stray)))
        return options + ["--"] + after_dashes
    paths = max(groups, key=len, default=[])
    stray = [t for g in groups if g is not paths for t in g]
    if stray:
        raise ValueError(STRAY_MESSAGE.format(" ".join(stray)))
    return paths + options


def _usage_error(message: str) -> int:
    print(f"usage: {CLI_USAGE}\ntfkosent embed-corpus: error: {message}", file=sys.stderr)
    return 2


def unknown_beam_options(beam_args: Sequence[str]) -> List[str]:
    """The options in `beam_args` that no Beam PipelineOptions class defines, as "--name"."""
    options = PipelineOptions(list(beam_args))
    known = options.get_all_options(drop_default=False)
    retained = options.get_all_options(drop_default=False, retain_unknown_options=True)
    return [f"--{name}" for name in retained if name not in known]


def run_cli(args, beam_args: List[str]) -> int:
    """`tfkosent embed-corpus`: `args` from tfkosent.cli, `beam_args` the rest."""
    if any(a in ("-h", "--help") for a in beam_args):
        print(CLI_HELP)
        return 0
    paths = list(args.paths)
    extra_parser = _extra_parser()
    if len(paths) < 2:
        return _usage_error(f"need INPUT [INPUT ...] OUTPUT, got only {paths[0]!r}")
    extra, beam_args = extra_parser.parse_known_args(beam_args)
    runner = getattr(args, "runner", None) or "DirectRunner"
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args = ["--runner", runner] + list(beam_args)
    if not any(a.startswith("--default_sdk_harness_log_level") for a in beam_args):
        # Worker processes log every channel they open at INFO; keep errors.
        beam_args = list(beam_args) + ["--default_sdk_harness_log_level=ERROR"]
    formats = ("tfrecord", "parquet") if extra.output_format == "both" else (extra.output_format,)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    if args.model == "default" and not os.path.exists(args.model):
        print("tfkosent embed-corpus: error: --model takes an export (its sentence_encoder/ runs on "
              "the workers); for the default model run `tfkosent export --model default --out DIR` "
              "and pass --model DIR", file=sys.stderr)
        return 2
    unknown = unknown_beam_options(beam_args)
    if unknown:
        # Beam would drop them with a warning (hidden at this log level): a mistyped option,
        # e.g. --skip_header_lines for --skip-header-lines, would silently do nothing.
        print(f"tfkosent embed-corpus: error: unknown option(s) {', '.join(unknown)}: neither "
              f"tfkosent's (see --help; they use dashes) nor Apache Beam's", file=sys.stderr)
        return 2
    try:
        result = run(paths[:-1], paths[-1], args.model, column=args.column,
                     batch_size=args.batch_size, max_batch_size=extra.max_batch_size,
                     formats=formats, num_shards=extra.num_shards,
                     skip_header_lines=extra.skip_header_lines,
                     pipeline_options=PipelineOptions(beam_args), overwrite=extra.overwrite,
                     verify=extra.verify, intra_op_threads=extra.tf_threads)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        print(f"tfkosent embed-corpus: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # the run finished but its output failed the checks
        print(f"tfkosent embed-corpus: failed: {e}", file=sys.stderr)
        return 1
    c = result.counts
    rate = c.get("embedded", 0) / result.seconds if result.seconds > 0 else 0.0
    print(f"files:         {c.get('files', 0)}")
    print(f"read:          {c.get('read', 0)}")
    print(f"embedded:      {c.get('embedded', 0)}")
    print(f"dead-lettered: {c.get('dead_lettered', 0)}"
          + "".join(f"  {r}={c[f'dead_lettered_{r}']}" for r in REASONS if c.get(f"dead_lettered_{r}")))
    if c.get("skipped_header_lines"):
        print(f"skipped header lines: {c['skipped_header_lines']}")
    if c.get("skipped_output_files"):
        print(f"skipped output files: {c['skipped_output_files']} (named like embed-corpus output: "
              f"an earlier run's, not read)")
    if c.get(TRUNCATED_COUNTER):
        limit = result.max_tokens
        print(f"truncated: {c[TRUNCATED_COUNTER]} (longer than {limit} tokens: only the first {limit} "
              f"were embedded)")
    print(f"wrote {result.output_dir} ({', '.join(f'{k}: {len(v)} file(s)' for k, v in result.files.items())}) "
          f"in {result.seconds:.1f}s ({rate:.1f} sentences/s)")
    return 0
