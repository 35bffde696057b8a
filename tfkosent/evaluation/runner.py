"""`tfkosent evaluate`: the published STS table for any model or export.

Bi-encoders are scored through `SentenceEncoder.encode` (embeddings are
L2-normalized there; the dot-product columns therefore equal cosine for them).
Cross-encoders (`--cross-encoder`) are scored on their predicted pair scores.
"""

from __future__ import annotations

import os
import sys
import time

from tfkosent.evaluation.sts import (DEFAULT_TASKS, dataset_provenance, format_markdown_table,
                                     run_tasks, write_json)


def _split_tasks(tasks, pairs_files):
    """--tasks as a list: the default tasks when neither --tasks nor --pairs is given."""
    if tasks is None:
        return [] if pairs_files else list(DEFAULT_TASKS)
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names:
        raise ValueError("--tasks is empty")
    return names


def model_f1_threshold(model):
    """The KLUE-STS cosine cut a model carries (fitted on KLUE-STS train), or None."""
    meta = model.config.metadata if model.config is not None else {}
    value = meta.get("klue_f1_cosine_threshold")
    return None if value is None else float(value)


def evaluate_model_cli(args) -> int:
    from tfkosent.validation import check_output_path

    pairs_files = args.pairs or []
    tasks = _split_tasks(args.tasks, pairs_files)
    check_output_path(args.json, "--json")  # before the evaluation, not after it
    check_output_path(args.plot, "--plot", directory=True)
    start = time.time()
    if getattr(args, "cross_encoder", False):
        from tfkosent.cross_encoder import evaluate_cross_encoder_cli
        results = evaluate_cross_encoder_cli(args.model, tasks, args.data_dir, args.batch_size,
                                             args.limit, pairs_files, args.plot)
    else:
        from tfkosent.cli import resolve_model_dir
        from tfkosent.sentence_encoder import SentenceEncoder

        model = SentenceEncoder.load(resolve_model_dir(args.model))
        if model.config is not None and model.config.metadata.get("trained") is False:
            print("WARNING: this model is untrained (random weights); its scores mean nothing.",
                  file=sys.stderr)
        show = sys.stderr.isatty()

        def encode_fn(sentences):
            return model.encode(sentences, batch_size=args.batch_size, show_progress_bar=show)

        # One encode_fn call per task: SentenceEncoder.encode does its own length-sorted
        # batching and progress bar.
        results = run_tasks(encode_fn, tasks, data_dir=args.data_dir, batch_size=10**9,
                            show_progress_bar=False, plot_dir=args.plot, limit=args.limit,
                            f1_cosine_threshold=model_f1_threshold(model), pairs_files=pairs_files)
    print(f"model: {os.path.abspath(args.model) if args.model != 'default' else 'default'}"
          f"{' (first %d pairs per task)' % args.limit if args.limit else ''}")
    print(format_markdown_table(results))
    print(f"({time.time() - start:.0f} s)")
    if args.json:
        from tfkosent import __version__
        from tfkosent.cli import resolve_model_dir
        write_json({"model": args.model, "model_path": os.path.abspath(resolve_model_dir(args.model)),
                    "limit": args.limit, "tfkosent_version": __version__,
                    "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "data": _provenance(tasks, pairs_files, args.data_dir),
                    "results": results}, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote scatter plots to {args.plot}/")
    return 0


def _provenance(tasks, pairs_files, data_dir):
    """Each evaluated file's path and sha256 (and, for a task, whether it is the published
    file), so that a JSON result says what it was computed on."""
    from tfkosent.data.datasets import sha256_file
    data = {task: dataset_provenance(task, data_dir) for task in tasks}
    for path in pairs_files:
        data[str(path)] = {"path": os.path.abspath(path), "sha256": sha256_file(path)}
    return data
