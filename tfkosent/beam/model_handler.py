"""A RunInference ModelHandler over the exported `sentence_encoder/1` SavedModel.

    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    handler = SentenceEncoderModelHandler("export/sentence_encoder/1", inference_batch_size=64)
    keyed = pairs | RunInference(KeyedModelHandler(handler))   # (id, PredictionResult)

It calls exactly what TF Serving calls: the `serving_default` signature,
`sentences` tf.string [None] -> `embeddings` float32 [None, hidden]
(L2-normalized).

Why not `apache_beam.ml.inference.tensorflow_inference.TFModelHandlerTensor`
with a custom `inference_fn`: its loader is `tf.keras.models.load_model`,
which under Keras 3 (what TF 2.21 ships) refuses a plain SavedModel
directory, and the module imports `tensorflow_hub` at import time (which
itself needs `pkg_resources`). Loading with `tf.saved_model.load` after
`import tensorflow_text` (the SentencePiece op) is all a string-in,
embedding-out model needs, so this is a small ModelHandler subclass with the
same batching knobs (min/max batch size) as Beam's TensorFlow handlers.

Batching: Beam's BatchElements forms batches of `min_batch_size` ..
`max_batch_size` sentences. When the export has its `preprocess/` module next
to `sentence_encoder/`, the handler tokenizes each such batch with it, sorts it
by token count and sends it to the signature `inference_batch_size` sentences
at a time, so each call is padded only to its own longest sentence (the
signature pads to the longest in the call, capped at seq_length). An export
made with `--max-batch-tokens N` refuses a call of more than N padded tokens:
the calls are cut to fit it too. Without `preprocess/`, UTF-8 length orders
the sentences, and under a budget each counts at the export's seq_length.

Truncation: the signature keeps the first `seq_length - specials` tokens of a
longer sentence (as `SentenceEncoder.encode` does, which warns). A worker
cannot warn usefully, so the handler counts the sentences over the limit in
the Beam counter `truncated` (namespace "tfkosent.embed_corpus");
`tfkosent embed-corpus` prints and records it.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import Metrics
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from tfkosent.beam.paths import join_path
from tfkosent.model_dir import EXPORT_INFO_FILE  # TF-free; `import tfkosent` loads it already

_LOGGER = logging.getLogger(__name__)

# The namespace of embed-corpus's Beam counters (`truncated` is counted here).
METRICS_NAMESPACE = "tfkosent.embed_corpus"
TRUNCATED_COUNTER = "truncated"
PREPROCESS_DIR = "preprocess"
SIGNATURE = "serving_default"
INPUT_KEY = "sentences"
OUTPUT_KEY = "embeddings"


def _has_saved_model(path: str) -> bool:
    return FileSystems.exists(join_path(path, "saved_model.pb"))


def resolve_serving_dir(model: str) -> str:
    """The SavedModel directory to serve from `model`.

    Accepts an export directory (uses `sentence_encoder/<highest version>`), a
    TF Serving base path (`.../sentence_encoder`, highest numeric version
    inside, as TF Serving's default version policy does), or a SavedModel
    directory itself (`.../sentence_encoder/1`).
    """
    model = model.rstrip("/") if "://" in model else os.path.abspath(os.path.expanduser(model))
    if _has_saved_model(model):
        return model
    for base in (join_path(model, "sentence_encoder"), model):
        versions = []
        for result in FileSystems.match([join_path(base, "*", "saved_model.pb")]):
            for meta in result.metadata_list:
                version = posixpath.basename(posixpath.dirname(meta.path.replace("\\", "/")))
                if version.isdigit():
                    versions.append((int(version), join_path(base, version)))
        if versions:
            return max(versions)[1]
    if FileSystems.exists(join_path(model, "config.json")):
        raise ValueError(f"{model} is a tfkosent model directory, not an export: run "
                         f"`tfkosent export --model {model} --out EXPORT_DIR` and pass EXPORT_DIR")
    raise FileNotFoundError(f"{model}: no sentence_encoder/<version>/saved_model.pb "
                            f"(pass a directory written by `tfkosent export`)")


def export_dir_of(serving_dir: str) -> str:
    """The export directory holding `serving_dir` (`EXPORT/sentence_encoder/1` -> `EXPORT`)."""
    return posixpath.dirname(posixpath.dirname(serving_dir.replace("\\", "/").rstrip("/")))


def export_info(serving_dir: str) -> Dict[str, Any]:
    """`tfkosent_export.json` of the export holding `serving_dir` ({} when absent)."""
    path = join_path(export_dir_of(serving_dir), EXPORT_INFO_FILE)
    if not FileSystems.exists(path):
        return {}
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def preprocess_dir(serving_dir: str) -> Optional[str]:
    """The export's `preprocess/` SavedModel next to `sentence_encoder/`, or None when absent
    (a bare TF Serving model directory has none)."""
    path = join_path(export_dir_of(serving_dir), PREPROCESS_DIR)
    return path if _has_saved_model(path) else None


def token_limit(info: Dict[str, Any]) -> Optional[int]:
    """Tokens of one sentence that are embedded: `seq_length` minus the special tokens packing
    adds to one segment; None when `tfkosent_export.json` does not say."""
    seq_length, packing = info.get("seq_length"), info.get("packing")
    if not seq_length or not packing:
        return None
    from tfkosent.layers.packing import num_special_tokens
    return int(seq_length) - num_special_tokens(1, packing)


def max_batch_tokens(info: Dict[str, Any]) -> Optional[int]:
    """The export's per-request budget (`tfkosent export --max-batch-tokens`), or None."""
    value = (info.get("serving") or {}).get("max_batch_tokens")
    return int(value) if value else None


class _LoadedEncoder:
    """Keeps the loaded SavedModel alive next to its signature function; `preprocess` (or
    None) tokenizes, to count the sentences longer than `limit` tokens and to cut calls that
    fit `budget` padded tokens (None: no budget)."""

    def __init__(self, saved_model, signature, preprocess=None, limit: Optional[int] = None,
                 specials: int = 0, budget: Optional[int] = None, max_length: Optional[int] = None):
        self.saved_model = saved_model
        self.signature = signature
        self.preprocess = preprocess
        self.limit = limit
        self.specials = specials
        self.budget = budget
        self.max_length = max_length  # the export's seq_length: what a call pads to at most


class SentenceEncoderModelHandler(ModelHandler[str, PredictionResult, _LoadedEncoder]):
    """str -> PredictionResult(example=str, inference=float32 [hidden])."""

    def __init__(self, saved_model_dir: str, *, inference_batch_size: int = 64,
                 min_batch_size: Optional[int] = None, max_batch_size: Optional[int] = None,
                 signature: str = SIGNATURE, input_key: str = INPUT_KEY,
                 output_key: str = OUTPUT_KEY, intra_op_threads: Optional[int] = None,
                 inter_op_threads: Optional[int] = None, **kwargs):
        """
        Args:
          saved_model_dir: `.../sentence_encoder/1` (see `resolve_serving_dir`).
          inference_batch_size: sentences per signature call.
          min_batch_size, max_batch_size: Beam batching (BatchElements);
            default `inference_batch_size` and `8 * inference_batch_size`.
          intra_op_threads, inter_op_threads: TF thread pools of each worker
            process (set before TF initializes; ignored with a warning after).
          kwargs: passed to ModelHandler (e.g. `large_model`, `model_copies`).
        """
        if not isinstance(inference_batch_size, int) or inference_batch_size < 1:
            raise ValueError(f"inference_batch_size must be a positive int, got {inference_batch_size!r}")
        min_batch_size = inference_batch_size if min_batch_size is None else min_batch_size
        max_batch_size = 8 * inference_batch_size if max_batch_size is None else max_batch_size
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(f"need 1 <= min_batch_size <= max_batch_size, "
                             f"got {min_batch_size}, {max_batch_size}")
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, **kwargs)
        self._saved_model_dir = saved_model_dir
        self._inference_batch_size = inference_batch_size
        self._signature = signature
        self._input_key = input_key
        self._output_key = output_key
        self._intra_op_threads = intra_op_threads
        self._inter_op_threads = inter_op_threads
        self._truncated = Metrics.counter(METRICS_NAMESPACE, TRUNCATED_COUNTER)

    def load_model(self) -> _LoadedEncoder:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

        for setter, value in ((tf.config.threading.set_intra_op_parallelism_threads, self._intra_op_threads),
                              (tf.config.threading.set_inter_op_parallelism_threads, self._inter_op_threads)):
            if value:
                try:
                    setter(value)
                except RuntimeError as e:  # TF already initialized in this process
                    _LOGGER.warning("cannot set TF threads to %s: %s", value, e)
        saved_model = tf.saved_model.load(self._saved_model_dir)
        if self._signature not in saved_model.signatures:
            raise ValueError(f"{self._saved_model_dir}: no signature {self._signature!r} "
                             f"(has {sorted(saved_model.signatures)})")
        info = export_info(self._saved_model_dir)
        preprocess, limit = self._load_preprocess(info)
        budget = max_batch_tokens(info)
        if budget is not None and preprocess is None:
            _LOGGER.info("%s: exported with max_batch_tokens=%d, without its preprocess/ module: each "
                         "sentence counts at the export's seq_length", self._saved_model_dir, budget)
        specials = 0
        if limit is not None:
            from tfkosent.layers.packing import num_special_tokens
            specials = num_special_tokens(1, info["packing"])
        return _LoadedEncoder(saved_model, saved_model.signatures[self._signature], preprocess, limit,
                              specials, budget, info.get("seq_length"))

    def _load_preprocess(self, info: Dict[str, Any]):
        """(preprocess module, token limit), or (None, None) when sentences cannot be measured."""
        import tensorflow as tf

        path = preprocess_dir(self._saved_model_dir)
        limit = token_limit(info)
        if path is None or limit is None:
            _LOGGER.info("%s: no preprocess/ module or seq_length: truncated sentences are not "
                         "counted", self._saved_model_dir)
            return None, None
        return tf.saved_model.load(path), limit

    def _token_counts(self, sentences: Sequence[str], model: _LoadedEncoder) -> Optional[np.ndarray]:
        """int64 [n]: each sentence's tokens (before truncation), or None without preprocess/;
        sentences over the model's limit are added to the `truncated` counter."""
        import tensorflow as tf

        if model.preprocess is None:
            return None
        ids = model.preprocess.tokenize(tf.constant(list(sentences), dtype=tf.string))
        if ids.ragged_rank > 1:  # [batch, (words), (pieces)]
            ids = ids.merge_dims(-2, -1)
        counts = ids.row_lengths().numpy()
        over = int(np.sum(counts > model.limit))
        if over:
            self._truncated.inc(over)
        return counts

    def _calls(self, order: Sequence[int], lengths: np.ndarray, budget: Optional[int]):
        """`order` (sentence indices, shortest first) cut into signature calls: at most
        `inference_batch_size` sentences, and with a budget, at most `budget` padded tokens
        (rows x the call's longest length; `lengths`: int [n], each sentence's packed length),
        which is what the export refuses beyond."""
        call: List[int] = []
        for i in order:
            if call and (len(call) >= self._inference_batch_size or
                         (budget is not None and (len(call) + 1) * lengths[i] > budget)):
                yield call
                call = []
            call.append(i)
        if call:
            yield call

    def run_inference(self, batch: Sequence[str], model: _LoadedEncoder,
                      inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
        import tensorflow as tf

        sentences = list(batch)
        if not sentences:
            return []
        counts = self._token_counts(sentences, model)
        # Similar lengths share a call: less padding.
        if counts is not None:
            lengths = np.minimum(counts, model.limit) + model.specials
            order = sorted(range(len(sentences)), key=lambda i: lengths[i])
        else:  # unmeasured: each may pad to the export's maximum; UTF-8 length orders them
            lengths = np.full(len(sentences), model.max_length or 0)
            order = sorted(range(len(sentences)), key=lambda i: len(sentences[i].encode("utf-8")))
        out: Optional[np.ndarray] = None
        for idx in self._calls(order, lengths, model.budget):
            inputs = tf.constant([sentences[i] for i in idx], dtype=tf.string)
            emb = model.signature(**{self._input_key: inputs})[self._output_key].numpy()
            if out is None:
                out = np.empty((len(sentences), emb.shape[-1]), np.float32)
            out[idx] = emb
        return [PredictionResult(s, e) for s, e in zip(sentences, out)]

    def validate_inference_args(self, inference_args: Optional[Dict[str, Any]]):
        if inference_args:
            raise ValueError(f"SentenceEncoderModelHandler takes no inference_args, got {inference_args}")

    def get_num_bytes(self, batch: Sequence[str]) -> int:
        return sum(len(s.encode("utf-8")) for s in batch)

    def get_metrics_namespace(self) -> str:
        return "tfkosent.RunInference"
