"""TensorFlow Lite exports: the sentence encoder on phones, small boards and in-process runtimes.

`export_tflite(model_dir, out_dir)` (CLI: `tfkosent export-tflite`) writes:

  sentence_encoder.tflite  signature "serving_default":
                             sentences  tf.string [batch]
                           -> embeddings     float32 [batch, hidden], L2-normalized
                              pooled_output  float32 [batch, hidden], as the encoder pools it
                              num_tokens     int32 [batch]: each sentence's tokens, the text
                                             prefix's included, special tokens not, before
                                             truncation (more than seq_length - 2: truncated)
                           Tokenizes in the graph with TF Text's `FastSentencepieceTokenizer`,
                           so the interpreter needs TF Text's TFLite ops
                           (`tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS` in Python; the
                           TF Text ops in a custom Android / iOS build). SentencePiece models only.
  encoder.tflite           signature "serving_default":
                             input_word_ids, input_mask, input_type_ids  int32 [batch, seq]
                           -> embeddings, pooled_output (as above), and
                              sequence_output float32 [batch, seq, hidden]: the token states
                           seq at most the model's maximum (512 for e5's); longer rows fail.
                           TFLite builtin ops only: any TFLite / LiteRT runtime. The ids are
                           what the `preprocess/` module of `tfkosent export` makes
                           (tokenizer.model is copied beside it for host-side tokenization).
                           `SentenceEncoder.load(out_dir)` runs it behind the model's own TF
                           tokenizer and packing (its config is in tflite_export.json), so
                           every SentenceEncoder method and the CLI's --model take the export.
  tokenizer.model          the SentencePiece model (vocab.txt for WordPiece models)
  tflite_export.json       what the files are: signatures, special token and prefix ids,
                           quantization, parity measured at export, provenance
  README.md                how to call them

Both take any batch size and sequence length (dynamic shapes: the interpreter resizes).
`quantization`: "none" (float32 weights), "float16" (weights stored in half precision: half the
size, computed in float32) or "dynamic" (int8 weights, float activations: a quarter of the size).

What the string model does, and does not, do, compared with `SentenceEncoder.encode`:
  * the same token ids, but for ties: the text prefix (e5's "query: ") is put before each
    sentence as token ids (the ids of the prefix alone; checked at export to equal tokenizing
    prefix + text on the probe sentences), and `FastSentencepieceTokenizer` gives
    `SentencepieceTokenizer`'s ids except where two segmentations score exactly the same,
    as in runs of one repeated character ("~~~~~~~", "3333333"): it may pick the other
    one. With the default model that changed 115 of 39,650 sentences of the Korean corpora in
    ../shared/data (81 of 5,000 news comments, 34 of 5,000 movie reviews, none of KorSTS or
    KLUE-STS train), to a cosine of 0.9926 at worst (`python benchmarks/tflite.py`,
    BENCHMARKS.md section 11);
  * the same packing and truncation for one sentence: <s> / [CLS], prefix, text, </s> /
    [SEP], truncated to `seq_length` tokens (default: the model's maximum, where `encode`
    truncates unless its `max_seq_length` is set lower);
  * no input repair and no warnings: TFLite has no Unicode normalization or transcoding op,
    so decomposed Hangul (conjoining jamo, e.g. text from macOS) must be composed (NFC) and
    bytes must be valid UTF-8 before the call. `TFLiteSentenceEncoder` does both in Python,
    and warns about truncated sentences (from `num_tokens`) and typed prefixes, as `encode`.
Models that lower-case or NFKC-normalize their input cannot have the string model (no TFLite
op does it); `variants=("encoder",)` writes the ids model alone.
"""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfkosent.export import (PROBE_SENTENCES, SERVING_INPUT, SERVING_OUTPUT, export_source,
                             published_metadata, tf_variables, trackable_object,
                             write_record_and_card, written_by)
from tfkosent.export_card import licence_lines
from tfkosent.layers.tokenizer import CONJOINING_JAMO_RANGES
from tfkosent.model_dir import (SENTENCEPIECE_FILE, TFLITE_INFO_FILE, WORDPIECE_FILE, atomic_directory,
                                check_replaceable, load_model_dir)
from tfkosent.validation import positive_int

SENTENCE_MODEL_FILE = "sentence_encoder.tflite"
ENCODER_MODEL_FILE = "encoder.tflite"
VARIANTS = ("sentence_encoder", "encoder")
QUANTIZATIONS = ("none", "float16", "dynamic")
ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
POOLED_OUTPUT = "pooled_output"
NUM_TOKENS_OUTPUT = "num_tokens"
SEQUENCE_OUTPUT = "sequence_output"
# Float32 flat buffers must reproduce the TF model: the default model's differ by 1.2e-7 on the
# probe sentences (`parity` in its tflite_export.json; BENCHMARKS.md section 11); XNNPACK sums
# in another order than TF's kernels.
MAX_FLOAT_DIFF = 1e-5
# Sentences the export checks beyond PROBE_SENTENCES: the prefix / tokenizer agreement needs
# text that starts with a space, a tab, a digit, Latin and jamo.
_TOKENIZER_PROBES = [" 앞에 공백", "\t탭으로 시작", "123 숫자", "query: 접두사처럼", "ㄱㄴㄷ 자모", "a",
                     "Korean and 한국어", "마침표로 끝난다."]


def _string_model_obstacle(config) -> Optional[str]:
    """Why the model's preprocessing has no TFLite equivalent, or None when it has one."""
    pre = config.preprocess
    if pre.tokenizer_type != "sentencepiece":
        return (f"its tokenizer is {pre.tokenizer_type} (BERT normalization and splitting have no "
                f"TFLite ops); only SentencePiece models get {SENTENCE_MODEL_FILE}")
    if pre.lower_case:
        return "it lower-cases its input, which no TFLite op does"
    if pre.normalize_nfkc:
        return "it NFKC-normalizes its input, which no TFLite op does"
    return None


def pack_single_sentences(token_ids: tf.RaggedTensor, prefix_ids: Sequence[int], start_id: int,
                          end_id: int, pad_id: int, seq_length: int) -> Dict[str, tf.Tensor]:
    """One segment per row -> encoder inputs, with TFLite builtin ops only.

    Args:
      token_ids: int32 [batch, (tokens)], the text's tokens (no prefix, no special tokens).
      prefix_ids: the text prefix's token ids, put before every row's text.
      start_id, end_id, pad_id: <s> / [CLS], </s> / [SEP], the padding id.
      seq_length: the most tokens a row keeps, special tokens and prefix included.
    Returns:
      {"input_word_ids", "input_mask", "input_type_ids"}: int32 [batch, width], width the
      longest packed row: `start, prefix, text[:seq_length - 2 - len(prefix)], end`, then
      padding (mask 0); type ids 0. The same as `BertPackInputs` for one segment under both
      "bert" and "roberta" packing.

    Dense, not ragged: converted with `BertPackInputs`, the graph needs RaggedGather and
    RaggedRange, for which neither TFLite nor TF Text's TFLite registrar has kernels
    (the converter lists them as custom ops; the registrar adds none of them; TF 2.21).
    """
    prefix = tf.constant(list(prefix_ids), tf.int32)
    num_prefix = len(prefix_ids)
    max_text = seq_length - 2 - num_prefix
    lengths = tf.minimum(tf.cast(token_ids.row_lengths(), tf.int32), max_text)
    # [:, :max_text] only bounds the work: the `width` slice and the mask below truncate.
    text = token_ids.to_tensor(default_value=pad_id)[:, :max_text]
    batch = tf.shape(text)[0]
    # The last column of padding gives short batches (every row empty) room for the end token.
    body = tf.concat([tf.fill([batch, 1], start_id), tf.tile(tf.reshape(prefix, [1, num_prefix]),
                                                              [batch, 1]),
                      text, tf.fill([batch, 1], pad_id)], axis=1)
    end = tf.reshape(lengths + 1 + num_prefix, [-1, 1])      # the end token's column, per row
    # The longest row, or 0 for an empty batch (reduce_max of nothing is the smallest int32).
    width = tf.reduce_max(tf.concat([lengths, [0]], axis=0)) + 2 + num_prefix
    body = body[:, :width]
    positions = tf.reshape(tf.range(width), [1, -1])
    word_ids = tf.where(positions < end, body, tf.where(positions == end, end_id, pad_id))
    mask = tf.cast(positions <= end, tf.int32)
    return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": tf.zeros_like(word_ids)}


def _outputs(encoder, inputs, with_sequence: bool = False) -> Dict[str, tf.Tensor]:
    outputs = encoder(inputs, training=False)
    pooled = outputs["pooled_output"]
    result = {SERVING_OUTPUT: tf.math.l2_normalize(pooled, axis=-1), POOLED_OUTPUT: pooled}
    if with_sequence:
        result[SEQUENCE_OUTPUT] = outputs["sequence_output"]
    return result


def _sentence_function(encoder, sentencepiece_proto: bytes, prefix_ids: Sequence[int],
                       special: Dict[str, int], seq_length: int):
    import tensorflow_text as tf_text

    tokenizer = tf_text.FastSentencepieceTokenizer(sentencepiece_proto)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serving_default(sentences):
        token_ids = tokenizer.tokenize(sentences)
        inputs = pack_single_sentences(token_ids, prefix_ids, special["start_of_sequence_id"],
                                       special["end_of_segment_id"], special["padding_id"],
                                       seq_length)
        outputs = _outputs(encoder, inputs)
        outputs[NUM_TOKENS_OUTPUT] = tf.cast(token_ids.row_lengths(), tf.int32) + len(prefix_ids)
        return outputs

    return serving_default


def _encoder_function(encoder):
    spec = {k: tf.TensorSpec([None, None], tf.int32, name=k) for k in ENCODER_INPUTS}

    @tf.function(input_signature=[spec])
    def serving_default(inputs):
        return _outputs(encoder, inputs, with_sequence=True)

    return serving_default


def _convert(encoder, function, quantization: str, work_dir: str) -> bytes:
    """`function` (a tf.function of `encoder`) -> a TFLite flat buffer with its signature.

    Through a SavedModel, not `from_concrete_functions`: flat buffers converted from concrete
    functions carry no SignatureDef (TF 2.21), and a signature is what gives the inputs and
    outputs their names in every TFLite runtime (`get_signature_runner`)."""
    module = trackable_object()
    module.variables = tf_variables(encoder)  # the function captures them: they must be tracked
    module.serving_default = function
    tf.saved_model.save(module, work_dir, signatures={"serving_default": function})
    converter = tf.lite.TFLiteConverter.from_saved_model(work_dir)
    # TF Text's tokenizer ops are custom ops: their kernels come from tensorflow_text's TFLite
    # registrar at run time. Every other op is a TFLite builtin (the encoder has no select-TF ops).
    converter.allow_custom_ops = True
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def make_interpreter(model_path: Optional[str] = None, model_content: Optional[bytes] = None,
                     num_threads: Optional[int] = None):
    """A TFLite interpreter for either flat buffer, with TF Text's TFLite ops registered (what
    sentence_encoder.tflite's tokenizer needs; harmless for encoder.tflite), on `num_threads`
    threads (default: every core, as TensorFlow uses).

    `tf.lite`'s interpreter, not LiteRT's (`ai_edge_litert`): TF Text's op registrar is built
    against TensorFlow's TFLite runtime. TF 2.21 warns that it will be removed; the warning is
    silenced here, as there is no other interpreter these ops register with yet."""
    import tensorflow_text as tf_text
    from tensorflow.lite.python import interpreter as tflite_interpreter

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        return tflite_interpreter.InterpreterWithCustomOps(
            model_path=model_path, model_content=model_content,
            num_threads=num_threads or os.cpu_count() or 1,
            custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)


def _compare(got: Dict[str, np.ndarray], expected: Dict[str, np.ndarray]) -> Dict[str, float]:
    """How close a flat buffer's outputs are to the TF model's: the largest absolute
    difference of the embeddings, and the smallest cosine between rows."""
    a, b = np.asarray(got[SERVING_OUTPUT], np.float64), np.asarray(expected[SERVING_OUTPUT], np.float64)
    cosines = np.sum(a * b, axis=1) / np.maximum(
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"max_abs_diff": float(np.max(np.abs(a - b))), "min_cosine": float(np.min(cosines))}


def _check_tokenization(preprocessor, proto: bytes, prefix_ids: List[int], sentences) -> None:
    """ValueError unless FastSentencepieceTokenizer's ids, after the prefix's ids, equal what the
    model's own preprocessor makes of every sentence (its prefix in the text)."""
    import tensorflow_text as tf_text

    fast = tf_text.FastSentencepieceTokenizer(proto).tokenize(tf.constant(sentences)).to_list()
    own = preprocessor.tokenize(tf.constant(sentences)).to_list()
    for sentence, f, o in zip(sentences, fast, own):
        if list(prefix_ids) + list(f) != list(o):
            raise ValueError(
                f"the TFLite tokenization of {sentence[:40]!r} differs from the model's: "
                f"{(list(prefix_ids) + list(f))[:12]} against {list(o)[:12]}; its text prefix or "
                f"SentencePiece model cannot be tokenized in TFLite (export variants=('encoder',))")


def export_tflite(model_dir: str, out_dir: str, quantization: str = "none",
                  variants: Optional[Sequence[str]] = VARIANTS, seq_length: Optional[int] = None,
                  overwrite: bool = False) -> Dict[str, object]:
    """Writes the model directory `model_dir` as TFLite flat buffers (the module docstring).

    Args:
      model_dir: a tfkosent model directory (`tfkosent.sentence_encoder.default_model_path()`
        for the shipped model).
      out_dir: the directory to write; replaced as a whole, atomically.
      quantization: "none", "float16" or "dynamic" (QUANTIZATIONS).
      variants: which files: "sentence_encoder" (strings in), "encoder" (token ids in);
        None: both.
      seq_length: the most tokens sentence_encoder.tflite keeps per sentence, special and
        prefix tokens included (default: the model's maximum, as `SentenceEncoder.encode`).
      overwrite: replace an earlier TFLite export in `out_dir`.
    Returns:
      the tflite_export.json record (also written), with the parity measured on the probe
      sentences against the TF model: {"max_abs_diff", "min_cosine"} per file.
    Raises:
      ValueError: an unknown quantization or variant; a seq_length out of range; the string
        model for a model whose preprocessing TFLite cannot do (the message says why).
      FileExistsError: `out_dir` exists and is not a TFLite export, or is one and `overwrite`
        is False.
      RuntimeError: a float32 flat buffer differs from the TF model by more than
        MAX_FLOAT_DIFF (nothing is written then).
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if variants is None:
        variants = VARIANTS
    if isinstance(variants, str):
        variants = [variants]
    variants = list(dict.fromkeys(variants))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be some of {', '.join(VARIANTS)}, got {variants!r}")
    check_replaceable(out_dir, TFLITE_INFO_FILE, "a tfkosent TFLite export", overwrite)
    files = load_model_dir(model_dir)
    config = files.config
    if "sentence_encoder" in variants:
        obstacle = _string_model_obstacle(config)
        if obstacle:
            raise ValueError(f"{files.path}: no {SENTENCE_MODEL_FILE} for this model: {obstacle}. "
                             f"Export the token-ids model alone (variants=('encoder',), "
                             f"--variant encoder) and tokenize on the host.")
    encoder = files.build_encoder()
    full = files.build_preprocessor()
    max_seq_length = full.seq_length
    if seq_length is None:
        seq_length = max_seq_length
    seq_length = positive_int(seq_length, "seq_length")
    prefix_ids = [int(i) for i in full.tokenize(tf.constant([""])).to_list()[0]]
    if seq_length > max_seq_length or seq_length < len(prefix_ids) + 3:
        raise ValueError(f"seq_length must be in [{len(prefix_ids) + 3}, {max_seq_length}] (the "
                         f"special tokens, the prefix's {len(prefix_ids)} tokens and one text "
                         f"token; the model's maximum), got {seq_length}")
    preprocessor = files.build_preprocessor(seq_length)
    special = {k: int(v) for k, v in full.get_special_tokens_dict().items()}
    probe = list(PROBE_SENTENCES)
    expected_inputs = {k: v.numpy() for k, v in preprocessor(tf.constant(probe)).items()}
    expected = {k: v.numpy() for k, v in _outputs(encoder, expected_inputs, True).items()}

    record: Dict[str, object] = {
        "format": "tfkosent-tflite", "format_version": 1, "quantization": quantization,
        "hidden_size": config.encoder.hidden_size, "num_layers": config.encoder.num_layers,
        "pooling": config.encoder.pooling, "packing": config.preprocess.packing,
        "seq_length": seq_length, "max_position_length": max_seq_length,
        "text_prefix": config.preprocess.text_prefix, "prefix_ids": prefix_ids,
        "tokenizer_type": config.preprocess.tokenizer_type, "special_tokens": special,
        "files": {}, **export_source(files), "metadata": published_metadata(config.metadata),
        # What `SentenceEncoder.load(out_dir)` rebuilds the model's own TF tokenizer and packing
        # from, to feed encoder.tflite exactly encode()'s token ids (`load_tflite_model_files`).
        "model_config": {"encoder": config.encoder.to_dict(), "preprocess": config.preprocess.to_dict()},
        "written_by": written_by()}
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        work = os.path.join(tmp, ".saved_model")
        if "sentence_encoder" in variants:
            _check_tokenization(full, files.sentencepiece_proto, prefix_ids,
                                probe + _TOKENIZER_PROBES)
            function = _sentence_function(encoder, files.sentencepiece_proto, prefix_ids, special,
                                          seq_length)
            content = _convert(encoder, function, quantization, work)
            shutil.rmtree(work)
            runner = make_interpreter(model_content=content).get_signature_runner()
            got = runner(**{SERVING_INPUT: np.array(probe, dtype=object)})
            parity = _compare(got, expected)
            # A batch of one too: the interpreter resizes every tensor to the new shape.
            single = runner(**{SERVING_INPUT: np.array(probe[:1], dtype=object)})
            single_parity = _compare(single, {SERVING_OUTPUT: expected[SERVING_OUTPUT][:1]})
            parity["max_abs_diff"] = max(parity["max_abs_diff"], single_parity["max_abs_diff"])
            _check_parity(SENTENCE_MODEL_FILE, parity, quantization)
            with open(os.path.join(tmp, SENTENCE_MODEL_FILE), "wb") as f:
                f.write(content)
            record["files"][SENTENCE_MODEL_FILE] = {
                "signature": "serving_default",
                "inputs": {SERVING_INPUT: "string [batch]"},
                "outputs": {SERVING_OUTPUT: f"float32 [batch, {config.encoder.hidden_size}]",
                            POOLED_OUTPUT: f"float32 [batch, {config.encoder.hidden_size}]",
                            NUM_TOKENS_OUTPUT: "int32 [batch]"},
                "custom_ops": "TF Text: tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS",
                "bytes": len(content), "parity": parity}
        if "encoder" in variants:
            content = _convert(encoder, _encoder_function(encoder), quantization, work)
            shutil.rmtree(work)
            runner = make_interpreter(model_content=content).get_signature_runner()
            got = runner(**expected_inputs)
            parity = _compare(got, expected)   # and the token states, where the mask is 1:
            states = np.abs(got[SEQUENCE_OUTPUT] - expected[SEQUENCE_OUTPUT]) * expected_inputs[
                "input_mask"][:, :, None]
            parity["max_abs_diff"] = max(parity["max_abs_diff"], float(states.max()))
            _check_parity(ENCODER_MODEL_FILE, parity, quantization)
            with open(os.path.join(tmp, ENCODER_MODEL_FILE), "wb") as f:
                f.write(content)
            record["files"][ENCODER_MODEL_FILE] = {
                "signature": "serving_default",
                "inputs": {k: "int32 [batch, seq]" for k in ENCODER_INPUTS},
                "outputs": {SERVING_OUTPUT: f"float32 [batch, {config.encoder.hidden_size}]",
                            POOLED_OUTPUT: f"float32 [batch, {config.encoder.hidden_size}]",
                            SEQUENCE_OUTPUT: f"float32 [batch, seq, {config.encoder.hidden_size}]"},
                "custom_ops": None, "bytes": len(content), "parity": parity}
        tokenizer_file = SENTENCEPIECE_FILE if files.sentencepiece_proto is not None else WORDPIECE_FILE
        shutil.copyfile(os.path.join(files.path, tokenizer_file), os.path.join(tmp, tokenizer_file))
        record["tokenizer_file"] = tokenizer_file
        write_record_and_card(tmp, TFLITE_INFO_FILE, record, config.metadata, tflite_readme)
    return record


def _check_parity(name: str, parity: Dict[str, float], quantization: str) -> None:
    if quantization == "none" and not parity["max_abs_diff"] <= MAX_FLOAT_DIFF:
        raise RuntimeError(f"{name}: its embeddings differ from the TF model's by "
                           f"{parity['max_abs_diff']:.3g} (more than {MAX_FLOAT_DIFF}) on the probe "
                           f"sentences; nothing was written")


def tflite_readme(record: Dict[str, object]) -> str:
    """The README.md of a TFLite export, from its tflite_export.json record alone."""
    name = (record.get("metadata") or {}).get("name") or "a tfkosent model"
    hidden = record["hidden_size"]
    lines = [f"# {name}: TensorFlow Lite", "",
             f"Written by `tfkosent export-tflite` (quantization: {record['quantization']}). "
             f"{record['num_layers']} layers, hidden size {hidden}, {record['pooling']} pooling. "
             f"What each file is: `{TFLITE_INFO_FILE}`.", ""]
    files = record["files"]
    if SENTENCE_MODEL_FILE in files:
        info = files[SENTENCE_MODEL_FILE]
        lines += [f"## `{SENTENCE_MODEL_FILE}`: sentences in ({info['bytes']:,} bytes)", "",
                  f"Signature `serving_default`: `{SERVING_INPUT}` string [batch] -> "
                  f"`{SERVING_OUTPUT}` float32 [batch, {hidden}] (L2-normalized) and "
                  f"`{POOLED_OUTPUT}`, and `{NUM_TOKENS_OUTPUT}` int32 [batch] (each sentence's "
                  f"tokens with the prefix's, before truncation). It tokenizes, puts the text "
                  f"prefix {record['text_prefix']!r} before each sentence and truncates at "
                  f"{record['seq_length']} tokens, special tokens included (`SentenceEncoder.encode`"
                  f" truncates at its `max_seq_length`, {record['max_position_length']} unless "
                  f"set). Its tokenizer is a TF Text op: register TF Text's TFLite ops with the "
                  f"interpreter.", "",
                  "Give it valid UTF-8 with Hangul syllables composed: it does not repair or "
                  "normalize text, and decomposed Hangul (conjoining jamo, as macOS writes file "
                  "names) embeds as other text (normalize to NFC first; Java: "
                  "`Normalizer.normalize(s, Normalizer.Form.NFC)`; Swift: "
                  "`s.precomposedStringWithCanonicalMapping`).", "",
                  "Its tokenizer (TF Text's `FastSentencepieceTokenizer`) gives the ids of "
                  "`SentenceEncoder.encode` except where two segmentations score exactly the same, "
                  "as in runs of one repeated character (\"ㅋㅋㅋㅋㅋㅋㅋ\", \"~~~~~~~\"); "
                  "there it may pick the other, and the embedding moves a little (with the "
                  "default model: 115 of 39,650 Korean sentences tried, most of them news "
                  "comments; cosine 0.9926 or more to TensorFlow's).", "",
                  "```python",
                  "from tfkosent.tflite import TFLiteSentenceEncoder",
                  "model = TFLiteSentenceEncoder.load(\"THIS_DIRECTORY\")",
                  "embeddings = model.encode([\"한국어 문장을 임베딩합니다.\", \"문장 벡터를 만든다.\"])",
                  "```", "",
                  "Without tfkosent:", "",
                  "```python",
                  "import numpy as np, tensorflow_text as tf_text",
                  "from tensorflow.lite.python import interpreter",
                  f"it = interpreter.InterpreterWithCustomOps(model_path=\"{SENTENCE_MODEL_FILE}\",",
                  "    custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS)",
                  "run = it.get_signature_runner()",
                  f"out = run({SERVING_INPUT}=np.array([\"한국어 문장\"], dtype=object))[\"{SERVING_OUTPUT}\"]",
                  "```", ""]
    if ENCODER_MODEL_FILE in files:
        info = files[ENCODER_MODEL_FILE]
        special = record["special_tokens"]
        lines += [f"## `{ENCODER_MODEL_FILE}`: token ids in ({info['bytes']:,} bytes)", "",
                  f"Builtin TFLite ops only. Signature `serving_default`: "
                  f"{', '.join(f'`{k}`' for k in ENCODER_INPUTS)} int32 [batch, seq] -> "
                  f"`{SERVING_OUTPUT}` float32 [batch, {hidden}] (L2-normalized), "
                  f"`{POOLED_OUTPUT}`, and `{SEQUENCE_OUTPUT}` float32 [batch, seq, {hidden}] (the "
                  f"last layer's token states). Tokenize with `{record['tokenizer_file']}`; each row is "
                  f"{special['start_of_sequence_id']}, the prefix ids {record['prefix_ids']}, the "
                  f"text's ids, {special['end_of_segment_id']}, then padding "
                  f"{special['padding_id']} with mask 0; type ids 0. A row holds at most "
                  f"{record['max_position_length']} ids, the special tokens included: truncate "
                  f"the text's ids (a longer row fails).", "",
                  "With tfkosent, `SentenceEncoder.load(\"THIS_DIRECTORY\")` runs it behind the "
                  "model's own tokenizer and packing (the ids of the model it was exported from), "
                  "with every `SentenceEncoder` method.", ""]
    lines += ["## Parity with the TensorFlow model, measured at export", "",
              "| file | largest difference | smallest cosine |", "|---|---:|---:|"]
    for file_name, info in files.items():
        lines.append(f"| {file_name} | {info['parity']['max_abs_diff']:.2g} | "
                     f"{info['parity']['min_cosine']:.6f} |")
    lines.append("")
    lines += ["## Licence", "", *licence_lines(record.get("metadata") or {}, record.get("licence_file")), ""]
    return "\n".join(lines)


def read_tflite_info(path: str) -> Dict[str, object]:
    """The tflite_export.json of the TFLite export `path`; FileNotFoundError / ValueError name
    the file."""
    info_path = os.path.join(path, TFLITE_INFO_FILE)
    if not os.path.isfile(info_path):
        raise FileNotFoundError(f"{path}: not a tfkosent TFLite export (no {TFLITE_INFO_FILE})")
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{info_path}: unreadable ({e})") from e
    if not isinstance(info, dict) or info.get("format") != "tfkosent-tflite":
        raise ValueError(f"{info_path}: not a tfkosent TFLite export record")
    return info


def load_tflite_model_files(path: str):
    """A TFLite export's model config and tokenizer as `ModelFiles` without weights (the weights
    are in the flat buffers), and the path of its encoder.tflite: what `SentenceEncoder.load`
    serves a TFLite export with. ValueError when the export has no encoder.tflite."""
    from tfkosent.config import ConfigError, EncoderConfig, ModelConfig, PreprocessConfig
    from tfkosent.model_dir import ModelFiles, read_tokenizer_files

    path = os.path.abspath(path)
    info = read_tflite_info(path)
    if ENCODER_MODEL_FILE not in info.get("files", {}):
        raise ValueError(f"{path} has no {ENCODER_MODEL_FILE}, which SentenceEncoder.load needs "
                         f"(exported with --variant sentence_encoder alone): load it with "
                         f"tfkosent.tflite.TFLiteSentenceEncoder, or export both variants")
    try:
        config = ModelConfig(EncoderConfig.from_dict(info["model_config"]["encoder"]),
                             PreprocessConfig.from_dict(info["model_config"]["preprocess"]),
                             dict(info.get("metadata") or {}))
    except (KeyError, TypeError, ConfigError) as e:
        raise ValueError(f"{os.path.join(path, TFLITE_INFO_FILE)}: no usable model_config ({e}); "
                         f"export the model again with this tfkosent") from e
    proto, vocab = read_tokenizer_files(path, config.preprocess.tokenizer_type)
    return ModelFiles(path, config, {}, proto, vocab), os.path.join(path, ENCODER_MODEL_FILE)


def _compose_hangul(sentence: str) -> str:
    """NFC for text holding conjoining jamo (decomposed Hangul), as the TF preprocessor does
    (`layers.tokenizer.clean_text`); other text is left byte for byte as it is."""
    if any(low <= ord(c) <= high for c in sentence for low, high in CONJOINING_JAMO_RANGES):
        return unicodedata.normalize("NFC", sentence)
    return sentence


class TFLiteSentenceEncoder:
    """`encode` on sentence_encoder.tflite: the TFLite interpreter instead of TensorFlow.

    Not thread-safe (one interpreter): give each thread its own."""

    def __init__(self, path: str, num_threads: Optional[int] = None):
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.info = read_tflite_info(path)
        if SENTENCE_MODEL_FILE not in self.info.get("files", {}):
            raise ValueError(f"{path} has no {SENTENCE_MODEL_FILE} (exported with the token-ids "
                             f"model alone): load it with SentenceEncoder.load, which runs "
                             f"{ENCODER_MODEL_FILE} after the model's own tokenizer")
        if num_threads is not None:
            num_threads = positive_int(num_threads, "num_threads")
        self.path = path
        self._runner = make_interpreter(os.path.join(path, SENTENCE_MODEL_FILE),
                                        num_threads=num_threads).get_signature_runner()

    @classmethod
    def load(cls, path: str, num_threads: Optional[int] = None) -> "TFLiteSentenceEncoder":
        return cls(path, num_threads)

    @property
    def embedding_dim(self) -> int:
        return int(self.info["hidden_size"])

    def encode(self, sentences, batch_size: int = 32, normalize_embeddings: bool = True):
        """Like `SentenceEncoder.encode`: a str -> float32 [hidden]; a sequence of str ->
        float32 [n, hidden] ([0, hidden] for none). Sentences are batched by length, so each
        batch is padded only to its longest. TypeError / ValueError name a sentence that is not
        valid text (as `encode`); decomposed Hangul is composed first (as `encode`)."""
        from tfkosent.sentence_encoder import (is_single_sentence, validate_sentences,
                                               warn_about_inputs)

        batch_size = positive_int(batch_size, "batch_size")
        single = is_single_sentence(sentences)
        texts = [_compose_hangul(s) for s in validate_sentences(sentences)]
        key = SERVING_OUTPUT if normalize_embeddings else POOLED_OUTPUT
        out = np.zeros((len(texts), self.embedding_dim), np.float32)
        lengths = np.zeros(len(texts), np.int64)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i].encode("utf-8")))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            outputs = self._runner(**{SERVING_INPUT: np.array([texts[i] for i in rows], dtype=object)})
            out[rows] = outputs[key]
            lengths[rows] = outputs[NUM_TOKENS_OUTPUT]
        warn_about_inputs(texts, lengths, 2, int(self.info["seq_length"]), self.info["text_prefix"] or "",
                          self.info.get("metadata"), stacklevel=2)
        return out[0] if single else out
