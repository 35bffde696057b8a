"""Embed text files with Apache Beam: read -> validate -> RunInference -> shards.

    tfkosent embed-corpus 'corpus/*.txt' out/ --model EXPORT_DIR \\
        --direct_num_workers 2 --direct_running_mode multi_processing

    from tfkosent.beam.embed_corpus import run
    result = run("corpus/*.txt", "out/", "EXPORT_DIR",
                 pipeline_options=["--direct_num_workers", "2",
                                   "--direct_running_mode", "multi_processing"])
    result.counts   # {"files": 3, "read": 10000, "embedded": 9990, "dead_lettered": 10, ...}

The pipeline:

1. MatchAll(INPUT) -> ReadMatches -> `ReadLinesFn`: each file is read as raw
   bytes, line by line, so every line's 1-based number is exact and invalid
   UTF-8 can be seen (a decoding text source would fail or replace it).
   `.gz`/`.bz2`/... inputs are decompressed by extension. A line is split on
   "\\n" only; a trailing "\\r" (CRLF files) and a UTF-8 BOM on line 1 are
   dropped. With `column=N` the line is a TSV row and its N-th field
   (0-based) is the sentence.
2. Each line gets the id `<file>:<line>` (file relative to the input pattern's
   directory) and is either valid, or goes to the dead-letter output with its
   reason: `invalid_utf8`, `empty`, `whitespace_only`, `missing_column`.
3. Reshuffle (spreads the lines of one file over all workers), then
   RunInference with `SentenceEncoderModelHandler` over the exported
   `sentence_encoder/1` serving signature, batched by min/max batch size.
4. Writes `embeddings-SSSSS-of-NNNNN.tfrecord` (tf.train.Example {id,
   embedding}) and/or `.parquet` shards, `dead_letter.jsonl`, and last the
   manifest `embed_corpus.json` (see `tfkosent.beam.outputs`). Beam's file
   sinks write to a temporary directory and rename on success, so a retried
   bundle never leaves a duplicate.

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
import posixpath
import sys
import time
from typing import Dict, List, Optional, Sequence, Union

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
from tfkosent.beam.model_handler import SentenceEncoderModelHandler, export_info, resolve_serving_dir

_LOGGER = logging.getLogger(__name__)

METRICS_NAMESPACE = "tfkosent.embed_corpus"
DEAD_LETTER_TAG = "dead_letter"
REASONS = ("invalid_utf8", "empty", "whitespace_only", "missing_column")
PREVIEW_CHARS = 200
_GLOB_CHARS = "*?["
_BOM = b"\xef\xbb\xbf"


# ---------------------------------------------------------------- input ---

def _is_url(path: str) -> bool:
    return "://" in path


def _join(*parts: str) -> str:
    return posixpath.join(*parts) if _is_url(parts[0]) else os.path.join(*parts)


def normalize_pattern(pattern: str) -> str:
    """Absolute local path (URLs unchanged); a directory means every file under it.

    Beam's globs: `*` stays within a directory, `**` crosses directories.
    """
    if not _is_url(pattern):
        pattern = os.path.abspath(os.path.expanduser(pattern))
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**")
    elif pattern.endswith("/"):
        pattern += "**"
    return pattern


def pattern_base_dir(pattern: str) -> str:
    """The directory ids are relative to: the pattern's part before its first glob."""
    cut = min((pattern.index(c) for c in _GLOB_CHARS if c in pattern), default=len(pattern))
    head = pattern[:cut]
    sep = "/" if _is_url(pattern) else os.sep
    if cut == len(pattern):  # a plain file
        return head.rsplit(sep, 1)[0] if sep in head else ""
    return head[:head.rfind(sep)] if sep in head else ""


def relative_name(path: str, bases: Sequence[str]) -> str:
    """`path` relative to the longest base containing it ("/"-separated)."""
    for base in sorted(bases, key=len, reverse=True):
        if base and path.startswith(base.rstrip("/\\") + ("/" if _is_url(path) else os.sep)):
            rel = path[len(base.rstrip("/\\")) + 1:]
            return rel.replace(os.sep, "/") if not _is_url(path) else rel
    return posixpath.basename(path.replace(os.sep, "/"))


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
    """ReadableFile -> (id, sentence), and dead letters on the `dead_letter` output."""

    def __init__(self, bases: Sequence[str], column: Optional[int] = None, skip_header_lines: int = 0):
        self._bases = list(bases)
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
        name = relative_name(path, self._bases)
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


def _not_directory(metadata) -> bool:
    path = metadata.path
    if path.endswith("/") or path.endswith("\\"):
        return False
    return _is_url(path) or not os.path.isdir(path)


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

    Returns {"sentences": (id, str), "embeddings": (id, PredictionResult),
    "dead_letters": dict}.
    """
    patterns = [input_patterns] if isinstance(input_patterns, str) else list(input_patterns)
    patterns = [normalize_pattern(p) for p in patterns]
    bases = [pattern_base_dir(p) for p in patterns]
    handler = SentenceEncoderModelHandler(serving_dir, inference_batch_size=batch_size,
                                          max_batch_size=max_batch_size,
                                          intra_op_threads=intra_op_threads)
    p = pipeline
    paths = (p | "Patterns" >> beam.Create(patterns)
             | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.DISALLOW)
             | "SkipDirectories" >> beam.Filter(_not_directory)
             | "Paths" >> beam.Map(lambda m: m.path)
             | "DistinctFiles" >> beam.Distinct())  # a file matched by two patterns is read once
    lines = (paths
             | "ReadMatches" >> fileio.ReadMatches()
             | "ReadLines" >> beam.ParDo(ReadLinesFn(bases, column, skip_header_lines))
             .with_outputs(DEAD_LETTER_TAG, main="sentences"))
    sentences = lines.sentences
    dead_letters = lines[DEAD_LETTER_TAG]
    embeddings = (sentences
                  | "Spread" >> beam.Reshuffle()
                  | "Embed" >> RunInference(KeyedModelHandler(handler)))
    prefix = _join(output_dir, outputs.EMBEDDINGS_PREFIX)
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
         _join(output_dir, outputs.DEAD_LETTER_NAME), num_shards=1, shard_name_template=""))
    return {"sentences": sentences, "embeddings": embeddings, "dead_letters": dead_letters}


# ------------------------------------------------------------------ run ---

@dataclasses.dataclass
class EmbedCorpusResult:
    output_dir: str
    counts: Dict[str, int]
    files: Dict[str, List[str]]
    seconds: float
    manifest_path: str


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


def _existing_outputs(output_dir: str) -> List[str]:
    found = []
    for pattern in (f"{outputs.EMBEDDINGS_PREFIX}-*", outputs.DEAD_LETTER_NAME, outputs.MANIFEST_NAME):
        for r in FileSystems.match([_join(output_dir, pattern)]):
            found.extend(m.path for m in r.metadata_list)
    return found


def _basename(path: str) -> str:
    return posixpath.basename(path.replace("\\", "/"))


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
        output unless `overwrite`).
      model: export directory written by `tfkosent export` (or its
        `sentence_encoder/` or `sentence_encoder/1/`).
      column: TSV column (0-based) holding the sentence; None: the whole line.
      batch_size: sentences per model call (and Beam's min batch size).
      max_batch_size: Beam's max batch size (default 8 * batch_size).
      formats: any of "tfrecord", "parquet".
      num_shards: output shards per format; 0 lets the runner decide.
      skip_header_lines: lines to skip at the top of every file (TSV headers).
      pipeline_options: PipelineOptions or Beam command-line flags.
      overwrite: delete an earlier run's shards, dead letters and manifest first.
      verify: re-read the written ids and check each valid line is there once.
      intra_op_threads: TF intra-op threads per worker process.
    """
    start = time.time()
    formats = tuple(dict.fromkeys(formats))
    bad = [f for f in formats if f not in outputs.FORMATS]
    if not formats or bad:
        raise ValueError(f"formats must be a non-empty subset of {outputs.FORMATS}, got {formats}")
    if column is not None and column < 0:
        raise ValueError(f"column must be >= 0 (0-based), got {column}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if "tfrecord" in formats:
        _check_crc32c()
    patterns = [input_patterns] if isinstance(input_patterns, str) else list(input_patterns)
    if not patterns:
        raise ValueError("no input given")
    for pattern in patterns:
        normalized = normalize_pattern(pattern)
        if not FileSystems.match([normalized])[0].metadata_list:
            raise FileNotFoundError(f"{pattern}: no input file matches")
    serving_dir = resolve_serving_dir(model)
    info = export_info(serving_dir)
    if not _is_url(output_dir):
        output_dir = os.path.abspath(os.path.expanduser(output_dir))
    existing = _existing_outputs(output_dir)
    if existing:
        if not overwrite:
            raise FileExistsError(f"{output_dir} already holds embed-corpus output "
                                  f"({_basename(existing[0])}, ...); pass --overwrite or another directory")
        FileSystems.delete(existing)
    if not FileSystems.exists(output_dir):
        FileSystems.mkdirs(output_dir)

    if pipeline_options is None:
        options = PipelineOptions([])
    elif isinstance(pipeline_options, PipelineOptions):
        options = pipeline_options
    else:
        options = PipelineOptions(list(pipeline_options))
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, patterns, output_dir, serving_dir, column=column,
                   batch_size=batch_size, max_batch_size=max_batch_size, formats=formats,
                   num_shards=num_shards, skip_header_lines=skip_header_lines,
                   intra_op_threads=intra_op_threads)
    result = pipeline.run()
    state = result.wait_until_finish()
    if str(state).upper().rsplit(".", 1)[-1] not in ("DONE", "NONE"):
        raise RuntimeError(f"embed-corpus pipeline ended in state {state}")
    counts = _counters(result)

    files: Dict[str, List[str]] = {}
    for fmt in formats:
        matched = FileSystems.match([_join(output_dir, f"{outputs.EMBEDDINGS_PREFIX}-*"
                                                       f"{outputs.SUFFIXES[fmt]}")])[0].metadata_list
        files[fmt] = sorted(_basename(m.path) for m in matched)
    files["dead_letter"] = [outputs.DEAD_LETTER_NAME]

    if verify:
        for fmt in formats:
            ids = outputs.read_ids_from_files([_join(output_dir, n) for n in files[fmt]], fmt)
            if len(set(ids)) != len(ids):
                raise RuntimeError(f"{output_dir}: {len(ids) - len(set(ids))} duplicate id(s) in the {fmt} shards")
            counts.setdefault("embedded", len(ids))
            if "valid" in counts and len(ids) != counts["valid"]:
                raise RuntimeError(f"{output_dir}: {counts['valid']} valid lines but {len(ids)} "
                                   f"embeddings in the {fmt} shards")
            counts[f"written_{fmt}"] = len(ids)
    if "valid" in counts and counts.get("embedded", counts["valid"]) != counts["valid"]:
        raise RuntimeError(f"{counts['valid']} valid lines but {counts['embedded']} embedded")

    manifest = {
        "format": outputs.MANIFEST_FORMAT, "format_version": outputs.MANIFEST_FORMAT_VERSION,
        "input": [normalize_pattern(p) for p in patterns],
        "column": column, "skip_header_lines": skip_header_lines,
        "model": model if _is_url(model) else os.path.abspath(model), "serving_dir": serving_dir,
        "hidden_size": info.get("hidden_size"), "seq_length": info.get("seq_length"),
        "counts": counts, "files": files,
        "id": "FILE:LINE, FILE relative to the input pattern's directory, LINE 1-based",
        "seconds": round(time.time() - start, 3),
    }
    manifest_path = _join(output_dir, outputs.MANIFEST_NAME)
    with FileSystems.create(manifest_path) as f:
        f.write(json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8"))
    return EmbedCorpusResult(output_dir, counts, files, time.time() - start, manifest_path)


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


CLI_HELP = """\
tfkosent embed-corpus INPUT OUTPUT --model EXPORT_DIR [options] [Beam pipeline options]

  INPUT                 file, directory (every file under it) or glob ('corpus/*.txt',
                        'corpus/**'); .gz/.bz2 inputs are decompressed
  OUTPUT                directory for embeddings-*.tfrecord|.parquet, dead_letter.jsonl,
                        embed_corpus.json
  --model DIR           export directory written by `tfkosent export`
  --column N            the sentence is field N (0-based) of a TSV line
  --batch-size N        sentences per model call (default 64)
  --max-batch-size N    Beam's max batch (default 8 x batch size)
  --format F            tfrecord (default), parquet or both
  --num-shards N        shards per format (default: the runner decides)
  --skip-header-lines N lines to skip at the top of every file
  --overwrite           replace an earlier run's output in OUTPUT
  --no-verify           do not re-read the written ids
  --tf-threads N        TF intra-op threads per worker process
  --runner R            Beam runner (default DirectRunner)
  Beam options, e.g.    --direct_num_workers 2 --direct_running_mode multi_processing
"""


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
    extra, beam_args = _extra_parser().parse_known_args(beam_args)
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
        result = run(args.input, args.output, args.model, column=args.column,
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
    print(f"wrote {result.output_dir} ({', '.join(f'{k}: {len(v)} file(s)' for k, v in result.files.items())}) "
          f"in {result.seconds:.1f}s ({rate:.1f} sentences/s)")
    return 0
