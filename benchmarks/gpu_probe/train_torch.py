"""The default model's recipe in PyTorch, for a lent GPU machine that has no TensorFlow.

Since session 15 the shipped model starts here: its teacher, distillation and first CoSENT
epoch came from this script on a lent H200, its cross-encoder silver step from the TensorFlow
pipeline (MODEL_CARD.md, "Reproduce"); `tfkosent pipeline default-model` alone (TensorFlow,
resumable, on a CPU) makes the all-TensorFlow model.  This script re-implements the same encoder (tfkosent's
post-LN BERT with mean pooling, `tfkosent/layers/transformer.py`, the same canonical weight names
and Keras [in, out] kernels, so nothing is converted on the way back), the same losses (CoSENT
scale 20, `distill_cosine`, supervised SimCSE at temperature 0.05) and the same optimizer
(AdamW, weight decay 0.01 except biases and LayerNorms, clip norm 1.0, linear warmup then
linear decay), to measure on a GPU in minutes what the CPU needs sessions for:

  1. the teacher (12 layers) under several recipes: the pipeline's two CoSENT epochs (the
     replication check against TensorFlow's 83.78 -> 84.32 KorSTS dev), longer CoSENT
     schedules, and supervised SimCSE on KLUE-NLI first; the best on KorSTS dev teaches;
  2. distillation of the 3-layer student (teacher layers 3, 7, 11) for many epochs in one
     schedule, the student's KorSTS dev after each epoch;
  3. the student's CoSENT on the gold pairs (student_gold, then student_gold2) from snapshots of
     that run, scored on KorSTS dev/test and KLUE-STS dev.

Inputs are made by `prepare.py` (token ids and the 4-bit weights).  Everything it writes to
--out as it goes: results.jsonl (one line per measurement), the longest distillation's student
before any CoSENT (student_d<N>), after each CoSENT stage (student_d<N>_gold1, _gold2) and the
best student if it is another (float16, tfkosent canonical names; `import_model.py` turns each
into a model directory), and the best teacher (int8 with a float32 scale per output unit, to fit the transfer limit).

  python train_torch.py --inputs .gpu_probe --out $OUT --budget-s 450
  python train_torch.py --inputs .gpu_probe --out /tmp/smoke --smoke      # CPU check, tiny
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

SCALE = 20.0   # CoSENT's scale and 1 / SimCSE's temperature 0.05
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


# --------------------------------------------------------------------------- data


class Ragged:
    """Token id lists (content tokens, `query: ` included) from prepare.py's values + splits."""

    def __init__(self, values, splits):
        self.values = values.astype(np.int64)
        self.splits = splits
        self.lengths = np.diff(splits)

    def __len__(self):
        return len(self.lengths)

    def row(self, i):
        return self.values[self.splits[i]:self.splits[i + 1]]

    def batch(self, rows, special, device):
        """[n, L] ids with <s> .. </s> and padding, bool mask [n, L]."""
        return pad([self.row(r) for r in rows], special, device)


def pad(seqs, special, device):
    """Content-token arrays -> int64 ids [n, L] (<s> t </s> <pad>..), bool mask [n, L] on device."""
    n, L = len(seqs), max(len(t) for t in seqs) + 2
    ids = np.full((n, L), special["padding_id"], np.int64)
    mask = np.zeros((n, L), bool)
    for i, t in enumerate(seqs):
        ids[i, 0] = special["start_of_sequence_id"]
        ids[i, 1:1 + len(t)] = t
        ids[i, 1 + len(t)] = special["end_of_segment_id"]
        mask[i, :len(t) + 2] = True
    return (torch.from_numpy(ids).to(device, non_blocking=True),
            torch.from_numpy(mask).to(device, non_blocking=True))


def load_inputs(path):
    tokens = np.load(os.path.join(path, "tokens.npz"))
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    sts = {}
    for name in ("korsts-train", "klue-sts-train", "korsts-dev", "korsts-test", "klue-sts-dev"):
        sts[name] = (Ragged(tokens[f"{name}/a"], tokens[f"{name}/a_splits"]),
                     Ragged(tokens[f"{name}/b"], tokens[f"{name}/b_splits"]),
                     tokens[f"{name}/score"])
    nli = [Ragged(tokens[f"nli/{c}"], tokens[f"nli/{c}_splits"]) for c in meta["nli_columns"]]
    pool = Ragged(tokens["pool/ids"], tokens["pool/splits"])
    return meta, sts, nli, pool


def load_weights(path):
    """{canonical name: float32 array} from weights_q4.npz (exact dequantization)."""
    z = np.load(os.path.join(path, "weights_q4.npz"))
    out = {}
    for key in z.files:
        kind, _, name = key.partition(":")
        if kind == "f32":
            out[name] = z[key]
        elif kind == "q4":
            nib = z[key]
            levels = np.concatenate([nib & 0x0F, nib >> 4], axis=1).astype(np.float32) - 8
            value = (levels * z["d:" + name].astype(np.float32)[:, None]).reshape(z["shape:" + name])
            out[name] = value.T.copy() if bool(z["transposed:" + name]) else value
    return out


# --------------------------------------------------------------------------- model


class Encoder(torch.nn.Module):
    """tfkosent's encoder (post-LN BERT, GELU (erf), mean pooling over <s> .. </s>).

    Parameters are kept under tfkosent's canonical names ('/' -> '__'), kernels in Keras'
    [in, out] layout, so `state()` is a weights.npz without conversion.
    """

    def __init__(self, weights, num_layers, num_heads, eps, position_offset, dropout=0.1):
        super().__init__()
        self.params = torch.nn.ParameterDict(
            {k.replace("/", "__"): torch.nn.Parameter(torch.tensor(v, dtype=torch.float32))
             for k, v in weights.items()})
        self.num_layers, self.num_heads = num_layers, num_heads
        self.eps, self.offset, self.dropout = eps, position_offset, dropout

    def p(self, name):
        return self.params[name.replace("/", "__")]

    def ln(self, x, name):
        return F.layer_norm(x, x.shape[-1:], self.p(name + "/gamma"), self.p(name + "/beta"), self.eps)

    def dense(self, x, name):
        return x @ self.p(name + "/kernel") + self.p(name + "/bias")

    def forward(self, ids, mask):
        drop = self.dropout if self.training else 0.0
        B, L = ids.shape
        x = self.p("embeddings/word_embeddings")[ids]
        x = x + self.p("embeddings/position_embeddings")[self.offset:self.offset + L][None]
        if "embeddings__token_type_embeddings" in self.params:
            x = x + self.p("embeddings/token_type_embeddings")[0]
        x = F.dropout(self.ln(x, "embeddings/layer_norm"), drop, self.training)
        H = x.shape[-1]
        hd = H // self.num_heads
        attn_mask = mask[:, None, None, :]
        for i in range(self.num_layers):
            p = f"layer_{i}/attention/"
            q, k, v = (self.dense(x, p + n).view(B, L, self.num_heads, hd).transpose(1, 2)
                       for n in ("query", "key", "value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
            a = self.dense(ctx.transpose(1, 2).reshape(B, L, H), p + "output")
            x = self.ln(x + F.dropout(a, drop, self.training), f"layer_{i}/attention_layer_norm")
            h = F.gelu(self.dense(x, f"layer_{i}/intermediate"))
            o = self.dense(h, f"layer_{i}/output")
            x = self.ln(x + F.dropout(o, drop, self.training), f"layer_{i}/output_layer_norm")
        m = mask[..., None].to(x.dtype)
        return ((x * m).sum(1) / m.sum(1).clamp(min=1.0)).float()

    def state(self):
        return {k.replace("__", "/"): v.detach().float().cpu().numpy().copy()  # a copy, never a view
                for k, v in self.params.items()}


def make_student(teacher_state, layers, cfg):
    w = {k: v for k, v in teacher_state.items() if k.startswith("embeddings/")}
    for j, i in enumerate(layers):
        for k, v in teacher_state.items():
            if k.startswith(f"layer_{i}/"):
                w[f"layer_{j}/" + k.split("/", 1)[1]] = v
    return Encoder(w, len(layers), cfg["num_heads"], cfg["layer_norm_epsilon"], cfg["position_offset"])


# --------------------------------------------------------------------------- losses


def cosent(a, b, score):
    cos = F.cosine_similarity(a, b, dim=-1) * SCALE
    diff = cos[None, :] - cos[:, None]
    diff = torch.where(score[:, None] > score[None, :], diff, torch.full_like(diff, -1e12))
    return torch.logsumexp(torch.cat([torch.zeros(1, device=a.device), diff.flatten()]), 0)


def distill_cosine(s, t):
    s, t = F.normalize(s, dim=-1), F.normalize(t, dim=-1)
    loss = (1.0 - (s * t).sum(-1)).mean()
    n = s.shape[0]
    off = 1.0 - torch.eye(n, device=s.device)
    diff = s @ s.T - t @ t.T
    return loss + (diff.square() * off).sum() / off.sum().clamp(min=1.0)


def simcse_supervised(anchor, positive, negative):
    a = F.normalize(anchor, dim=-1)
    c = F.normalize(torch.cat([positive, negative]), dim=-1)
    logits = a @ c.T * SCALE
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


# --------------------------------------------------------------------------- training


def optimizer_for(model, lr, total, warmup_ratio, weight_decay=0.01):
    decay, no_decay = [], []
    for name, p in model.params.items():
        (no_decay if name.endswith(("bias", "gamma", "beta")) else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, eps=1e-7,
                            fused=torch.cuda.is_available())
    warm = int(round(warmup_ratio * total))

    def factor(step):
        if step < warm:
            return step / max(warm, 1)
        return max(0.0, (total - step) / max(total - warm, 1))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def step(model, opt, sched, loss):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()


def autocast(device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def gold_batches(sts, names, batch_size, rng):
    """(set name, rows) batches over the concatenated training pairs, shuffled."""
    items = [(n, i) for n in names for i in range(len(sts[n][2]))]
    order = rng.permutation(len(items))
    for s in range(0, len(order) - batch_size + 1, batch_size):
        yield [items[j] for j in order[s:s + batch_size]]


def encode_pairs(model, sts, batch, special, device):
    """Both sides of a batch of (set name, row) pairs in one forward pass: a [n], b [n], score [n]."""
    seqs = [sts[n][0].row(i) for n, i in batch] + [sts[n][1].row(i) for n, i in batch]
    ids, mask = pad(seqs, special, device)
    emb = model(ids, mask)
    score = torch.tensor(np.asarray([sts[n][2][i] for n, i in batch]), device=device)
    return emb[:len(batch)], emb[len(batch):], score


def train_cosent(model, sts, special, device, epochs, lr, seed, batch_size=32, warmup=0.1,
                 on_epoch=None, max_steps=None, stop_after=None):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    per_epoch = (len(sts["korsts-train"][2]) + len(sts["klue-sts-train"][2])) // batch_size
    if max_steps:
        per_epoch = min(per_epoch, max_steps)
    opt, sched = optimizer_for(model, lr, per_epoch * epochs, warmup)
    for epoch in range(epochs):
        model.train()
        for k, batch in enumerate(gold_batches(sts, ("korsts-train", "klue-sts-train"), batch_size, rng)):
            if k >= per_epoch:
                break
            with autocast(device):
                a, b, score = encode_pairs(model, sts, batch, special, device)
            step(model, opt, sched, cosent(a.float(), b.float(), score))
        if on_epoch:
            on_epoch(epoch + 1)
        if stop_after and epoch + 1 >= stop_after:
            return


def train_simcse(model, nli, special, device, lr, seed, batch_size=64, max_steps=None):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(nli[0]))
    steps = len(order) // batch_size
    if max_steps:
        steps = min(steps, max_steps)
    opt, sched = optimizer_for(model, lr, steps, 0.1)
    model.train()
    for s in range(steps):
        rows = order[s * batch_size:(s + 1) * batch_size]
        with autocast(device):
            embs = [model(*col.batch(rows, special, device)) for col in nli]
        step(model, opt, sched, simcse_supervised(*(e.float() for e in embs)))


@torch.no_grad()
def embed(model, ragged, special, device, batch_size=512, rows=None):
    model.eval()
    rows = np.arange(len(ragged)) if rows is None else np.asarray(rows)
    order = rows[np.argsort(-ragged.lengths[rows], kind="stable")]
    out = torch.empty(len(rows), model.p("embeddings/layer_norm/gamma").shape[0], device=device)
    pos = {r: i for i, r in enumerate(rows)} if len(rows) < len(ragged) else None
    for s in range(0, len(order), batch_size):
        chunk = order[s:s + batch_size]
        with autocast(device) if device.type == "cuda" and batch_size > 512 else _null():
            e = model(*ragged.batch(chunk, special, device)).float()
        idx = torch.as_tensor([pos[r] for r in chunk] if pos else chunk, device=device)
        out[idx] = e
    return out


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def spearman(x, y):
    def rank(v):
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        # average ties
        vs = v[order]
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and vs[j + 1] == vs[i]:
                j += 1
            if j > i:
                r[order[i:j + 1]] = (i + j) / 2
            i = j + 1
        return r
    return float(np.corrcoef(rank(x), rank(y))[0, 1])


def evaluate(model, sts, special, device, names=("korsts-dev", "korsts-test", "klue-sts-dev")):
    out = {}
    for name in names:
        a, b, score = sts[name]
        cos = F.cosine_similarity(embed(model, a, special, device), embed(model, b, special, device)).cpu().numpy()
        out[name] = round(100 * spearman(cos, score), 2)
        if name == "klue-sts-dev":
            out["klue-sts-dev-pearson"] = round(100 * float(np.corrcoef(cos, score)[0, 1]), 2)
    return out


# --------------------------------------------------------------------------- outputs


class Results:
    def __init__(self, out_dir):
        self.path = os.path.join(out_dir, "results.jsonl")
        self.rows = []

    def add(self, **row):
        row["t_s"] = round(time.time() - T0, 1)
        self.rows.append(row)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        log(json.dumps(row))


def save_student(state, out_dir, tag):
    """float16 npz in two files (each under the 16 MB transfer cap)."""
    emb = {k: v.astype(np.float16) for k, v in state.items() if k.startswith("embeddings/")}
    rest = {k: v.astype(np.float16) for k, v in state.items() if not k.startswith("embeddings/")}
    np.savez(os.path.join(out_dir, f"{tag}_embeddings.npz"), **emb)
    np.savez(os.path.join(out_dir, f"{tag}_layers.npz"), **rest)


def save_int8(state, out_dir, tag, parts=3):
    """int8 with a float32 scale per output unit (last axis of [in, out] kernels, rows of
    embedding tables); vectors float32.  Split into `parts` files by layer."""
    groups = [[] for _ in range(parts)]
    for k in sorted(state):
        layer = int(k.split("/")[0].split("_")[1]) if k.startswith("layer_") else -1
        groups[0 if layer < 0 else 1 + layer * (parts - 1) // 12].append(k)
    for g, keys in enumerate(groups):
        arrays = {}
        for k in keys:
            v = state[k]
            if v.ndim == 2:
                axis = 0 if k.endswith("/kernel") else 1
                scale = np.abs(v).max(axis=axis, keepdims=True) / 127.0
                scale[scale == 0] = 1.0
                arrays["i8:" + k] = np.round(v / scale).astype(np.int8)
                arrays["s:" + k] = scale.astype(np.float32)
            else:
                arrays["f32:" + k] = v.astype(np.float32)
        np.savez(os.path.join(out_dir, f"{tag}_int8_{g}.npz"), **arrays)


# --------------------------------------------------------------------------- plan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=450.0, help="stop starting new work after this")
    ap.add_argument("--smoke", action="store_true", help="a few steps of each phase (CPU check)")
    ap.add_argument("--distill-epochs", type=int, default=10)
    ap.add_argument("--snapshots", default="1,3,6,10", help="distillation epochs to fine-tune from")
    ap.add_argument("--teachers", default="pipeline,cosent4,nli_cosent4")
    ap.add_argument("--reserve-s", type=float, default=90.0,
                    help="start a distillation epoch only if this much is left after it")
    ap.add_argument("--save-teacher", type=int, default=1)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    log(f"device {device} {torch.cuda.get_device_name() if device.type == 'cuda' else ''} torch {torch.__version__}")

    meta, sts, nli, pool = load_inputs(args.inputs)
    special, cfg = meta["special"], meta["encoder"]
    base = load_weights(args.inputs)
    results = Results(args.out)
    smoke = args.smoke
    cap = 3 if smoke else None
    left = lambda: args.budget_s - (time.time() - T0)  # noqa: E731

    if smoke:  # tiny eval sets and pool
        for name in ("korsts-dev", "korsts-test", "klue-sts-dev"):
            a, b, s = sts[name]
            keep = np.arange(40)
            sts[name] = (_subset(a, keep), _subset(b, keep), s[keep])
        pool = _subset(pool, np.arange(600))

    def teacher():
        return Encoder(base, cfg["num_layers"], cfg["num_heads"], cfg["layer_norm_epsilon"],
                       cfg["position_offset"]).to(device)

    # 0. zero-shot parity with TensorFlow (the convert step scores 80.71 / 76.84 / 77.62 Pearson)
    t = teacher()
    results.add(phase="convert", model="e5-ko zero-shot", **evaluate(t, sts, special, device))

    # 1. teachers
    best = {"dev": -1.0}

    def consider(name, model, epoch):
        scores = evaluate(model, sts, special, device)
        results.add(phase="teacher", model=name, epoch=epoch, **scores)
        if scores["korsts-dev"] > best["dev"]:
            best.update(dev=scores["korsts-dev"], name=f"{name}@{epoch}", state=model.state())

    for recipe in args.teachers.split(","):
        if left() < 300 and best["dev"] > 0:
            results.add(phase="skip", model=recipe, reason=f"{left():.0f} s left")
            continue
        t = teacher()
        t0 = time.time()
        if recipe == "pipeline":   # teacher_sts (2e-5, seed 42) then teacher_sts2 (1e-5, seed 43)
            train_cosent(t, sts, special, device, 1, 2e-5, 42, max_steps=cap,
                         on_epoch=lambda e: consider("pipeline", t, 1))
            train_cosent(t, sts, special, device, 1, 1e-5, 43, max_steps=cap,
                         on_epoch=lambda e: consider("pipeline", t, 2))
        elif recipe.startswith("cosent"):   # cosentN: N epochs in one schedule; cosentN@K: stop after K
            n, _, stop = recipe[len("cosent"):].partition("@")
            train_cosent(t, sts, special, device, int(n), 3e-5, 42, max_steps=cap,
                         on_epoch=lambda e: consider(recipe, t, e), stop_after=int(stop) if stop else None)
        elif recipe.startswith("nli_cosent"):
            n = int(recipe[len("nli_cosent"):])
            train_simcse(t, nli, special, device, 3e-5, 42, max_steps=cap)
            consider(recipe + "(nli only)", t, 0)
            train_cosent(t, sts, special, device, n, 3e-5, 42, max_steps=cap,
                         on_epoch=lambda e: consider(recipe, t, e))
        results.add(phase="teacher_time", model=recipe, seconds=round(time.time() - t0, 1))
        del t
    results.add(phase="teacher_best", model=best["name"], korsts_dev=best["dev"])
    teacher_state = best.pop("state")
    if args.save_teacher:
        save_int8(teacher_state, args.out, "teacher")

    # 2. teacher cache over the distillation pool
    t = Encoder(teacher_state, cfg["num_layers"], cfg["num_heads"], cfg["layer_norm_epsilon"],
                cfg["position_offset"]).to(device)
    t0 = time.time()
    cache = F.normalize(embed(t, pool, special, device, batch_size=1024), dim=-1)
    results.add(phase="teacher_cache", sentences=len(pool), seconds=round(time.time() - t0, 1))
    del t

    # 3. distillation, one schedule over N epochs (lr 2e-4, warmup 5%, batch 128)
    student = make_student(teacher_state, [3, 7, 11], cfg).to(device)
    results.add(phase="student_init", **evaluate(student, sts, special, device, ("korsts-dev",)))
    epochs, bs = args.distill_epochs, 128
    per_epoch = len(pool) // bs if not smoke else 3
    snapshots = {int(x) for x in args.snapshots.split(",")}
    opt, sched = optimizer_for(student, 2e-4, per_epoch * epochs, 0.05)
    rng = np.random.default_rng(42)
    torch.manual_seed(42)
    snaps = {}
    epoch_s = None
    for epoch in range(1, epochs + 1):
        if epoch_s and left() < epoch_s + args.reserve_s:
            results.add(phase="skip", model=f"distill epoch {epoch}", reason=f"{left():.0f} s left")
            snaps.setdefault(epoch - 1, student.state())
            break
        t0 = time.time()
        student.train()
        order = rng.permutation(len(pool))
        for s in range(per_epoch):
            rows = order[s * bs:(s + 1) * bs]
            with autocast(device):
                e = student(*pool.batch(rows, special, device))
            step(student, opt, sched, distill_cosine(e.float(), cache[torch.as_tensor(rows, device=device)]))
        epoch_s = time.time() - t0
        results.add(phase="distill", epoch=epoch, seconds=round(epoch_s, 1),
                    **evaluate(student, sts, special, device))
        if epoch in snapshots or epoch == epochs:
            snaps[epoch] = student.state()
    del cache
    # The longest distillation also comes back before any CoSENT: the silver step (cross-encoder
    # labels, `student_sts`) runs in the TensorFlow pipeline, and on the CPU chain it gained most
    # from a distilled student (+0.78 KorSTS dev over gold only) against +0.27/+0.31 from the
    # probe's students that had already had their gold epoch (TRAINING.md, session 15).
    save_student(snaps[max(snaps)], args.out, f"student_d{max(snaps)}")

    # 4. student_gold (5e-5, seed 42) then student_gold2 (2e-5, seed 43) from each snapshot
    best_student = {"dev": -1.0}
    for epoch in sorted(snaps, reverse=True):
        if left() < 20 and best_student["dev"] > 0:
            results.add(phase="skip", model=f"student from distill epoch {epoch}", reason=f"{left():.0f} s left")
            continue
        s = make_student_from_state(snaps[epoch], cfg).to(device)
        for stage, (lr, seed) in enumerate(((5e-5, 42), (2e-5, 43)), start=1):
            train_cosent(s, sts, special, device, 1, lr, seed, max_steps=cap)
            scores = evaluate(s, sts, special, device)
            results.add(phase="student_gold" if stage == 1 else "student_gold2", distill_epochs=epoch, **scores)
            if epoch == max(snaps):   # each stage of the longest distillation comes back
                save_student(s.state(), args.out, f"student_d{epoch}_gold{stage}")
            if scores["korsts-dev"] > best_student["dev"]:
                best_student.update(dev=scores["korsts-dev"], name=f"distill{epoch}+gold{stage}", epoch=epoch,
                                    state=s.state())
    results.add(phase="student_best", model=best_student["name"], korsts_dev=best_student["dev"])
    if best_student["epoch"] != max(snaps):   # else it came back already as student_d{epoch}_gold*
        save_student(best_student["state"], args.out, "student")
    log("done")
    return 0


def make_student_from_state(state, cfg):
    return Encoder(state, 3, cfg["num_heads"], cfg["layer_norm_epsilon"], cfg["position_offset"])


def _subset(r, rows):
    ids = [r.values[r.splits[i]:r.splits[i + 1]] for i in rows]
    lengths = np.asarray([len(x) for x in ids])
    return Ragged(np.concatenate(ids), np.concatenate([[0], np.cumsum(lengths)]))


if __name__ == "__main__":
    sys.exit(main())
