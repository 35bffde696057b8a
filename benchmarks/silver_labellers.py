"""How well silver-pair labellers score gold STS pairs: each scorer alone and their mix.

`tfkosent silver --scorer A --scorer B` labels pairs with `combine_scores` of the scorers (each
later scorer mapped onto the first one's scale by a least-squares line over the pairs, then the
mean). This scores the gold pairs of the dev sets the same way, so a labeller mix can be judged
before any student is trained on its labels. No gold score enters the mix; the correlations
with gold are reported only.

    python benchmarks/silver_labellers.py --scorer runs/default_model/cross_encoder2/model \
        --scorer runs/default_model/teacher_probe/model [--tasks korsts-dev,klue-sts-dev]

Prints Spearman and Pearson x 100 per task for each scorer and for the mix (cross-encoders score
both orders, as `tfkosent silver` does; bi-encoders by clipped cosine).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scorer", action="append", required=True, help="model directory (repeat)")
    parser.add_argument("--tasks", default="korsts-dev,klue-sts-dev")
    parser.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    sys.path.insert(0, REPO)
    import numpy as np
    from tfkosent.data import load_sts
    from tfkosent.evaluation.sts import pearson, spearman
    from tfkosent.training.silver import combine_scores, score_pairs

    tasks = [t for t in args.tasks.split(",") if t]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            examples = load_sts(task, data_dir=args.data_dir)
            pairs = [(e.sentence1, e.sentence2) for e in examples]
            gold = np.array([e.score for e in examples])
            each = [score_pairs(pairs, path, os.path.join(tmp, f"{task}-{i}"))
                    for i, path in enumerate(args.scorer)]
            rows = {os.path.relpath(p, REPO) if os.path.isabs(p) else p: s
                    for p, s in zip(args.scorer, each)}
            if len(each) > 1:
                rows["mix (combine_scores)"] = combine_scores(each)
            results[task] = {name: {"spearman": 100 * spearman(s, gold), "pearson": 100 * pearson(s, gold)}
                             for name, s in rows.items()}
    print("| task | labeller | Spearman | Pearson |\n|---|---|---:|---:|")
    for task, rows in results.items():
        for name, r in rows.items():
            print(f"| {task} | {name} | {r['spearman']:.2f} | {r['pearson']:.2f} |")
    if args.json:
        sys.path.insert(0, REPO)
        from tfkosent.evaluation.sts import write_json  # atomic

        write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
