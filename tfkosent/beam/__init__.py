"""Bulk embedding with Apache Beam (the `[beam]` extra).

    tfkosent embed-corpus 'corpus/*.txt' out/ --model EXPORT_DIR \\
        --direct_num_workers 2 --direct_running_mode multi_processing

    from tfkosent.beam import read_embeddings
    ids, embeddings = read_embeddings("out/")      # ["a.txt:1", ...], float32 [n, hidden]

Modules:
  embed_corpus    the pipeline (`run`, `build_pipeline`, `run_cli`); needs apache_beam
  model_handler   `SentenceEncoderModelHandler`, a RunInference ModelHandler over the
                  exported `sentence_encoder/1` serving signature; needs apache_beam
  outputs         read the pipeline's output back (`read_embeddings`, `read_dead_letters`,
                  `read_manifest`); needs TensorFlow or pyarrow, not Beam

This package is import-light: importing it imports neither Beam nor
TensorFlow; the names below are loaded on first use.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "read_embeddings": "outputs",
    "read_ids": "outputs",
    "read_dead_letters": "outputs",
    "read_manifest": "outputs",
    "parse_id": "outputs",
    "run": "embed_corpus",
    "build_pipeline": "embed_corpus",
    "run_cli": "embed_corpus",
    "EmbedCorpusResult": "embed_corpus",
    "SentenceEncoderModelHandler": "model_handler",
    "resolve_serving_dir": "model_handler",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
