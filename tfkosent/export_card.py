"""The model card, README.md, that `tfkosent export` writes at the root of an export.

`export_readme(info)` renders it from `info`, the dict that `export_model` writes to
tfkosent_export.json beside it, and from nothing else: every number and name in the card is the
export's own (hidden size, layers, lengths, prefix, licence, weights digest, dev score), so a
card cannot drift from the modules it describes. The signatures' names, shapes and dtypes are
those `tfkosent.export` builds (tests/test_export_card.py compares them with the saved signatures),
and the usage snippets run against the export once `EXPORT_DIR_PLACEHOLDER` is replaced by its
path (the tests exec them). The card is for whoever receives or publishes an export (Kaggle
Models, a model registry, a bucket): it carries no absolute path, as tfkosent_export.json does
not.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

from tfkosent.layers.transformer import ENCODER_INPUT_KEYS
from tfkosent.model_dir import EXPORT_INFO_FILE

README_FILE = "README.md"
# What each usage snippet sets EXPORT_DIR to: the reader replaces it with the export's path.
EXPORT_DIR_PLACEHOLDER = "path/to/export"
# preprocess/'s string input (export.build_preprocess_module names it so); sentence_encoder/1's
# is `info["serving"]["input"]`.
PREPROCESS_INPUT = "sentences"
EXAMPLE_SENTENCES = ["오늘 날씨가 좋다", "날씨가 맑다"]
EXAMPLE_PAIR = ("한 남자가 음식을 먹는다.", "한 남자가 빵 한 조각을 먹는다.")

POOLING = {
    "mean": "the mean of the last layer's token vectors under `input_mask` (special tokens "
            "included)",
    "cls": "the last layer's first token vector",
    "cls_dense_tanh": "BERT's pooler: dense + tanh over the last layer's first token vector",
}
PACKING = {
    "bert": "BERT layout, `[CLS] a [SEP] b [SEP]`; `input_type_ids` 0 for the first segment, "
            "1 for the second",
    "roberta": "RoBERTa / XLM-R layout, `<s> a </s></s> b </s>`; `input_type_ids` all 0",
}
TOKENIZER = {"sentencepiece": "SentencePiece", "wordpiece": "WordPiece"}


def _cell(value: Any) -> str:
    """`value` as text for a Markdown table cell or bullet: no line breaks, `|` escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _number(value: Any) -> str:
    """An int with thousands separators, a float to 4 significant digits, else as it is."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _cell(value)


def _layer_keys(num_layers: int) -> str:
    keys = [f"`encoder_outputs_{i}`" for i in range(num_layers)]
    return ", ".join(keys) if num_layers <= 4 else f"{keys[0]} ... {keys[-1]}"


def _dev_score(dev: Any) -> str:
    """`metadata.training.dev` ({"dataset": ..., metric: value, ...}) as one line."""
    if not isinstance(dev, dict):
        return _number(dev)
    scores = ", ".join(f"{_cell(k)} {_number(v)}" for k, v in dev.items() if k != "dataset")
    return f"{_cell(dev['dataset'])}: {scores}" if "dataset" in dev else scores


def _training_lines(training: Dict[str, Any]) -> List[str]:
    lines = []
    if training.get("base_model"):
        lines.append(f"- Training base model: `{_cell(training['base_model'])}`"
                     + (f", step {_number(training['step'])}" if "step" in training else ""))
    for task in training.get("tasks") or []:
        if isinstance(task, dict):
            data = ", ".join(f"`{_cell(d)}`" for d in task.get("data") or [])
            loss = f" ({_cell(task['loss'])} loss)" if task.get("loss") else ""
            lines.append(f"- Training task `{_cell(task.get('name', '?'))}`{loss}"
                         + (f" on {data}" if data else ""))
    if "dev" in training:
        lines.append(f"- Dev score recorded in the metadata: {_dev_score(training['dev'])}")
    return lines


def export_readme(info: Dict[str, Any]) -> str:
    """The README.md (model card) of an export, as Markdown, from its tfkosent_export.json
    contents `info`: what the model is, the three modules' signatures (input and output names,
    shapes, dtypes), usage with tf_keras + TF Hub, Keras 3, tfkosent, plain TensorFlow and TF
    Serving's REST API, and provenance and licence from `info["metadata"]`. Keys an older
    export lacks (vocab_size, num_parameters, written_by, ...) are left out of the card, never
    guessed."""
    f = _facts(info)
    sections = [_header(f), _model(f), _modules(f), _usage(f), _rest(f), _provenance(f)]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _facts(info: Dict[str, Any]) -> SimpleNamespace:
    """What the sections read from `info`, named once."""
    meta = info.get("metadata") if isinstance(info.get("metadata"), dict) else {}
    serving = info.get("serving") or {}
    written_by = info.get("written_by") if isinstance(info.get("written_by"), dict) else {}
    return SimpleNamespace(
        info=info, meta=meta, name=meta.get("name") or info["source"],
        hidden=info["hidden_size"], layers=info["num_layers"], pooling=info["pooling"],
        packing=info["packing"], seq_length=info["seq_length"],
        pre_length=info["preprocess_seq_length"], prefix=info.get("text_prefix") or "",
        tokenizer=info.get("tokenizer_type"), sig=serving["signature"], sig_in=serving["input"],
        sig_out=serving["output"], max_batch_tokens=serving.get("max_batch_tokens"),
        warmup=serving.get("warmup_requests"), version=written_by.get("tfkosent"),
        saved_with=", ".join(f"{k} {v}" for k, v in written_by.items() if k != "tfkosent"),
        inputs_md=", ".join(f"`{k}`" for k in ENCODER_INPUT_KEYS),
        sentences=json.dumps(EXAMPLE_SENTENCES, ensure_ascii=False),
        pair=[json.dumps([s], ensure_ascii=False) for s in EXAMPLE_PAIR])


def _header(f) -> List[str]:
    lines = [f"# {_cell(f.name)}", "",
             f"A sentence encoder exported by tfkosent{f' {f.version}' if f.version else ''} "
             f"(`tfkosent export`) as TF Hub-style SavedModels: text in, {f.hidden}-dimensional "
             f"embeddings out. This card is generated from `{EXPORT_INFO_FILE}` in this "
             f"directory, which holds the same facts, and the model's full metadata, as JSON."]
    warnings = (["the metadata records untrained weights (`trained: false`)"]
                if f.meta.get("trained") is False else [])
    if f.meta.get("note"):
        warnings.append(_cell(f.meta["note"]))
    if warnings:
        lines += ["", "> **Note:** " + "; ".join(warnings) + "."]
    return lines


def _model(f) -> List[str]:
    info, meta = f.info, f.meta
    rows = [("name", _cell(f.name)),
            ("exported from", f"`{_cell(info['source'])}` (tfkosent model directory)")]
    if meta.get("source"):
        rows.append(("weights source", _cell(meta["source"])))
    if meta.get("upstream_model"):
        rows.append(("upstream model", _cell(meta["upstream_model"])))
    rows.append(("architecture",
                 f"transformer encoder, {f.layers} layers, hidden size {f.hidden}"))
    if info.get("num_parameters") is not None:
        rows.append(("parameters", _number(info["num_parameters"])))
    if info.get("vocab_size") is not None:
        tokenizer = TOKENIZER.get(f.tokenizer, _cell(f.tokenizer or "tokenizer"))
        rows.append(("vocabulary", f"{tokenizer}, {_number(info['vocab_size'])} entries"))
    rows += [("pooling", f"`{_cell(f.pooling)}`: {POOLING.get(f.pooling, 'see the metadata')}"),
             ("packing", f"`{_cell(f.packing)}`: {PACKING.get(f.packing, 'see the metadata')}")]
    prefix = json.dumps(f.prefix, ensure_ascii=False)
    rows.append(("text prefix", f"`{_cell(prefix)}`, which the preprocessing puts before every "
                 f"sentence (and each segment of a pair): send plain text" if f.prefix else "none"))
    rows += [("seq_length", f"{f.seq_length} tokens, the model's maximum: `sentence_encoder/1` "
              f"pads each request to its longest sentence and truncates here; `bert_pack_inputs` "
              f"accepts a `seq_length` up to it"),
             ("preprocess seq_length", f"{f.pre_length} tokens: what `preprocess(sentences)` and "
              f"`bert_pack_inputs` without a `seq_length` pad and truncate to"),
             ("embedding", f"float32 [{f.hidden}]; `sentence_encoder/1`'s `{_cell(f.sig_out)}` "
              f"are L2-normalized (a dot product is the cosine similarity); `encoder/`'s "
              f"`pooled_output` is not")]
    return ["## Model", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


def _modules(f) -> List[str]:
    special = f.info.get("special_tokens")
    special_md = (", ".join(f"`{_cell(k)}` {_cell(v)}" for k, v in special.items())
                  if isinstance(special, dict) else "the tokenizer's special-token ids")
    pieces = "the prefix's pieces, then the text's" if f.prefix else "the text's pieces"
    limit = (f", and at most {f.max_batch_tokens:,} tokens a request (rows x seq_length)"
             if f.max_batch_tokens else "")
    asset = "vocab_file" if f.tokenizer == "wordpiece" else "sp_model_file"
    if f.max_batch_tokens:
        request_limit = (f"A request may hold at most {f.max_batch_tokens:,} tokens (sentences x "
                         f"the longest one's tokens): a larger one fails with "
                         f"InvalidArgumentError (HTTP 400 from TF Serving).")
    else:
        request_limit = ("No request-size limit was set at export (`tfkosent export "
                         "--max-batch-tokens`).")
    warmup = (" `assets.extra/tf_serving_warmup_requests` holds warm-up requests, which TF "
              "Serving replays when it loads the model." if f.warmup else "")
    return [
        "## Modules", "",
        "Every string input is a vector, tf.string [batch], of UTF-8 text; bytes that are not "
        "UTF-8, or a scalar or matrix instead of a vector, fail with InvalidArgumentError. The "
        "string modules use TensorFlow Text ops: `import tensorflow_text` before loading them.",
        "",
        "### `preprocess/`: text to encoder inputs (TF Hub BERT preprocess contract)", "",
        "| call | inputs | outputs |", "|---|---|---|",
        f"| `serving_default` signature, or `preprocess(sentences)` | `{PREPROCESS_INPUT}`: "
        f"tf.string [batch] | {f.inputs_md}: int32 [batch, {f.pre_length}] each |",
        f"| `preprocess.tokenize(sentences)` | tf.string [batch] | int32 ragged "
        f"[batch, (tokens)]: {pieces}, no special tokens |",
        f"| `preprocess.tokenize.get_special_tokens_dict()` | none | {{name: int32 scalar}}: "
        f"{special_md} |",
        f"| `preprocess.bert_pack_inputs(segments, seq_length={f.pre_length})` | `segments`: a "
        f"list of 1 or 2 int32 ragged [batch, (tokens)] (or [batch, (words), (pieces)]); "
        f"`seq_length`: int32 scalar, at most {f.seq_length} | {f.inputs_md}: int32 "
        f"[batch, seq_length] each |",
        "",
        "### `encoder/`: encoder inputs to outputs (reusable SavedModel, fine-tunable)", "",
        f"Inputs, for every call: a dict of {f.inputs_md}, int32 [batch, seq_length] each "
        f"(seq_length at most {f.seq_length}). Dropout is on only with `training=True` (and in "
        f"`serve_training`).",
        "",
        "| call | outputs |", "|---|---|",
        f"| `encoder(inputs, training=False)`; `encoder.serve(inputs)` and "
        f"`encoder.serve_training(inputs)` (the endpoints for Keras 3's TFSMLayer) | `default` "
        f"and `pooled_output`: float32 [batch, {f.hidden}] (the same tensor: the pooling above, "
        f"not normalized); `sequence_output`: float32 [batch, seq_length, {f.hidden}]; "
        f"`encoder_outputs`: a list of {f.layers} float32 [batch, seq_length, {f.hidden}], one "
        f"per layer |",
        f"| `serving_default` signature | `default`, `pooled_output`, `sequence_output` as above, "
        f"and {_layer_keys(f.layers)} in place of the list |",
        f"| `pooled_output` signature | `pooled_output`: float32 [batch, {f.hidden}] only |",
        "",
        f"The two signatures check their inputs (ids within the vocabulary, `input_mask` 0 or 1 "
        f"with a 1 in every row, equal shapes, at most {f.seq_length} tokens a row{limit}) and "
        f"fail with InvalidArgumentError otherwise; the other calls, which fine-tuning uses, do "
        f"not. `encoder.{asset}` (the tokenizer file) and `encoder.do_lower_case` are there as "
        f"on TF Hub's encoders.",
        "",
        "### `sentence_encoder/1/`: text to embeddings (TF Serving layout)", "",
        "| call | inputs | outputs |", "|---|---|---|",
        f"| `{_cell(f.sig)}` signature | `{_cell(f.sig_in)}`: tf.string [batch] | "
        f"`{_cell(f.sig_out)}`: float32 [batch, {f.hidden}], L2-normalized |",
        f"| `module(sentences, training=False)` (fine-tunable: `hub.KerasLayer(..., "
        f"trainable=True, output_key=\"{_cell(f.sig_out)}\")`) | tf.string [batch] | "
        f"{{\"{_cell(f.sig_out)}\": float32 [batch, {f.hidden}]}}, L2-normalized |",
        "",
        f"Each batch is padded to its longest sentence, and a sentence is truncated to "
        f"{f.seq_length} tokens. {request_limit}{warmup}",
    ]


def _usage(f) -> List[str]:
    """The Python snippets: each sets EXPORT_DIR and ends with `embeddings` for
    EXAMPLE_SENTENCES (tests/test_export_card.py runs them)."""
    path, sentences, (pair_a, pair_b) = EXPORT_DIR_PLACEHOLDER, f.sentences, f.pair
    return [
        "## Usage", "",
        f"Set `EXPORT_DIR` to this directory (the snippets say `\"{path}\"`).", "",
        "### tf_keras + TensorFlow Hub (fine-tunable)", "",
        "```python",
        "import tensorflow as tf, tensorflow_hub as hub, tensorflow_text, tf_keras",
        "",
        f"EXPORT_DIR = \"{path}\"",
        "preprocess = hub.KerasLayer(f\"{EXPORT_DIR}/preprocess\")",
        "encoder = hub.KerasLayer(f\"{EXPORT_DIR}/encoder\", trainable=True)",
        "text = tf_keras.Input(shape=(), dtype=tf.string)",
        "pooled = encoder(preprocess(text))[\"pooled_output\"]",
        "embedding = tf_keras.layers.Lambda(lambda x: tf.nn.l2_normalize(x, -1))(pooled)",
        "model = tf_keras.Model(text, embedding)",
        f"embeddings = model(tf.constant({sentences}))  # float32 [2, {f.hidden}]",
        "",
        "# or text to embeddings in one layer (trainable=True fine-tunes it too)",
        f"embed = hub.KerasLayer(f\"{{EXPORT_DIR}}/sentence_encoder/1\", "
        f"output_key=\"{f.sig_out}\")",
        f"embeddings = embed(tf.constant({sentences}))",
        "```", "",
        f"`preprocess` truncates at {f.pre_length} tokens, `sentence_encoder/1` at "
        f"{f.seq_length}.",
        "",
        "### Keras 3", "",
        "```python",
        "import keras, tensorflow as tf, tensorflow_text",
        "",
        f"EXPORT_DIR = \"{path}\"",
        f"embed = keras.layers.TFSMLayer(f\"{{EXPORT_DIR}}/sentence_encoder/1\", "
        f"call_endpoint=\"{f.sig}\")",
        f"embeddings = embed(tf.constant({sentences}))[\"{f.sig_out}\"]  # float32 [2, {f.hidden}]",
        "```", "",
        "To fine-tune in Keras 3, chain `preprocess/` (`call_endpoint=\"serving_default\"`) and "
        "`encoder/` (`call_endpoint=\"serve\", call_training_endpoint=\"serve_training\", "
        "trainable=True`); tfkosent's `FineTunableTFSMLayer` does that with weight names that "
        "Adam and AdamW accept in `fit` (tfkosent's README, \"Keras 3\").",
        "",
        "### tfkosent", "",
        "```python",
        "from tfkosent import SentenceEncoder",
        "",
        f"EXPORT_DIR = \"{path}\"",
        "model = SentenceEncoder.load(EXPORT_DIR)",
        f"embeddings = model.encode({sentences})  # numpy float32 [2, {f.hidden}], L2-normalized",
        f"print(model.similarity({pair_a}, {pair_b}))",
        "```", "",
        "### TensorFlow only", "",
        "```python",
        "import tensorflow as tf, tensorflow_text",
        "",
        f"EXPORT_DIR = \"{path}\"",
        f"serve = tf.saved_model.load(f\"{{EXPORT_DIR}}/sentence_encoder/1\")"
        f".signatures[\"{f.sig}\"]",
        f"embeddings = serve({f.sig_in}=tf.constant({sentences}))[\"{f.sig_out}\"]",
        "",
        "# a sentence pair through preprocess/ and encoder/",
        "preprocess = tf.saved_model.load(f\"{EXPORT_DIR}/preprocess\")",
        "encoder = tf.saved_model.load(f\"{EXPORT_DIR}/encoder\")",
        f"a = preprocess.tokenize(tf.constant({pair_a}))",
        f"b = preprocess.tokenize(tf.constant({pair_b}))",
        f"inputs = preprocess.bert_pack_inputs([a, b], seq_length={f.pre_length})",
        "pooled = encoder(inputs, training=False)[\"pooled_output\"]  # not normalized",
        "```",
    ]


def _rest(f) -> List[str]:
    ops = ("`NormalizeUTF8`, `SentencepieceOp` and `SentencepieceTokenizeOp`"
           if f.tokenizer == "sentencepiece" else "tokenizer ops")
    saved_with = f"; this export was saved with {f.saved_with}." if f.saved_with else "."
    return [
        "### TF Serving (REST)", "",
        "The model base path is `sentence_encoder/`, the directory that holds the version `1`:",
        "",
        "```bash",
        "tensorflow_model_server --rest_api_port=8501 --model_name=sentence_encoder \\",
        f"  --model_base_path=\"$(realpath {EXPORT_DIR_PLACEHOLDER})/sentence_encoder\"",
        "```", "",
        "`POST http://localhost:8501/v1/models/sentence_encoder:predict`, row format:", "",
        "```json",
        json.dumps({"signature_name": f.sig, "instances": EXAMPLE_SENTENCES}, ensure_ascii=False),
        "```", "",
        f"answers `{{\"predictions\": [[...], [...]]}}`, one row of {f.hidden} floats per "
        f"sentence. Columnar format:",
        "",
        "```json",
        json.dumps({"signature_name": f.sig, "inputs": {f.sig_in: EXAMPLE_SENTENCES}},
                   ensure_ascii=False),
        "```", "",
        "answers `{\"outputs\": [[...], [...]]}` (the signature has one output, so TF Serving "
        "leaves out its name). Send the JSON as UTF-8.",
        "",
        f"The server must register TensorFlow Text's {ops} (a build that links TensorFlow "
        f"Text; otherwise loading fails with \"Op type not registered\"){saved_with} "
        f"`encoder/` alone needs only core TensorFlow ops.",
    ]


def licence_lines(meta, licence_file: Optional[str] = None) -> List[str]:
    """The licence, its notes and the licence text's file (in the export's directory), as card
    lines; also the TFLite export's card (tflite.py)."""
    lines = [f"- Licence: {_cell(meta['licence'])}" if meta.get("licence") else
             "- Licence: not recorded in the model's metadata"]
    if meta.get("licence_notes"):
        lines.append(f"- Licence notes: {_cell(meta['licence_notes'])}")
    if licence_file:
        lines.append(f"- Licence text: `{_cell(licence_file)}`, in this directory")
    return lines


def _provenance(f) -> List[str]:
    meta, info = f.meta, f.info
    lines = ["## Provenance and licence", "", *licence_lines(meta, info.get("licence_file"))]
    if meta.get("source"):
        lines.append(f"- Weights source: {_cell(meta['source'])}")
    if meta.get("upstream_model"):
        lines.append(f"- Upstream model: {_cell(meta['upstream_model'])}")
    if isinstance(meta.get("training"), dict):
        lines += _training_lines(meta["training"])
    notes = meta.get("notes")
    lines += [f"- Note: {_cell(note)}" for note in (notes if isinstance(notes, list) else [])]
    lines.append(f"- Exported from the model directory `{_cell(info['source'])}`; its "
                 f"weights.npz has sha256 `{_cell(info.get('weights_sha256', 'not recorded'))}`")
    lines.append(f"- Written by tfkosent{f' {f.version}' if f.version else ''}"
                 + (f" ({f.saved_with})" if f.saved_with else ""))
    lines += ["", f"The model's whole metadata is `metadata` in `{EXPORT_INFO_FILE}`."]
    return lines
