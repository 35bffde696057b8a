"""Generated Korean data with a known similarity, for tests, notebooks run in CI and smoke runs.

A sentence fills four slots (subject, place, object, verb) with values from the
word lists of `tfkosent.testing`, each written in one of two surface forms
(a synonym: "나는" / "저는", "먹는다" / "먹어요", ...), e.g. "한 남자가 공원에서
축구를 한다." or "어떤 남자가 놀이터에서 풋볼을 해요." (the place may be empty).
The similarity of two sentences is the share of equal slot *values*, whatever
their forms: score = 5 * equal_slots / 4.  A random encoder sees only shared
tokens, so it ranks pairs written in different forms badly; learning the
synonyms from the labels (STS scores, NLI, paraphrase groups, a teacher) is
what raises its Spearman.  Nothing here is real Korean data.

Train the tiny model's vocabulary on `vocabulary_sentences()` so that both
forms tokenize into word pieces.

`write_data_dir(out_dir)` writes these files in the layouts of the registry
datasets, so recipes name them exactly as they name the real data
(`korsts-train`, `korsts-dev`, `klue-nli-train`, `parakqc`, `3i4k`) with
`--data-dir out_dir`.  (The loaders warn that the row counts differ from the
real datasets'.)
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tfkosent.data.datasets import NLIExample, STSExample
from tfkosent.testing import KOREAN_OBJECTS, KOREAN_PLACES, KOREAN_SUBJECTS, KOREAN_VERBS

SLOTS: Tuple[Sequence[str], ...] = (KOREAN_SUBJECTS, [""] + KOREAN_PLACES, KOREAN_OBJECTS, KOREAN_VERBS)
# The second surface form of every slot value, aligned with SLOTS.
SYNONYMS: Tuple[Sequence[str], ...] = (
    ["저는", "그 여자는", "저희는", "학생들이", "야옹이가", "멍멍이가", "어린이들이", "교사가",
     "어떤 남자가", "어떤 여자가", "동무가", "어머니가"],
    ["", "가정에서", "교실에서", "놀이터에서", "커피숍에서", "서재에서", "해변에서"],
    ["식사를", "능금을", "도서를", "곡을", "필름을", "풋볼을", "서신을", "아메리카노를", "회화를", "가요를"],
    ["먹어요", "읽어요", "들어요", "봐요", "해요", "써요", "마셔요", "그려요", "불러요", "좋아해요"],
)
Slots = Tuple[int, int, int, int]


def render(slots: Slots, rng: Optional[np.random.Generator] = None) -> str:
    """The sentence of `slots`, each word in a random surface form (the first form without rng)."""
    words = [(SYNONYMS if rng is not None and rng.random() < 0.5 else SLOTS)[i][v]
             for i, v in enumerate(slots)]
    return " ".join(w for w in words if w) + "."


def random_slots(rng: np.random.Generator) -> Slots:
    return tuple(int(rng.integers(len(words))) for words in SLOTS)


def vocabulary_sentences(n: int = 600, seed: int = 0) -> List[str]:
    """Sentences using every word in both forms: train a tiny vocabulary on them."""
    rng = np.random.default_rng([seed, 5])
    words = [" ".join(w for w in forms if w) for lists in (SLOTS, SYNONYMS) for forms in lists]
    return words + [render(random_slots(rng), rng) for _ in range(n)]


def change(rng: np.random.Generator, slots: Slots, which: Sequence[int]) -> Slots:
    """`slots` with each slot in `which` replaced by a different value."""
    out = list(slots)
    for i in which:
        out[i] = (out[i] + 1 + int(rng.integers(len(SLOTS[i]) - 1))) % len(SLOTS[i])
    return tuple(out)


def similarity(a: Slots, b: Slots) -> float:
    """Gold score on the 0-5 STS scale: 5 * (equal slots) / 4."""
    return 5.0 * sum(x == y for x, y in zip(a, b)) / len(SLOTS)


def sts_examples(n: int, seed: int = 0) -> List[STSExample]:
    """Pairs whose second sentence changes 0-4 random slots of the first."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for _ in range(n):
        a = random_slots(rng)
        b = change(rng, a, rng.permutation(len(SLOTS))[:int(rng.integers(len(SLOTS) + 1))])
        out.append(STSExample(render(a, rng), render(b, rng), similarity(a, b)))
    return out


def nli_examples(n_premises: int, seed: int = 0) -> List[NLIExample]:
    """Per premise: entailment = the same slots in other forms, neutral = one of
    subject / object / verb changed, contradiction = all three changed."""
    rng = np.random.default_rng([seed, 2])
    out = []
    for _ in range(n_premises):
        p = random_slots(rng)
        premise = render(p, rng)
        out += [NLIExample(premise, render(p, rng), "entailment"),
                NLIExample(premise, render(change(rng, p, [int(rng.choice([0, 2, 3]))]), rng), "neutral"),
                NLIExample(premise, render(change(rng, p, [0, 2, 3]), rng), "contradiction")]
    return out


def paraphrase_groups(n_groups: int, size: int = 4, seed: int = 0) -> List[List[str]]:
    """Groups of one slot tuple written in random forms (distinct sentences)."""
    rng = np.random.default_rng([seed, 3])
    groups = []
    for _ in range(n_groups):
        s = random_slots(rng)
        members = list(dict.fromkeys(render(s, rng) for _ in range(4 * size)))[:size]
        if len(members) > 1:
            groups.append(members)
    return groups


def raw_sentences(n: int, seed: int = 0) -> List[str]:
    rng = np.random.default_rng([seed, 4])
    return list(dict.fromkeys(render(random_slots(rng), rng) for _ in range(n)))


def _write(path: str, lines: List[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_korsts(path: str, examples: Sequence[STSExample]) -> str:
    """KorSTS TSV layout (genre, filename, year, id, score, sentence1, sentence2)."""
    _write(path, ["genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2"]
           + [f"synthetic\tsynthetic\t2026\t{i:04d}\t{e.score:.2f}\t{e.sentence1}\t{e.sentence2}"
              for i, e in enumerate(examples)])
    return path


def write_data_dir(out_dir: str, seed: int = 0, sts_train: int = 400, sts_dev: int = 120,
                   nli_premises: int = 200, groups: int = 120, raw: int = 600,
                   datasets: Optional[Sequence[str]] = None) -> str:
    """Writes synthetic stand-ins of korsts-train, korsts-dev, klue-nli-train, parakqc and
    3i4k under `out_dir` (registry paths); `datasets` restricts which."""
    wanted = set(datasets or ("korsts-train", "korsts-dev", "klue-nli-train", "parakqc", "3i4k"))
    if "korsts-train" in wanted:
        write_korsts(os.path.join(out_dir, "korsts", "sts-train.tsv"), sts_examples(sts_train, seed))
    if "korsts-dev" in wanted:
        write_korsts(os.path.join(out_dir, "korsts", "sts-dev.tsv"), sts_examples(sts_dev, seed + 1000))
    if "klue-nli-train" in wanted:
        _write(os.path.join(out_dir, "klue-nli", "klue_nli_train.tsv"),
               ["premise\thypothesis\tlabel"]
               + [f"{e.premise}\t{e.hypothesis}\t{e.label}" for e in nli_examples(nli_premises, seed)])
    if "parakqc" in wanted:
        _write(os.path.join(out_dir, "paraphrase", "parakqc_groups.tsv"),
               ["group\tcol1\tcol2\tsentence"]
               + [f"g{g:04d}\t-\t-\t{s}" for g, members in enumerate(paraphrase_groups(groups, seed=seed))
                  for s in members])
    if "3i4k" in wanted:
        _write(os.path.join(out_dir, "raw", "3i4k_utterances.txt"), raw_sentences(raw, seed))
    return os.path.abspath(out_dir)
