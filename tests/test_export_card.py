"""The model card, README.md, that `tfkosent export` writes at the root of an export.

The names, shapes and dtypes it states are read back from the saved signatures, and each of its
snippets is run against the tiny export (tfkosent/export_card.py renders it).
"""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the SentencePiece ops, before loading the SavedModels)

from tfkosent.sentence_encoder import SentenceEncoder

MODULES = ("preprocess", "encoder", os.path.join("sentence_encoder", "1"))


def _card(export_dir):
    with open(os.path.join(export_dir, "README.md"), encoding="utf-8") as f:
        return f.read()


def _info(export_dir):
    with open(os.path.join(export_dir, "tfkosent_export.json"), encoding="utf-8") as f:
        return json.load(f)


def _section(card, module):
    """The card's text from the `### `module/`` heading to the next heading."""
    start = card.index(f"### `{module}/`")
    end = card.find("\n#", start + 1)
    return card[start:end if end >= 0 else None]


def _spec_text(spec):
    """A TensorSpec as the card writes it: `float32 [batch, seq_length, 32]`."""
    dims = [("batch" if i == 0 else "seq_length") if d is None else str(d)
            for i, d in enumerate(spec.shape)]
    return f"{spec.dtype.name} [{', '.join(dims)}]"


def _fenced(card, language):
    return re.findall(rf"```{language}\n(.*?)```", card, re.S)


def test_card_is_written_and_names_the_saved_signatures(tiny_model_dir, tiny_export_dir):
    from tfkosent.export_card import export_readme

    card, info = _card(tiny_export_dir), _info(tiny_export_dir)
    assert card == export_readme(info)   # rendered from tfkosent_export.json, nothing else
    for sub in MODULES:
        module = sub.replace(os.sep, "/")
        section = _section(card, module)
        signatures = tf.saved_model.load(os.path.join(tiny_export_dir, sub)).signatures
        assert signatures, module
        for name, signature in signatures.items():
            assert f"`{name}` signature" in section, (module, name)
            _, inputs = signature.structured_input_signature
            for key, spec in inputs.items():
                assert f"`{key}`" in section, (module, name, key)
                assert _spec_text(spec) in section, (module, name, key, _spec_text(spec))
            for key, spec in signature.structured_outputs.items():
                assert f"`{key}`" in section, (module, name, key)
                assert _spec_text(spec) in section, (module, name, key, _spec_text(spec))
    # sentence_encoder/1's signature row, names and shapes together, read from the SavedModel
    serving = tf.saved_model.load(os.path.join(tiny_export_dir, *MODULES[2].split(os.sep)))
    signature = serving.signatures["serving_default"]
    (in_key, in_spec), = signature.structured_input_signature[1].items()
    (out_key, out_spec), = signature.structured_outputs.items()
    assert (f"| `serving_default` signature | `{in_key}`: tf.string [batch] | "
            f"`{out_key}`: {_spec_text(out_spec)}, L2-normalized |") in card
    embeddings = signature(**{in_key: tf.constant(["나는 밥을 먹는다.", ""])})[out_key]
    np.testing.assert_allclose(np.linalg.norm(embeddings.numpy(), axis=1), 1.0, atol=1e-5)
    # the model's facts, from the export's own record
    assert (info["seq_length"], info["preprocess_seq_length"], info["hidden_size"]) == (64, 64, 32)
    assert "| seq_length | 64 tokens" in card and "| preprocess seq_length | 64 tokens" in card
    assert f"hidden size {info['hidden_size']}" in card and f"{info['num_layers']} layers" in card
    assert "| text prefix | none |" in card
    with np.load(os.path.join(tiny_model_dir, "weights.npz")) as weights:
        parameters = sum(int(np.prod(weights[k].shape)) for k in weights.files)
    assert info["num_parameters"] == parameters and f"| parameters | {parameters:,} |" in card
    assert f"SentencePiece, {info['vocab_size']:,} entries" in card
    assert info["weights_sha256"] in card
    import tfkosent
    assert f"Written by tfkosent {tfkosent.__version__} (tensorflow {tf.__version__}" in card
    assert "tiny-random" in card and "random weights for tests" in card   # metadata name, note
    # published: no path of the exporting machine
    assert tiny_export_dir not in card and tiny_model_dir not in card
    assert os.path.dirname(tiny_export_dir) not in card


def test_card_snippets_run_against_the_export(tiny_export_dir):
    """Each fenced python block, with EXPORT_DIR set to the export, runs and embeds as encode()
    does; each JSON block is a serving_default request body the signature answers."""
    from tfkosent.export_card import EXAMPLE_SENTENCES, EXPORT_DIR_PLACEHOLDER

    card = _card(tiny_export_dir)
    blocks = _fenced(card, "python")
    assert len(blocks) >= 4
    assert any("tensorflow_hub" in b for b in blocks) and any("TFSMLayer" in b for b in blocks)
    assert any("SentenceEncoder.load(EXPORT_DIR)" in b for b in blocks)
    expected = SentenceEncoder.load(tiny_export_dir).encode(EXAMPLE_SENTENCES)
    for block in blocks:
        assert f'EXPORT_DIR = "{EXPORT_DIR_PLACEHOLDER}"' in block
        namespace = {}
        exec(block.replace(f'"{EXPORT_DIR_PLACEHOLDER}"', repr(tiny_export_dir)), namespace)
        np.testing.assert_allclose(np.asarray(namespace["embeddings"]), expected, atol=1e-5,
                                   err_msg=block)
    bodies = [json.loads(b) for b in _fenced(card, "json")]
    assert {"instances", "inputs"} <= {key for body in bodies for key in body}
    serving = tf.saved_model.load(os.path.join(tiny_export_dir, "sentence_encoder", "1"))
    for body in bodies:
        signature = serving.signatures[body["signature_name"]]
        (in_key, _), = signature.structured_input_signature[1].items()
        (out_key, _), = signature.structured_outputs.items()
        # row format: a single input, so each instance is the string; columnar: by input name
        inputs = body["inputs"] if "inputs" in body else {in_key: body["instances"]}
        got = signature(**{k: tf.constant(v) for k, v in inputs.items()})[out_key].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_card_states_prefix_lengths_and_limit_and_overwrite_replaces_it(tiny_prefixed_model_dir,
                                                                        tmp_path, capsys):
    from tfkosent.cli import main
    from tfkosent.export_card import export_readme

    out = tmp_path / "exp"
    assert main(["export", "--model", tiny_prefixed_model_dir, "--out", str(out),
                 "--seq-length", "16", "--max-batch-tokens", "128"]) == 0
    assert f"{out}/README.md" in capsys.readouterr().out
    card = _card(str(out))
    assert '| text prefix | `"query: "`, which the preprocessing puts before every sentence' in card
    assert "| seq_length | 64 tokens" in card and "| preprocess seq_length | 16 tokens" in card
    assert "int32 [batch, 16] each" in card                     # preprocess' serving_default
    assert "bert_pack_inputs(segments, seq_length=16)" in card and "at most 64" in card
    assert "at most 128 tokens a request" in card
    pre = tf.saved_model.load(str(out / "preprocess")).signatures["serving_default"]
    assert all(spec.shape[1] == 16 for spec in pre.structured_outputs.values())
    # --overwrite replaces the card with the rest of the export
    assert main(["export", "--model", tiny_prefixed_model_dir, "--out", str(out), "--overwrite",
                 "--seq-length", "32"]) == 0
    card = _card(str(out))
    assert "| preprocess seq_length | 32 tokens" in card and "int32 [batch, 32] each" in card
    assert "[batch, 16]" not in card and "at most 128 tokens a request" not in card
    assert card == export_readme(_info(str(out)))
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_card_carries_licence_training_and_dev_score_from_the_metadata(tiny_export_dir):
    """Rendered from a record whose metadata is the default model's (no export of it needed)."""
    from tfkosent.export import published_metadata
    from tfkosent.export_card import export_readme
    from tfkosent.sentence_encoder import DEFAULT_MODEL_DIR

    with open(os.path.join(DEFAULT_MODEL_DIR, "config.json"), encoding="utf-8") as f:
        metadata = published_metadata(json.load(f)["metadata"])
    card = export_readme({**_info(tiny_export_dir), "metadata": metadata})
    assert card.startswith(f"# {metadata['name']}\n")
    assert f"- Licence: {metadata['licence']}" in card
    assert f"- Licence notes: {metadata['licence_notes']}" in card
    assert f"| upstream model | {metadata['upstream_model']} |" in card
    assert f"- Weights source: {metadata['source']}" in card
    training = metadata["training"]
    assert f"- Training base model: `{training['base_model']}`" in card
    dev = training["dev"]
    assert f"{dev['dataset']}: cosine_spearman {dev['cosine_spearman']:.4g}" in card
    assert "untrained" not in card
    assert "Licence text" not in card                   # no licence file recorded
    card = export_readme({**_info(tiny_export_dir), "metadata": metadata,
                          "licence_file": "DEFAULT_MODEL_LICENSE.md"})
    assert "- Licence text: `DEFAULT_MODEL_LICENSE.md`, in this directory" in card
    # a model without the default model's licence notes (the tiny one) exports no licence file
    assert not os.path.exists(os.path.join(tiny_export_dir, "DEFAULT_MODEL_LICENSE.md"))
    assert "licence_file" not in _info(tiny_export_dir)
    # an older record without the optional keys still renders, leaving them out
    old = {k: v for k, v in _info(tiny_export_dir).items()
           if k not in ("num_parameters", "vocab_size", "special_tokens", "written_by",
                        "tokenizer_type")}
    card = export_readme({**old, "metadata": {}})
    assert "| parameters |" not in card and "- Licence: not recorded" in card


@pytest.mark.parametrize("bad", ["| pipe", "line\nbreak"])
def test_card_keeps_metadata_text_inside_its_table_cell(tiny_export_dir, bad):
    from tfkosent.export_card import export_readme

    card = export_readme({**_info(tiny_export_dir), "metadata": {"name": "m", "source": bad}})
    (row,) = [line for line in card.splitlines() if line.startswith("| weights source |")]
    assert len(re.split(r"(?<!\\)\|", row)) == 4   # two cells: the pipe is escaped, no line break
