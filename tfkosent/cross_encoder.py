"""`CrossEncoder`: a tfkosent encoder reading both sentences at once, with a score head.

A cross-encoder packs a pair as one sequence (`bert_pack_inputs` with two
segments: `[CLS] a [SEP] b [SEP]` or `<s> a </s></s> b </s>`), so attention
sees both sentences together; it is several points stronger on STS than a
bi-encoder but needs one forward pass per pair, which is why it is used to
label pairs (Augmented SBERT, Thakur et al. 2021) and to rerank, not to embed.

Score: `sigmoid(w . pooled + b)` in [0, 1]; gold STS scores (0-5) are divided
by 5 for training. `predict` returns [0, 1] scores; multiply by 5 for the STS
scale.

Pair order: the model is not symmetric by construction. `predict(pairs,
symmetric=True)` (the default) scores (a, b) and (b, a) and returns their
mean; `symmetric=False` scores the given order only. `tfkosent evaluate
--cross-encoder` reports both orders and the mean.

Model directory: the usual config.json / tokenizer / weights.npz, with
`metadata["task"] == "cross-encoder"` and two extra weights in weights.npz:
`head/kernel` [hidden, 1] and `head/bias` [1].
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfkosent.validation import positive_int
from tfkosent.sentence_encoder import validate_sentence, validate_sentences, warn_about_truncation

HEAD_WEIGHTS = ("head/kernel", "head/bias")
TASK = "cross-encoder"


def is_cross_encoder_dir(model_dir: str) -> bool:
    """Whether a model directory holds a cross-encoder (config.json metadata task "cross-encoder")."""
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        return json.load(f).get("metadata", {}).get("task") == TASK


def _split_head(weights: Dict[str, np.ndarray]):
    encoder = {k: v for k, v in weights.items() if k not in HEAD_WEIGHTS}
    head = {k: weights[k] for k in HEAD_WEIGHTS if k in weights}
    return encoder, head


def split_head(weights: Dict[str, np.ndarray], source: str = "weights.npz"):
    """(encoder weights, head weights or None) of a model directory's weights.

    A bi-encoder has no head (None: a cross-encoder started from it gets a new one);
    a partial head is an error."""
    encoder, head = _split_head(weights)
    if head and len(head) != len(HEAD_WEIGHTS):
        raise ValueError(f"{source}: incomplete cross-encoder head, has {sorted(head)} of {HEAD_WEIGHTS}")
    return encoder, head or None


def save_cross_encoder(out_dir: str, config, weights: Dict[str, np.ndarray],
                       metadata: Optional[dict] = None, sentencepiece_proto: Optional[bytes] = None,
                       wordpiece_vocab=None, dtype: str = "float32") -> str:
    """Writes a cross-encoder model directory: encoder + `head/kernel`, `head/bias` weights,
    `metadata["task"] = "cross-encoder"` (used by `CrossEncoder.save` and the trainer)."""
    import dataclasses
    from tfkosent.model_dir import save_model_dir

    missing = [k for k in HEAD_WEIGHTS if k not in weights]
    if missing:
        raise ValueError(f"cross-encoder weights lack {missing}")
    meta = dict(config.metadata)
    meta.update(metadata or {})
    meta["task"] = TASK
    config = dataclasses.replace(config, metadata=meta)
    return save_model_dir(out_dir, config, weights, sentencepiece_proto=sentencepiece_proto,
                          wordpiece_vocab=wordpiece_vocab, dtype=dtype)


class CrossEncoder:
    """Pair scorer: (sentence1, sentence2) -> similarity in [0, 1]."""

    def __init__(self, config, preprocessor=None, encoder=None, head_weights=None):
        """From built parts (a ModelConfig, its Preprocessor and TransformerEncoder); to load a
        directory, use `CrossEncoder.load(path)` (`CrossEncoder(path)` says so)."""
        import keras
        import tensorflow as tf

        if isinstance(config, (str, os.PathLike)) or preprocessor is None or encoder is None:
            what = repr(os.fspath(config)) if isinstance(config, (str, os.PathLike)) else "PATH"
            raise TypeError(f"load a cross-encoder with CrossEncoder.load({what}) (a model directory "
                            f"written by `tfkosent train` or CrossEncoder.save)")

        self.config = config
        self.preprocessor = preprocessor
        self.encoder = encoder
        self.head = keras.layers.Dense(1, name="head")
        self.head.build((None, config.encoder.hidden_size))
        if head_weights:
            self.head.kernel.assign(np.asarray(head_weights["head/kernel"], np.float32))
            self.head.bias.assign(np.asarray(head_weights["head/bias"], np.float32))
        spec = {k: tf.TensorSpec([None, None], tf.int32) for k in
                ("input_word_ids", "input_mask", "input_type_ids")}
        self._logits = tf.function(lambda x: self.logits(x, training=False), input_signature=[spec])

    # --- construction -------------------------------------------------------------

    @classmethod
    def from_model_dir(cls, path: str, seq_length: Optional[int] = None,
                       allow_new_head: bool = False) -> "CrossEncoder":
        """Loads a cross-encoder directory, or starts one from any tfkosent model (new head).

        seq_length: the longest packed pair (default: the config's), capped at the encoder's
        position table. ValueError for a cross-encoder directory without both head weights.
        A new head is random: its scores mean nothing until it is fine-tuned (`tfkosent train`
        with `model_type: cross_encoder`), so starting one warns unless `allow_new_head`
        says that is the intent (code about to train it).
        """
        from tfkosent.model_dir import load_model_dir

        files = load_model_dir(path)
        config = files.config
        encoder_weights, head = _split_head(files.weights)
        if config.metadata.get("task") == TASK and len(head) != 2:
            raise ValueError(f"{path}/weights.npz: cross-encoder without {HEAD_WEIGHTS}")
        if not head and not allow_new_head:
            warnings.warn(f"{path} is not a cross-encoder (no {HEAD_WEIGHTS[0]}, {HEAD_WEIGHTS[1]} in "
                          f"weights.npz): its score head is new and untrained, so its scores are "
                          f"meaningless until it is fine-tuned (`tfkosent train` with model_type: "
                          f"cross_encoder); pass allow_new_head=True to start one on purpose",
                          stacklevel=2)
        return cls(config, files.build_preprocessor(seq_length), files.build_encoder(encoder_weights),
                   head or None)

    @classmethod
    def load(cls, path: str, seq_length: Optional[int] = None) -> "CrossEncoder":
        """A trained cross-encoder directory (`SentenceEncoder.load`'s counterpart); a model
        without a score head is refused with ValueError (start one with `from_model_dir(path,
        allow_new_head=True)`). seq_length: as in `from_model_dir`."""
        from tfkosent.model_dir import load_model_dir

        if load_model_dir(path).config.metadata.get("task") != TASK:
            raise ValueError(f"{path} is not a trained cross-encoder (its config.json metadata has no "
                             f"task: {TASK!r}); to start one from it, use "
                             f"CrossEncoder.from_model_dir({path!r}, allow_new_head=True)")
        return cls.from_model_dir(path, seq_length)

    def head_weights(self) -> Dict[str, np.ndarray]:
        """{"head/kernel": [hidden, 1], "head/bias": [1]} as numpy float32."""
        import keras
        return {"head/kernel": np.asarray(keras.ops.convert_to_numpy(self.head.kernel), np.float32),
                "head/bias": np.asarray(keras.ops.convert_to_numpy(self.head.bias), np.float32)}

    def save(self, out_dir: str, dtype: str = "float32", metadata: Optional[dict] = None) -> str:
        """Writes this cross-encoder as a model directory (`save_cross_encoder`): the encoder's
        and the head's weights in `dtype`, `metadata` merged into the config's. Returns the
        absolute path of `out_dir`."""
        weights = self.encoder.get_weight_dict()
        weights.update(self.head_weights())
        tok = self.preprocessor.tokenizer
        return save_cross_encoder(out_dir, self.config, weights, metadata=metadata,
                                  sentencepiece_proto=getattr(tok, "model_serialized_proto", None),
                                  wordpiece_vocab=getattr(tok, "vocab", None), dtype=dtype)

    # --- forward ------------------------------------------------------------------

    @property
    def trainable_variables(self):
        """The encoder's trainable variables, then the head's kernel and bias."""
        return list(self.encoder.trainable_variables) + list(self.head.trainable_variables)

    def pack(self, sentences1, sentences2, seq_length=None):
        """Two string batches -> the encoder's inputs, one sequence per pair.

        sentences1, sentences2: str sequences (or tf.string [batch]) of the same length.
        seq_length: None (the longest packed pair of the batch, capped at the preprocessor's
        `seq_length`) or an int. Returns {"input_word_ids", "input_mask", "input_type_ids"}, each
        int32 [batch, seq_length]; longer pairs are truncated round robin (no warning here).
        """
        import tensorflow as tf
        from tfkosent.layers.packing import longest_packed_length

        a = self.preprocessor.tokenize(tf.constant(sentences1, tf.string))
        b = self.preprocessor.tokenize(tf.constant(sentences2, tf.string))
        if seq_length is None:
            seq_length = longest_packed_length([a, b], self.preprocessor.packing,
                                               self.preprocessor.seq_length)
        return self.preprocessor.bert_pack_inputs([a, b], seq_length=seq_length)

    def logits(self, inputs, training=False):
        """Logits [batch] of packed pairs (`inputs`: the dict `pack` returns, int32 [batch,
        seq_length] each); `sigmoid` of them is the [0, 1] score. float32, or the head's
        compute dtype when it was built under a mixed-precision policy (the trainer's, which
        casts them to float32)."""
        import tensorflow as tf
        pooled = self.encoder(inputs, training=training)["pooled_output"]
        return tf.squeeze(self.head(pooled), -1)

    def predict(self, pairs: Sequence[Tuple[str, str]], batch_size: int = 32,
                symmetric: bool = True, show_progress_bar: bool = False):
        """Scores in [0, 1], float32 [len(pairs)]; see the module docstring for `symmetric`.

        pairs: (sentence1, sentence2) tuples or lists of str (or UTF-8 bytes), or a NumPy
        string array [n, 2]; one pair alone (a tuple or list of two str) gives one np.float32
        score, as in sentence-transformers; no pairs give float32 [0].
        batch_size: pairs per encoder call, a positive int (numpy integers too, not bool).
        Returns a NumPy float32 array [len(pairs)].
        Raises TypeError for an item that is not a pair of text, or an array not [n, 2];
        ValueError for text that is not valid UTF-8 or a bad `batch_size`. Warns (UserWarning)
        when pairs longer, both sides and the special tokens together, than the
        preprocessor's `seq_length` are truncated.
        """
        return self._predict(pairs, batch_size, symmetric, show_progress_bar, stacklevel=3)

    def _predict(self, pairs, batch_size: int, symmetric: bool, show_progress_bar: bool,
                 stacklevel: int):
        """`predict`; `stacklevel`: as this method would pass it to `warnings.warn` for the
        truncation warning to point at the user's line (3 when a public method calls it)."""
        batch_size = positive_int(batch_size, "batch_size")
        single = isinstance(pairs, (tuple, list)) and len(pairs) == 2 and \
            all(isinstance(s, (str, bytes)) for s in pairs)
        if single:
            pairs = [tuple(pairs)]
        if isinstance(pairs, np.ndarray):  # [n, 2] strings (bytes arrays too)
            if pairs.ndim != 2 or pairs.shape[1] != 2:
                raise TypeError(f"pairs must be [n, 2] (sentence1, sentence2), got an array of shape "
                                f"{pairs.shape}")
            pairs = [tuple(row) for row in pairs.tolist()]
        pairs = list(pairs)
        first, second = [], []
        for i, p in enumerate(pairs):
            if not isinstance(p, (tuple, list)) or len(p) != 2:
                raise TypeError(f"pairs[{i}] must be a (sentence1, sentence2) pair, got {p!r}")
            first.append(validate_sentence(p[0], f"pairs[{i}][0]"))
            second.append(validate_sentence(p[1], f"pairs[{i}][1]"))
        self._warn_about_truncation(first, second, stacklevel + 1)
        scores = self._score(first, second, batch_size, show_progress_bar)
        if symmetric:
            scores = (scores + self._score(second, first, batch_size, show_progress_bar)) / 2
        return scores[0] if single else scores

    def _warn_about_truncation(self, first: List[str], second: List[str], stacklevel: int) -> None:
        """As `SentenceEncoder.encode` does: pairs longer, both sides together, than the
        model's maximum length less the special tokens are truncated (round robin).
        `stacklevel`: as this method would pass it to `warnings.warn`."""
        import tensorflow as tf
        from tfkosent.layers.packing import num_special_tokens

        if not first:
            return
        pre = self.preprocessor
        lengths = sum(pre.tokenize(tf.constant(side, tf.string)).row_lengths().numpy()
                      for side in (first, second))
        warn_about_truncation(lengths, pre.seq_length - num_special_tokens(2, pre.packing),
                              pre.seq_length, "pairs", lambda i: f"pairs[{i}]", stacklevel)

    def _score(self, first: List[str], second: List[str], batch_size: int, show_progress_bar: bool):
        import tensorflow as tf

        n = len(first)
        out = np.zeros(n, np.float32)
        if n == 0:
            return out
        # Sort by combined length so each batch pads little.
        lengths = np.array([len(a) + len(b) for a, b in zip(first, second)])
        order = np.argsort(-lengths, kind="stable")
        starts = range(0, n, batch_size)
        if show_progress_bar:
            from tqdm.auto import tqdm
            starts = tqdm(starts, desc="Scoring pairs", unit="batch")
        for start in starts:
            idx = order[start:start + batch_size]
            inputs = self.pack([first[i] for i in idx], [second[i] for i in idx])
            out[idx] = tf.sigmoid(self._logits(inputs)).numpy()
        return out

    def rerank(self, query: str, candidates: Sequence[str], top_k: Optional[int] = None,
               batch_size: int = 32, symmetric: bool = True) -> List[Tuple[int, str, float]]:
        """Candidates sorted by score: [(index int, candidate str, score float in [0, 1])],
        best first (equal scores in candidate order); `top_k`: None (all) or a positive int,
        the best that many (ValueError otherwise).
        `symmetric` as in `predict`: True scores both orders (twice the work, the scores the
        model was selected with); False scores (query, candidate) once, as sentence-transformers
        does."""
        return self._rerank(query, candidates, top_k, batch_size, symmetric, stacklevel=3)

    def _rerank(self, query, candidates, top_k, batch_size, symmetric, stacklevel: int):
        """`rerank`; `stacklevel` as in `_predict`."""
        query = validate_sentence(query, "query")
        candidates = validate_sentences(candidates, "candidates")
        if top_k is not None:
            top_k = positive_int(top_k, "top_k")
        batch_size = positive_int(batch_size, "batch_size")
        scores = self._predict([(query, c) for c in candidates], batch_size, symmetric, False,
                               stacklevel + 1)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [(int(i), candidates[i], float(scores[i])) for i in order]

    def rank(self, query: str, documents: Sequence[str], top_k: Optional[int] = None,
             return_documents: bool = False, batch_size: int = 32,
             symmetric: bool = True) -> List[Dict[str, object]]:
        """sentence-transformers' `CrossEncoder.rank`: [{"corpus_id": int, "score": float
        (in [0, 1])[, "text": str]}], best first (equal scores in document order); `top_k`:
        None (all) or a positive int; `symmetric` as in `rerank`."""
        return [dict(corpus_id=i, score=score, **({"text": text} if return_documents else {}))
                for i, text, score in self._rerank(query, documents, top_k, batch_size, symmetric,
                                                   stacklevel=3)]

    # --- export -------------------------------------------------------------------

    def export(self, out_dir: str, overwrite: bool = False) -> str:
        """Writes a SavedModel whose `serving_default` takes `sentences1`, `sentences2`
        (tf.string [batch]) and returns `scores` float32 [batch] in [0, 1] (given order).
        Written atomically and checked against `predict` before the rename."""
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        from tfkosent.export import trackable_object, tf_variables
        from tfkosent.layers.packing import longest_packed_length
        from tfkosent.model_dir import atomic_directory

        module = trackable_object()
        module.preprocessor = self.preprocessor
        # Not `module.encoder` / `module.head`: their Keras 3 variables would be saved a
        # second time beside the tf.Variables below (see tfkosent.export.build_encoder_module).
        module.variables = tf_variables(self.encoder) + [self.head.kernel.value, self.head.bias.value]
        pre = self.preprocessor

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences1"),
                                      tf.TensorSpec([None], tf.string, name="sentences2")])
        def serve(sentences1, sentences2):
            a, b = pre.tokenize(sentences1), pre.tokenize(sentences2)
            seq_length = longest_packed_length([a, b], pre.packing, pre.seq_length)
            inputs = pre.bert_pack_inputs([a, b], seq_length=seq_length)
            return {"scores": tf.sigmoid(self.logits(inputs, training=False))}

        module.serve = serve
        probe1 = ["오늘 날씨가 좋다.", "", "한 남자가 음식을 먹는다."]
        probe2 = ["날씨가 맑다.", "빈 문장", "가" * 2000]
        expected = self.predict(list(zip(probe1, probe2)), symmetric=False)
        with atomic_directory(out_dir, overwrite=overwrite) as tmp:
            tf.saved_model.save(module, tmp, signatures={"serving_default": serve})
            got = tf.saved_model.load(tmp).signatures["serving_default"](
                sentences1=tf.constant(probe1), sentences2=tf.constant(probe2))["scores"].numpy()
            diff = float(np.max(np.abs(got - expected)))
            if diff > 1e-5:
                raise RuntimeError(f"cross-encoder export check failed: scores differ by {diff:.2e}")
        return os.path.abspath(out_dir)


def evaluate_cross_encoder_cli(model_path: str, tasks: Sequence[str], data_dir, batch_size: int,
                               limit: Optional[int], pairs_files: Sequence[str] = (),
                               plot_dir: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Scores each task's (and pairs file's) pairs in both orders; metrics on the mean (plus
    per-order Spearman). With `plot_dir`, one PNG per task: gold vs the mean predicted score."""
    from tfkosent.evaluation.sts import evaluate_scores, plot_path, plot_scatter, task_examples

    model = CrossEncoder.from_model_dir(model_path)
    results = {}
    for task, examples in task_examples(tasks, data_dir, limit, pairs_files):
        first = [e.sentence1 for e in examples]
        second = [e.sentence2 for e in examples]
        ab = model._score(first, second, batch_size, show_progress_bar=False)
        ba = model._score(second, first, batch_size, show_progress_bar=False)
        metrics = evaluate_scores(5.0 * (ab + ba) / 2, examples)
        metrics["spearman_ab"] = evaluate_scores(5.0 * ab, examples)["spearman"]
        metrics["spearman_ba"] = evaluate_scores(5.0 * ba, examples)["spearman"]
        results[task] = metrics
        if plot_dir is not None:
            plot_scatter([e.score for e in examples], 5.0 * (ab + ba) / 2, plot_path(plot_dir, task),
                         f"{task}: Spearman {metrics['spearman']:.2f}",
                         ylabel="predicted score (0-5, mean of both orders)")
    return results
