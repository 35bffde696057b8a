"""Community detection against gold paraphrase groups: how to pick a threshold, and which model.

`SentenceEncoder.community_detection` / `tfkosent communities` group sentences that lie within
a cosine threshold of one centre. Here the sentences of the first N gold paraphrase groups
(paraKQC or StyleKQC: 10 sentences a group) are grouped by each model at several thresholds,
and the communities are compared with the gold groups, pair by pair:

  precision  of the sentence pairs put in one community, the share from one gold group
  recall     of the gold groups' sentence pairs, the share put in one community
  F1         their harmonic mean
  covered    the share of sentences in some community (min size 2: a loner is in none)

    python benchmarks/communities.py --model default --model /work/models_local/e5-small-ko \
        [--groups parakqc] [--limit-groups 300] [--thresholds 0.75,0.8,0.85,0.9]

A sentence that stands in two groups is kept in the first only. Encoding and grouping times are
printed per model (wall clock, this machine). No gold label enters the grouping.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pair_scores(communities, gold):
    """(precision, recall, F1) of same-community pairs against same-gold-group pairs.

    communities: [[row, ...]]; gold: int [n] group of each row."""
    from collections import Counter

    predicted_pairs = sum(len(c) * (len(c) - 1) // 2 for c in communities)
    correct = sum(k * (k - 1) // 2 for c in communities for k in Counter(gold[i] for i in c).values())
    gold_pairs = sum(k * (k - 1) // 2 for k in Counter(gold).values())
    precision = correct / predicted_pairs if predicted_pairs else 0.0
    recall = correct / gold_pairs if gold_pairs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True,
                        help="model or export directory, or 'default' (repeat)")
    parser.add_argument("--groups", default="parakqc", choices=["parakqc", "stylekqc"])
    parser.add_argument("--limit-groups", type=int, default=300, help="the first N groups (default 300)")
    parser.add_argument("--thresholds", default="0.75,0.8,0.85,0.88,0.9,0.93,0.95,0.97")
    parser.add_argument("--min-size", type=int, default=2)
    parser.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    sys.path.insert(0, REPO)
    import numpy as np

    from tfkosent import SentenceEncoder
    from tfkosent.data.datasets import load_paraphrase_groups
    from tfkosent.search import community_detection

    groups = load_paraphrase_groups(args.groups, data_dir=args.data_dir)[:args.limit_groups]
    sentences, gold, seen = [], [], set()
    for g, group in enumerate(groups):
        for sentence in group:
            if sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
                gold.append(g)
    gold = np.array(gold)
    thresholds = [float(t) for t in args.thresholds.split(",") if t]
    print(f"{args.groups}: {len(groups)} groups, {len(sentences)} distinct sentences; "
          f"min community size {args.min_size}")
    results = {}
    for path in args.model:
        model = SentenceEncoder.load(path)
        model.encode(sentences[:64])                       # warm-up: traces the encoder
        start = time.perf_counter()
        embeddings = model.encode(sentences, batch_size=64)
        encode_s = time.perf_counter() - start
        rows = []
        for threshold in thresholds:
            start = time.perf_counter()
            communities = community_detection(embeddings, threshold=threshold,
                                              min_community_size=args.min_size)
            group_s = time.perf_counter() - start
            precision, recall, f1 = pair_scores(communities, gold)
            covered = sum(len(c) for c in communities) / len(sentences)
            rows.append({"threshold": threshold, "communities": len(communities), "covered": covered,
                         "precision": precision, "recall": recall, "f1": f1, "seconds": group_s})
        results[path] = {"encode_seconds": encode_s, "rows": rows}
        print(f"\n{path}: encoded {len(sentences)} sentences in {encode_s:.1f} s")
        print("| threshold | communities | covered | precision | recall | F1 | grouping s |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['threshold']:.2f} | {r['communities']} | {100 * r['covered']:.1f}% | "
                  f"{100 * r['precision']:.1f} | {100 * r['recall']:.1f} | {100 * r['f1']:.1f} | "
                  f"{r['seconds']:.2f} |")
    if args.json:
        from tfkosent.evaluation.sts import write_json  # atomic

        write_json({"groups": args.groups, "limit_groups": args.limit_groups,
                    "sentences": len(sentences), "min_size": args.min_size, "models": results},
                   args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
