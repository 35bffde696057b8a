"""Export a tfkosent model as TF Hub-style SavedModels.

`export_model(model_dir, out_dir)` writes

    out_dir/
      tfkosent_export.json      what was exported (hidden size, layers, packing, seq_length,
                                prefix, vocabulary and parameter counts, source name and
                                weights sha256, the serving request limit, the model's metadata
                                and the tfkosent / TensorFlow versions that wrote it)
      DEFAULT_MODEL_LICENSE.md  for the default model and models made from it (their
                                licence_notes name it): the licence text, copied from the package
      README.md                 the model card, rendered from tfkosent_export.json alone
                                (`tfkosent.export_card.export_readme`): what the model is, each
                                module's signatures, usage snippets (tf_keras + TF Hub, Keras 3,
                                tfkosent, TF Serving REST), provenance and licence
      preprocess/               strings -> encoder inputs (TF Hub BERT preprocess contract;
                                padded to 128 tokens unless `seq_length` says otherwise)
      encoder/                  encoder inputs -> outputs (reusable SavedModel, fine-tunable;
                                its serving signatures check their inputs)
      sentence_encoder/1/       strings -> L2-normalized embeddings (TF Serving layout)

The modules follow the contract of TF Hub's BERT preprocess/encoder pairs
(tf-models `official/nlp/tools/export_tfhub_lib.py`), so

    preprocess = hub.KerasLayer(f"{out_dir}/preprocess")
    encoder = hub.KerasLayer(f"{out_dir}/encoder", trainable=True)
    embedding = tf.nn.l2_normalize(encoder(preprocess(sentences))["pooled_output"], -1)

is a string-to-embedding model. The SentencePiece model is a constant inside
the graphs: no asset file is read at load time.

Export is atomic: everything, README.md included, is written to a temporary directory,
reloaded and checked against the in-memory model (max abs difference <= 1e-5), and only
then renamed to `out_dir` (`overwrite=True` replaces all of an earlier export, its card too).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (SentencePiece ops must be registered before saving)

from tfkosent.export_card import README_FILE, export_readme
from tfkosent.layers.dropout import inputs_salt, salted
from tfkosent.layers.packing import (longest_packed_length, min_text_seq_length,
                                     num_special_tokens, pack_segments)
from tfkosent.layers.preprocessor import Preprocessor
from tfkosent.layers.transformer import ENCODER_INPUT_KEYS, TransformerEncoder
from tfkosent.model_dir import (EXPORT_INFO_FILE, atomic_directory, check_replaceable,
                                load_model_dir)
from tfkosent.validation import positive_int

# Sentences the export reloads and compares; they exercise the edge cases too.
PROBE_SENTENCES = ["한국어 문장 임베딩을 만듭니다.", "오늘 날씨가 정말 좋네요!", "", "   ",
                   "😀 emoji와 English, 漢字 mixed", "가" * 3000]
MAX_EXPORT_DIFF = 1e-5
SERVING_INPUT = "sentences"
SERVING_OUTPUT = "embeddings"
WARMUP_SENTENCES = ["안녕하세요.", "한국어 문장 임베딩 모델입니다.", ""]
# TF Serving fails a version's load when its warm-up file holds more records than this
# (saved_model_warmup_util: "Number of warmup records exceeds the maximum (1000)").
MAX_WARMUP_RECORDS = 1000
# What the preprocess module pads to by default: TF Hub's BERT preprocess models use 128.
DEFAULT_PREPROCESS_SEQ_LENGTH = 128


def trackable_object():
    # A plain AutoTrackable (not tf.Module): the reusable-SavedModel contract
    # needs attributes literally named `variables` and `trainable_variables`,
    # which tf.Module defines as read-only properties.
    return tf.__internal__.tracking.AutoTrackable()


def tf_variable(variable):
    # Keras 3 variables wrap a tf.Variable; SavedModel and hub.KerasLayer need the tf.Variable.
    # (A tf.Variable's own `value` is a method, so it is returned as is.)
    value = getattr(variable, "value", None)
    return value if isinstance(value, tf.Variable) else variable


def tf_variables(layer) -> List[tf.Variable]:
    return [tf_variable(v) for v in layer.variables]


def _encoder_input_spec():
    return {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in ENCODER_INPUT_KEYS}


def _assert(condition, template: str, *values) -> tf.Operation:
    """An Assert failing with InvalidArgumentError "assertion failed: [message]", the message
    being `template` with each {} replaced by one of `values` (tensors)."""
    return tf.debugging.Assert(condition, [tf.strings.format(template, values, summarize=20)])


def _batch_tokens_check(rows, length, max_batch_tokens: int, unit: str) -> tf.Operation:
    """Refuses a request of `rows` x `length` padded tokens over `max_batch_tokens`.

    Why: a signature pads a request to its longest row, and the encoder's memory grows with
    rows x length (docs/serving.md measures it), so a single request of thousands of long
    sentences could take a CPU server's memory and get it OOM-killed; a refused request is
    one client's 400."""
    total = tf.cast(rows, tf.int64) * tf.cast(length, tf.int64)
    return _assert(total <= max_batch_tokens,
                   f"request too large: {{}} {unit} x {{}} tokens (padded to the longest) = {{}} "
                   f"tokens, over the max_batch_tokens of {max_batch_tokens} this model was "
                   f"exported with; split it into requests of fewer {unit}", rows, length, total)


def _checked_encoder_inputs(inputs, config, max_batch_tokens: Optional[int] = None):
    """`inputs` once they are inputs the encoder (`config`) was trained on, for the encoder's
    serving signatures.

    Why: a server feeds these tensors as they come, and most bad values do not fail, they change
    the answer. tf.gather wraps a negative id on CPU (id -5 embedded as id vocab_size - 5) and,
    by its documentation, returns zeros for out-of-range ids on GPU; a mask value of 2 changes
    the output; a row with no unmasked token pools to a zero vector (NaN after the client's L2
    normalization); a row past the position table fails on CPU with an opaque gather error and
    is clamped under XLA. Each check is a reduction or two over the int32 inputs; a bad request
    fails with InvalidArgumentError naming the input (a 400 from TF Serving, never a crash).
    Only the signatures have them: `__call__`, `serve` and `serve_training` are the
    fine-tuning paths (hub.KerasLayer, TFSMLayer), where XLA compiles an Assert to nothing
    (tf2xla: "Ignoring Assert operator") and the inputs come from preprocess/.
    """
    ids, mask, types = (tf.ensure_shape(inputs[k], [None, None], name=f"{k}_must_be_a_matrix")
                        for k in ENCODER_INPUT_KEYS)
    shape = tf.shape(ids)
    row_max = tf.reduce_max(mask, axis=1)  # a row of length 0: the least int32

    def within(name, values, low, high, allowed):
        low_seen, high_seen = tf.reduce_min(values), tf.reduce_max(values)  # empty: max, min int
        return _assert(tf.logical_and(low_seen >= low, high_seen <= high),
                       f"{name}: {allowed}, got values from {{}} to {{}}", low_seen, high_seen)

    checks = [
        _assert(tf.reduce_all(tf.equal(tf.stack([tf.shape(mask), tf.shape(types)]), shape)),
                "input_mask and input_type_ids must have the shape of input_word_ids {}, got {} "
                "and {}", shape, tf.shape(mask), tf.shape(types)),
        _assert(shape[1] <= config.max_seq_length,
                f"input_word_ids: at most {config.max_seq_length} tokens a row (the length of "
                f"the position table), got {{}}", shape[1]),
        within("input_word_ids", ids, 0, config.vocab_size - 1,
               f"ids must be in [0, {config.vocab_size}) (the vocabulary)"),
        within("input_mask", mask, 0, 1, "values must be 0 (padding) or 1 (token)"),
        _assert(tf.reduce_all(row_max >= 1),
                "input_mask: every row needs at least one 1 (a token to embed); rows without: {}",
                tf.where(row_max < 1)[:, 0]),
    ]
    if config.type_vocab_size > 0:  # else the encoder has no type embedding and ignores them
        checks.append(within("input_type_ids", types, 0, config.type_vocab_size - 1,
                             f"values must be in [0, {config.type_vocab_size})"))
    if max_batch_tokens is not None:
        checks.append(_batch_tokens_check(shape[0], shape[1], max_batch_tokens, "rows"))
    with tf.control_dependencies(checks):
        return {k: tf.identity(v) for k, v in zip(ENCODER_INPUT_KEYS, (ids, mask, types))}


def build_preprocess_module(preprocessor: Preprocessor, max_seq_length: Optional[int] = None):
    """A SavedModel-ready object with `__call__`, `tokenize` and `bert_pack_inputs`, and its
    signatures ({"serving_default": `__call__`}), as the pair (module, signatures).

      __call__(sentences tf.string [batch]) -> {"input_word_ids", "input_mask",
          "input_type_ids"}: int32 [batch, preprocessor.seq_length] each
      tokenize(sentences tf.string [batch]) -> ragged int32 [batch, (tokens)], no special
          tokens; `tokenize.get_special_tokens_dict()` -> {name: int32 scalar}
      bert_pack_inputs([1 or 2 ragged int32 [batch, (tokens)] or [batch, (words), (pieces)]],
          seq_length=int32 scalar, default preprocessor.seq_length) -> the same dict, int32
          [batch, seq_length]
      get_special_tokens_dict() -> {name: int32 scalar}

    `max_seq_length`: the encoder's position limit; `bert_pack_inputs(..., seq_length=N)` with a
    larger N fails here, in the preprocess module, which runs on the host. The encoder cannot
    check it: an out-of-range position lookup errors on CPU, but XLA on GPU/TPU clamps the index
    and silently returns wrong embeddings."""
    module = trackable_object()
    module.preprocessor = preprocessor
    module.variables = []
    module.trainable_variables = []
    module.regularization_losses = []
    packing = preprocessor.packing
    special = preprocessor.get_special_tokens_dict()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def call(sentences):
        # The preprocessor checks its strings (a vector of valid UTF-8: checked_sentences).
        return preprocessor(sentences)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def tokenize(sentences):
        return preprocessor.tokenize(sentences)

    @tf.function
    def bert_pack_inputs(segments, seq_length=preprocessor.seq_length):
        # No minimum for a text prefix's tokens here (min_text_seq_length): seq_length is a
        # tensor in the saved function, and packing each batch to its longest row (what
        # SentenceEncoder.encode does) legitimately gives a prefix-only length for a batch of
        # blank sentences. The lengths a caller fixes in Python are checked where they are set
        # (export_model(seq_length=), SentenceEncoder.max_seq_length).
        if max_seq_length is not None:
            tf.debugging.assert_less_equal(
                tf.cast(seq_length, tf.int32), tf.constant(max_seq_length, tf.int32),
                message=f"bert_pack_inputs: seq_length exceeds the encoder maximum of "
                        f"{max_seq_length} positions")
        return pack_segments(segments, seq_length, special["start_of_sequence_id"],
                             special["end_of_segment_id"], special["padding_id"], packing)

    # TF Hub traces bert_pack_inputs for every supported arity and ragged rank,
    # with seq_length a tensor: a restored function cannot be retraced, and
    # `hub.KerasLayer(..., arguments=dict(seq_length=N))` must accept any N.
    for num_segments in (1, 2):
        for ragged_rank in (1, 2):
            segment_spec = tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32,
                                               ragged_rank=ragged_rank)
            bert_pack_inputs.get_concrete_function([segment_spec] * num_segments,
                                                   seq_length=tf.TensorSpec([], tf.int32))
    module.__call__ = call
    module.bert_pack_inputs = bert_pack_inputs

    # Plain constants in a dict attribute are not saved; a function is.
    @tf.function(input_signature=[])
    def get_special_tokens_dict():
        return {k: tf.constant(v, tf.int32) for k, v in special.items()}

    module.get_special_tokens_dict = get_special_tokens_dict
    # `tokenize.get_special_tokens_dict()` is where TF Hub's BERT preprocess models keep it, so
    # `tokenize` is an object with `__call__`, as in tf-models' export_tfhub_lib (attributes set
    # on a tf.function are not saved).
    tokenize_object = trackable_object()
    tokenize_object.__call__ = tokenize
    tokenize_object.get_special_tokens_dict = get_special_tokens_dict
    # A Keras model holding `hub.KerasLayer(pre.tokenize)` (the TF Hub pair recipe) saves the
    # objects its layer reaches: without this the SentencePiece resource that `tokenize` uses
    # was untracked from there, and `model.save` failed ("references an 'untracked' resource").
    tokenize_object.preprocessor = preprocessor
    module.tokenize = tokenize_object
    return module, {"serving_default": call}


def _call_encoder(encoder: TransformerEncoder, inputs, training: bool):
    """`encoder(inputs, training)` as the exported training path traces it: dropout seeds fold
    in a hash of the input ids. ReplicaDropout folds in the replica id at trace time, and an
    export is traced on one device, so a restored encoder fine-tuned under a tf.distribute
    strategy gave every replica the same masks; the ids differ between replicas' shares of a
    batch (layers/dropout.py)."""
    if not training:
        return encoder(inputs, training=False)
    with salted(encoder, inputs_salt(inputs["input_word_ids"])):
        return encoder(inputs, training=True)


def build_encoder_module(encoder: TransformerEncoder, max_batch_tokens: Optional[int] = None):
    """A reusable SavedModel: `__call__(inputs, training)` plus its variables, and the serving
    signatures `serving_default` and `pooled_output`, which check their inputs (and refuse more
    than `max_batch_tokens` rows x length when given): `_checked_encoder_inputs`. Returns
    (module, {"serving_default": ..., "pooled_output": ...}).

    Inputs, everywhere: {"input_word_ids", "input_mask", "input_type_ids"}, int32 [batch,
    seq_length] each. Outputs:
      __call__(inputs, training=False), serve(inputs), serve_training(inputs) (dropout on):
          `TransformerEncoder`'s dict: sequence_output float32 [batch, seq_length, hidden],
          pooled_output and default float32 [batch, hidden], encoder_outputs (a list of
          num_layers float32 [batch, seq_length, hidden])
      serving_default: the same, flat: encoder_outputs_0 ... encoder_outputs_{L-1}
      pooled_output: {"pooled_output": float32 [batch, hidden]} only
    """
    module = trackable_object()
    # The encoder layer itself is deliberately not an attribute: its Keras 3 variables are
    # trackables of their own that save their values beside the tf.Variables they wrap, so
    # tracking both `module.encoder` and `module.variables` stored every weight twice.
    # The functions below capture the tf.Variables, which `module.variables` tracks.
    module.variables = tf_variables(encoder)
    module.trainable_variables = [v for v in module.variables if v.trainable]
    module.regularization_losses = []

    @tf.function
    def call(inputs, training=False):
        return _call_encoder(encoder, inputs, training)

    # Reusable SavedModels trace __call__ for both values of `training`
    # (hub.KerasLayer passes the Python bool through).
    for training in (False, True):
        call.get_concrete_function(_encoder_input_spec(), training=training)
    module.__call__ = call

    # Keras 3's TFSMLayer calls endpoints with the inputs only; these two give
    # it an inference and a training endpoint (dropout on).
    @tf.function(input_signature=[_encoder_input_spec()])
    def serve(inputs):
        return encoder(inputs, training=False)

    @tf.function(input_signature=[_encoder_input_spec()])
    def serve_training(inputs):
        return _call_encoder(encoder, inputs, True)

    def serving_encoder(inputs):
        return encoder(_checked_encoder_inputs(inputs, encoder.config, max_batch_tokens),
                       training=False)

    # Signatures allow only flat dicts of tensors: the per-layer outputs get
    # their own keys (encoder_outputs_0 ... encoder_outputs_{L-1}).
    @tf.function(input_signature=[_encoder_input_spec()])
    def serving_default(inputs):
        outputs = serving_encoder(inputs)
        flat = {k: v for k, v in outputs.items() if k != "encoder_outputs"}
        flat.update({f"encoder_outputs_{i}": v for i, v in enumerate(outputs["encoder_outputs"])})
        return flat

    # Only the sentence vector: a server answering serving_default sends every output back,
    # sequence_output and each layer's [batch, seq, hidden] included (over REST, as JSON).
    @tf.function(input_signature=[_encoder_input_spec()])
    def pooled_output(inputs):
        return {"pooled_output": serving_encoder(inputs)["pooled_output"]}

    module.serve = serve
    module.serve_training = serve_training
    return module, {"serving_default": serving_default, "pooled_output": pooled_output}


def _attach_tokenizer_asset(module, files) -> None:
    """The tokenizer file as an asset of `module`, where tf-models' TF Hub encoders keep it:
    `sp_model_file` (SentencePiece) or `vocab_file` (WordPiece), with `do_lower_case`.

    Nothing reads it at load time (the preprocess graphs hold the tokenizer as a constant);
    it lets a host-side tokenizer be built from the export alone, as TF Hub users do with
    `hub.load(encoder).sp_model_file.asset_path`. The text prefix and packing are in
    tfkosent_export.json."""
    from tfkosent.model_dir import SENTENCEPIECE_FILE, WORDPIECE_FILE

    if files.sentencepiece_proto is not None:
        module.sp_model_file = tf.saved_model.Asset(os.path.join(files.path, SENTENCEPIECE_FILE))
    else:
        module.vocab_file = tf.saved_model.Asset(os.path.join(files.path, WORDPIECE_FILE))
    module.do_lower_case = tf.Variable(files.config.preprocess.lower_case, trainable=False)


def build_sentence_encoder_module(preprocessor: Preprocessor, encoder: TransformerEncoder,
                                  max_batch_tokens: Optional[int] = None):
    """strings -> L2-normalized embeddings, for TF Serving and plain `tf.saved_model.load`, and
    a fine-tunable TF Hub text-embedding module (like the Universal Sentence Encoder's):
    `__call__(sentences, training=False)` with the encoder's `trainable_variables`, so that
    `hub.KerasLayer(path, trainable=True)` trains it (dropout on in training).

    Returns (module, {"serving_default": serve}). `serve` and `__call__` take `sentences`
    tf.string [batch] (valid UTF-8) and return {"embeddings": float32 [batch, hidden]}, each
    batch padded to its longest sentence and truncated at `preprocessor.seq_length`.

    `max_batch_tokens`: when given, the serving signature refuses a request whose sentences,
    padded to the longest, come to more tokens (`_batch_tokens_check`); `__call__` does not."""
    module = trackable_object()
    module.preprocessor = preprocessor
    module.variables = tf_variables(encoder)  # not `module.encoder`: see build_encoder_module
    module.trainable_variables = [v for v in module.variables if v.trainable]
    module.regularization_losses = []
    packing = preprocessor.packing
    sentences_spec = tf.TensorSpec([None], tf.string, name=SERVING_INPUT)

    def embed(sentences, training: bool, max_batch_tokens: Optional[int] = None):
        token_ids = preprocessor.tokenize(sentences)  # checked: a vector of valid UTF-8
        # Pad to the batch's longest sentence (capped at seq_length), not to
        # seq_length: short requests cost proportionally less.
        seq_length = longest_packed_length([token_ids], packing, preprocessor.seq_length)
        if max_batch_tokens is not None:
            check = _batch_tokens_check(token_ids.nrows(), seq_length, max_batch_tokens,
                                        SERVING_INPUT)
            with tf.control_dependencies([check]):
                seq_length = tf.identity(seq_length)
        inputs = preprocessor.bert_pack_inputs([token_ids], seq_length=seq_length)
        pooled = _call_encoder(encoder, inputs, training)["pooled_output"]
        return {SERVING_OUTPUT: tf.math.l2_normalize(pooled, axis=-1)}

    @tf.function(input_signature=[sentences_spec])
    def serve(sentences):
        return embed(sentences, False, max_batch_tokens)

    # Callable, like TF Hub's text-embedding modules, so that plain `hub.KerasLayer(path)` and
    # `hub.load(path)(strings)` work without naming a signature; they return the signature's
    # dict ({"embeddings": float32 [batch, hidden]}). Reusable SavedModels trace __call__ for
    # both values of `training` (hub.KerasLayer passes the Python bool through).
    @tf.function
    def call(sentences, training=False):
        return embed(sentences, training)

    for training in (False, True):
        call.get_concrete_function(sentences_spec, training=training)
    module.serve = serve
    module.__call__ = call
    return module, {"serving_default": serve}


def write_warmup_requests(saved_model_dir: str, sentences: Sequence[str] = WARMUP_SENTENCES,
                          batch_sizes: Optional[Sequence[int]] = None, check: bool = True) -> str:
    """Writes `assets.extra/tf_serving_warmup_requests`, which TF Serving replays at load: one
    `serving_default` request of all `sentences`, or with `batch_sizes` one request (record) per
    size, of that many sentences taken from `sentences` in turn (cycling).

    At most 1,000 records: TF Serving fails the load of a version with more. With `check`
    (the default), the largest request is first run through the SavedModel's
    `serving_default` (every other request is a prefix of it: `_check_warmup_batches`), and
    if it is refused (e.g. over the export's `max_batch_tokens`) that is a ValueError naming
    the record and its batch size, with the file left as it was: TF Serving would fail the
    version's load on it. The ModelSpec's name is not read at warm-up: TF Serving runs each
    record on the version being loaded (saved_model_warmup.cc: RunPredict on the bundle)."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from tfkosent.sentence_encoder import validate_sentences

    # encode's rule: one str is one sentence (list("...") split it into characters), and an
    # item that is not text names its index ("sentences[1] must be a str, got NoneType").
    sentences = validate_sentences(sentences, "sentences")
    if batch_sizes is None:
        batch_sizes = [len(sentences)]
    else:
        batch_sizes = [positive_int(size, "each of batch_sizes") for size in batch_sizes]
        if not 1 <= len(batch_sizes) <= MAX_WARMUP_RECORDS:
            raise ValueError(f"batch_sizes: 1 to {MAX_WARMUP_RECORDS} sizes (one warm-up record "
                             f"each; TF Serving fails the model's load with more), got "
                             f"{len(batch_sizes)}")
        if not sentences:
            raise ValueError("sentences: at least one sentence to fill the batches")
    batches = [[sentences[i % len(sentences)] for i in range(size)] for size in batch_sizes]
    if check:
        _check_warmup_batches(saved_model_dir, batches)
    records = []
    for batch in batches:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name="sentence_encoder",
                                           signature_name="serving_default"),
            inputs={SERVING_INPUT: tf.make_tensor_proto(batch, dtype=tf.string)})
        records.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())
    extra = os.path.join(saved_model_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    path = os.path.join(extra, "tf_serving_warmup_requests")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


def _error_text(message: str) -> str:
    """The line of a graph execution error that says what failed (an Assert's "assertion
    failed: [...]"), without TF's "Graph execution error:" header and node names."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("assertion failed:"):
            return line
    return lines[-1] if lines else message


def _check_warmup_batches(saved_model_dir: str, batches: Sequence[Sequence[str]]) -> None:
    """Runs the largest warm-up batch through `saved_model_dir`'s serving_default, as TF
    Serving will at load. Every batch cycles through the same sentences, so each is a prefix
    of the largest (no more rows, no longer sentences): what the signature refuses in any of
    them (a token budget, a bad string) it refuses in the largest, which costs one call
    instead of one a size (up to 1,000)."""
    if not tf.saved_model.contains_saved_model(saved_model_dir):
        raise ValueError(f"{saved_model_dir}: not a SavedModel directory (the warm-up requests "
                         f"are checked against its serving_default; check=False skips that)")
    signature = tf.saved_model.load(saved_model_dir).signatures.get("serving_default")
    if signature is None:
        raise ValueError(f"{saved_model_dir}: has no serving_default signature to warm up")
    index = max(range(len(batches)), key=lambda i: len(batches[i]))
    try:
        signature(**{SERVING_INPUT: tf.constant(batches[index], tf.string)})
    except tf.errors.InvalidArgumentError as e:
        raise ValueError(f"warm-up record {index} ({len(batches[index])} sentences, the largest) "
                         f"is refused by {saved_model_dir}'s serving_default, so TF Serving would "
                         f"fail the version's load: {_error_text(e.message)}") from None


def _max_diff(a: Dict[str, tf.Tensor], b: Dict[str, tf.Tensor], keys) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) if np.size(a[k]) else 0.0
               for k in keys)


def export_source(files) -> Dict[str, str]:
    """How tfkosent_export.json names the exported model (`files`: a loaded `ModelFiles`):
    `source` is the model directory's name ("default" for the bundled model) and
    `weights_sha256` identifies its weights.

    Never the absolute path: an export is published (TF Hub, a model server, a bucket), and a
    path would carry the exporting machine's user name and layout while saying nothing about
    which weights were exported.
    """
    from tfkosent.data import sha256_file
    from tfkosent.sentence_encoder import DEFAULT_MODEL_DIR

    if os.path.realpath(files.path) == os.path.realpath(DEFAULT_MODEL_DIR):
        name = "default"
    else:
        name = os.path.basename(os.path.normpath(os.path.abspath(files.path)))
    return {"source": name, "weights_sha256": sha256_file(files.weights_path)}


def published_metadata(value):
    """`value` (a model's config metadata) with every absolute path cut to its last component,
    for tfkosent_export.json: `tfkosent train` records where its base model was
    (`training.base_model`) as an absolute path, useful in the local model directory, but an
    export is published, and the path would carry the exporting machine's user name and
    layout (see `export_source`)."""
    if isinstance(value, dict):
        return {k: published_metadata(v) for k, v in value.items()}
    if isinstance(value, list):
        return [published_metadata(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.basename(os.path.normpath(value))
    return value


# The default model's licence text. Its `licence_notes` point to it, and models trained or
# fine-tuned from it inherit those notes; an export is published without the tfkosent package,
# so the file travels inside the export (CC BY-SA 4.0, the training data's licence, asks that
# adaptations carry their terms).
DEFAULT_MODEL_LICENSE_FILE = "DEFAULT_MODEL_LICENSE.md"


def default_model_licence(metadata) -> Optional[str]:
    """The path of tfkosent/assets/DEFAULT_MODEL_LICENSE.md when `metadata`'s licence_notes
    name it (the default model and models made from it), else None."""
    notes = metadata.get("licence_notes") if isinstance(metadata, dict) else None
    if isinstance(notes, str) and DEFAULT_MODEL_LICENSE_FILE in notes:
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets",
                            DEFAULT_MODEL_LICENSE_FILE)
    return None


def write_record_and_card(directory: str, record_file: str, record: Dict[str, object], metadata,
                          render: Callable[[Dict[str, object]], str]) -> None:
    """Writes an export's record (`record_file`, JSON) and its card (README.md, `render(record)`)
    into `directory`, with DEFAULT_MODEL_LICENSE.md beside them when `metadata` is the default
    model's or a model's made from it (`record["licence_file"]` then names it).

    Into the export's temporary directory: they are renamed into place with the model files,
    and replaced with them by --overwrite. The card is rendered from the record alone, so its
    numbers are the export's own."""
    licence = default_model_licence(metadata)
    if licence is not None:
        shutil.copyfile(licence, os.path.join(directory, DEFAULT_MODEL_LICENSE_FILE))
        record["licence_file"] = DEFAULT_MODEL_LICENSE_FILE
    with open(os.path.join(directory, record_file), "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, indent=2)
    with open(os.path.join(directory, README_FILE), "w", encoding="utf-8") as f:
        f.write(render(record))


def written_by() -> Dict[str, str]:
    """The versions that wrote an export, for tfkosent_export.json and its README.md: tfkosent,
    and the TensorFlow and TensorFlow Text that saved the graphs (a model server must accept
    their op definitions: docs/serving.md, "The SentencePiece op requirement")."""
    from tfkosent import __version__

    return {"tfkosent": __version__, "tensorflow": tf.__version__,
            "tensorflow_text": tensorflow_text.__version__}


def export_model(model_dir: str, out_dir: str, overwrite: bool = False,
                 seq_length: Optional[int] = None, warmup: bool = True,
                 max_batch_tokens: Optional[int] = None) -> str:
    """Exports the model directory `model_dir` to `out_dir` (layout in the module docstring).

    `seq_length` is the preprocess module's packed length: what `preprocess(strings)` and
    `bert_pack_inputs` without a `seq_length` pad and truncate to. The default is TF Hub's
    BERT preprocess default, 128 (or the model's maximum if that is smaller): padding every
    batch to 512 made the hub.KerasLayer path 28x slower than `sentence_encoder/1` on 64
    KorSTS dev sentences, against 5.8x at 128 (benchmarks/export_paths.py, BENCHMARKS.md
    section 6). A `seq_length` above the model's maximum, or too short for a sentence pair's
    special tokens (and a text prefix's tokens before each sentence, plus one text token), is a
    ValueError. `sentence_encoder/1` always pads to each batch's longest sentence and
    truncates only at the model's maximum, like `SentenceEncoder.encode`; that maximum is
    `seq_length` in tfkosent_export.json, and the preprocess default is
    `preprocess_seq_length`.

    `max_batch_tokens` (default None: no limit): the most padded tokens (rows x the longest
    row's length) one request to the `sentence_encoder/1` signature, or to encoder/'s serving
    signatures, may hold; a larger request fails with InvalidArgumentError. At least the
    model's maximum length, so that any single sentence fits.

    Returns the absolute path of `out_dir`. Raises FileExistsError when `out_dir` exists and is
    not an earlier export (whatever `overwrite` says) or is one and `overwrite` is False,
    ValueError for a bad `seq_length` or `max_batch_tokens`, and RuntimeError when the
    reloaded SavedModels differ from the in-memory model (nothing is written then).
    """
    if max_batch_tokens is not None:
        max_batch_tokens = positive_int(max_batch_tokens, "max_batch_tokens")
    check_replaceable(out_dir, EXPORT_INFO_FILE, "a tfkosent export", overwrite)
    files = load_model_dir(model_dir)
    config = files.config
    serving_preprocessor = files.build_preprocessor(name="preprocessor")
    max_seq_length = serving_preprocessor.seq_length
    if max_batch_tokens is not None and max_batch_tokens < max_seq_length:
        raise ValueError(f"max_batch_tokens must be at least the model's maximum length "
                         f"({max_seq_length} tokens), so that one sentence always fits; got "
                         f"{max_batch_tokens}")
    # The preprocess module packs one or two segments at its default length: room for a
    # sentence pair's special tokens (3 with BERT packing, 4 with RoBERTa's) and one token,
    # and with a text prefix (e5's "query: ") for both prefixes and one text token too: with
    # less, every input packed to the same ids (min_text_seq_length).
    packing = config.preprocess.packing
    prefix_length = serving_preprocessor.prefix_length()
    minimum = max(num_special_tokens(2, packing), min_text_seq_length(1, packing))
    why = f"a sentence pair's special tokens under {packing} packing"
    if prefix_length:
        minimum = max(minimum, min_text_seq_length(2, packing, prefix_length))
        why += (f", the {prefix_length} tokens of the prefix {config.preprocess.text_prefix!r} "
                f"before each sentence, and one text token")
    if seq_length is not None and (isinstance(seq_length, bool) or not isinstance(seq_length, int)
                                   or seq_length < minimum):
        raise ValueError(f"seq_length must be an int >= {minimum} ({why}), got {seq_length!r}")
    if seq_length is not None and seq_length > max_seq_length:
        raise ValueError(f"seq_length must be at most {max_seq_length} (the model's maximum "
                         f"length), got {seq_length}")
    preprocess_seq_length = min(DEFAULT_PREPROCESS_SEQ_LENGTH if seq_length is None else seq_length,
                                max_seq_length)
    preprocessor = files.build_preprocessor(preprocess_seq_length, name="preprocessor")
    encoder = files.build_encoder()

    probe = tf.constant(PROBE_SENTENCES)
    expected_inputs = preprocessor(probe)
    expected = encoder(expected_inputs, training=False)
    expected_embeddings = tf.math.l2_normalize(
        encoder(serving_preprocessor(probe), training=False)["pooled_output"], axis=-1)

    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        pre_module, pre_signatures = build_preprocess_module(preprocessor, max_seq_length)
        tf.saved_model.save(pre_module, os.path.join(tmp, "preprocess"), signatures=pre_signatures)
        enc_module, enc_signatures = build_encoder_module(encoder, max_batch_tokens)
        _attach_tokenizer_asset(enc_module, files)
        tf.saved_model.save(enc_module, os.path.join(tmp, "encoder"), signatures=enc_signatures)
        serving_dir = os.path.join(tmp, "sentence_encoder", "1")
        sent_module, sent_signatures = build_sentence_encoder_module(serving_preprocessor, encoder,
                                                                     max_batch_tokens)
        tf.saved_model.save(sent_module, serving_dir, signatures=sent_signatures)
        if warmup:
            # Only a token budget makes the signature refuse strings; without one, the check
            # (a reload) would repeat what _verify_export does below.
            write_warmup_requests(serving_dir, check=max_batch_tokens is not None)
        info = {"format": "tfkosent-export", "format_version": 1,
                "hidden_size": config.encoder.hidden_size, "num_layers": config.encoder.num_layers,
                "pooling": config.encoder.pooling, "packing": config.preprocess.packing,
                "seq_length": max_seq_length, "preprocess_seq_length": preprocess_seq_length,
                "text_prefix": config.preprocess.text_prefix,
                "tokenizer_type": config.preprocess.tokenizer_type,
                "vocab_size": config.encoder.vocab_size,
                "special_tokens": serving_preprocessor.get_special_tokens_dict(),
                "num_parameters": sum(int(np.prod(w.shape)) for w in files.weights.values()),
                **export_source(files), "metadata": published_metadata(config.metadata),
                "serving": {"signature": "serving_default", "input": SERVING_INPUT,
                            "output": SERVING_OUTPUT, "max_batch_tokens": max_batch_tokens,
                            "warmup_requests": bool(warmup)},
                "written_by": written_by()}
        write_record_and_card(tmp, EXPORT_INFO_FILE, info, config.metadata, export_readme)
        _verify_export(tmp, probe, expected_inputs, expected, expected_embeddings)
    return os.path.abspath(out_dir)


def _verify_export(tmp, probe, expected_inputs, expected, expected_embeddings):
    """Reloads the three SavedModels and compares them with the in-memory model."""
    pre = tf.saved_model.load(os.path.join(tmp, "preprocess"))
    got_inputs = pre(probe)
    for k in ENCODER_INPUT_KEYS:
        if not np.array_equal(got_inputs[k], expected_inputs[k]):
            raise RuntimeError(f"export check failed: preprocess/{k} differs from the in-memory model")
    enc = tf.saved_model.load(os.path.join(tmp, "encoder"))
    got = enc(expected_inputs, training=False)
    diff = _max_diff(got, expected, ("sequence_output", "pooled_output"))
    if diff > MAX_EXPORT_DIFF:
        raise RuntimeError(f"export check failed: encoder outputs differ by {diff:.2e}")
    serving = tf.saved_model.load(os.path.join(tmp, "sentence_encoder", "1"))
    # one sentence a call, which any max_batch_tokens admits
    signature = serving.signatures["serving_default"]
    got_emb = np.concatenate([signature(**{SERVING_INPUT: probe[i:i + 1]})[SERVING_OUTPUT].numpy()
                              for i in range(len(PROBE_SENTENCES))])
    diff = float(np.max(np.abs(got_emb - expected_embeddings.numpy())))
    if diff > MAX_EXPORT_DIFF:
        raise RuntimeError(f"export check failed: sentence_encoder embeddings differ by {diff:.2e}")
