"""encode() with the packing's core-op truncation (`packing.round_robin_trim`) vs TF-Text's
RoundRobinTrimmer, side by side in one process: two SentenceEncoder instances of the default
model, each traced with one trim, then three alternating timed rounds over the 3,000 KorSTS dev
sentences (batch 64). Prints the largest embedding difference and the ratio of the medians.

    python benchmarks/packing_trim.py [--data-dir ../shared/data]
"""
import argparse
import time

import numpy as np
import tensorflow_text as tf_text
from tfkosent import SentenceEncoder
from tfkosent.data import load_sts
from tfkosent.layers import packing

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", default="../shared/data")
ex = load_sts("korsts-dev", data_dir=parser.parse_args().data_dir)
sentences = [e.sentence1 for e in ex] + [e.sentence2 for e in ex]
core = packing.round_robin_trim
def tftext(segments, budget):
    return tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
impls = {"core_ops": core, "tf_text": tftext}
ref, models = {}, {}
for name, fn in impls.items():
    packing.round_robin_trim = fn
    models[name] = SentenceEncoder.load()          # its own traced functions, with this trim
    ref[name] = models[name].encode(sentences[:256], batch_size=64)   # warm-up: traces now
    ref[name] = models[name].encode(sentences[:256], batch_size=64)
packing.round_robin_trim = core
print("max diff", float(np.abs(ref["core_ops"] - ref["tf_text"]).max()))
times = {k: [] for k in impls}
for r in range(3):
    for name in impls:
        t = time.perf_counter(); models[name].encode(sentences, batch_size=64); times[name].append(time.perf_counter() - t)
for k, v in times.items():
    print(k, "s per 3000 sentences:", [round(x, 2) for x in v], "median", round(sorted(v)[1], 2))
print("ratio tf_text/core_ops (median)", round(sorted(times["tf_text"])[1] / sorted(times["core_ops"])[1], 3))
