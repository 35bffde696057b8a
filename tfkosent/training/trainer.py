"""`Trainer`: a custom training loop for sentence-embedding recipes under any tf.distribute.Strategy.

    >>> from tfkosent.training import Trainer, load_config
    >>> result = Trainer(load_config("tfkosent/configs/cosent_e5_korsts.yaml"),
    ...                  data_dir="../shared/data").fit()
    >>> result.model_dir, result.best_score

One run, in order:

  1. data: every task's sources are read, converted to the loss's example kind
     and tokenized once with the model's Preprocessor (errors before any
     training); distillation tasks get cached teacher embeddings (distill_mse, distill_cosine)
     or a frozen teacher encoder run inside the step (distill_hidden);
  2. model: the encoder (or a student cut from a teacher) is built in the
     strategy's scope, optionally under a mixed-precision policy;
  3. loop: per step, one batch of one task (multitask schedules in
     `multitask.py`), packed to its longest example (length-bucketed batches,
     `data.py`), encoded with dropout, loss, AdamW update (warmup + linear
     decay, global-norm clipping over the replica-summed gradient); with
     `steps_per_loop` > 1, consecutive steps of one task run in one call (a
     loop in the graph), cut wherever a log line, evaluation or checkpoint is due;
  4. every `eval.every_steps`: STS dev evaluation; a better cosine Spearman
     writes OUTPUT_DIR/best_model (a tfkosent model directory);
  5. every `checkpoint.every_steps`, on SIGTERM / SIGINT, and at the end: a
     checkpoint (`checkpointing.py`) with weights, optimizer, step, data
     position and dropout RNG state; `resume=True` continues from the newest;
  6. a non-finite loss (or weights) stops the run with `NonFiniteLossError`
     and saves nothing, so the last checkpoint stays the last good one;
  7. at the end: OUTPUT_DIR/model (the best model, or the last without
     evaluation), optionally OUTPUT_DIR/export (`tfkosent.export`),
     loss_curve.png, summary.json.

`model_type: cross_encoder` runs the same loop on a `tfkosent.cross_encoder.CrossEncoder`:
each example's (sentence1, sentence2) is packed as one 2-segment sequence, the loss
(cross_bce / cross_mse) takes its logits, the dev metric is the Spearman of the mean
score of both orders, and model/, best_model/ and export/ are cross-encoders.

Output directory:
    recipe.json  checkpoints/  best_model/  model/  export/  logs/ (TensorBoard)
    metrics.jsonl  batches.jsonl (log_batches)  loss_curve.png  summary.json
    student_init/ (student recipes)  teacher_cache/ (distillation)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import json
import logging
import math
import os
import random
import shutil
import time
from typing import Any, Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from tfkosent.config import ModelConfig, inherited_metadata
from tfkosent.data.datasets import atomic_write_bytes
from tfkosent.evaluation.sts import evaluate_sts
from tfkosent.layers.packing import num_special_tokens
from tfkosent.layers.preprocessor import Preprocessor
from tfkosent.layers.transformer import ENCODER_INPUT_KEYS, TransformerEncoder
from tfkosent.model_dir import WEIGHTS_FILE, is_model_dir, load_model_dir, save_model_dir
from tfkosent.training import data as train_data
from tfkosent.training import multitask
from tfkosent.training.checkpointing import CHECKPOINT_DIR, StopSignals, TrainState
from tfkosent.training.config import RecipeError, TrainConfig, resolve_model_path, resolve_path
from tfkosent.training.length_chunks import pooled_in_length_chunks
from tfkosent.training.optimization import create_optimizer, create_schedule
from tfkosent.training.reporting import LOSS_CURVE_FILE, METRICS_FILE, RunLog, plot_loss_curve
from tfkosent.training.strategy import create_strategy, is_tpu
from tfkosent.validation import check_output_path

logger = logging.getLogger("tfkosent.training")

RECIPE_FILE = "recipe.json"
SUMMARY_FILE = "summary.json"
BEST_MODEL_DIR = "best_model"
MODEL_DIR = "model"
EXPORT_DIR = "export"
# Recipe keys that fix the data order and the initial model: a resumed run must keep them.
RESUME_KEYS = ("model", "student", "model_type", "tasks", "schedule", "epochs", "seed",
               "max_seq_length", "pad_to_multiple_of", "bucket_batches", "swap_pairs")
# Keys added after runs were written: a saved recipe without them had the default.
_KEY_DEFAULTS = {"model_type": "bi_encoder", "swap_pairs": False, "steps_per_loop": 1}
_POLICIES = {"none": None, "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def _resume_view(recipe: dict) -> dict:
    """The recipe with file paths cut to their base names: moving the data or the model
    directory does not stop a resume, changing what is trained on does."""
    def strip(value):
        if isinstance(value, dict):
            return {k: (os.path.basename(v.rstrip("/")) if k in ("path", "model", "teacher")
                        and isinstance(v, str) else strip(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(recipe)


class NonFiniteLossError(RuntimeError):
    """The loss (or the weights) became NaN/inf; nothing was saved after the last good checkpoint."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped the run after saving a checkpoint."""

    def __init__(self, message: str, signum: int, step: int, checkpoint: str):
        super().__init__(message)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


@dataclasses.dataclass
class TrainResult:
    output_dir: str
    model_dir: str
    steps: int
    final_loss: Optional[float]
    best_score: Optional[float]       # dev cosine Spearman x100 (cross-encoders: Spearman of scores)
    best_step: Optional[int]
    export_dir: Optional[str] = None
    resumed_from: Optional[int] = None
    best_metric: str = "cosine_spearman"   # what best_score is: "spearman" for cross-encoders


@dataclasses.dataclass
class _Stream:
    """A task's remaining batches (example ids, in order) and the iterator producing them."""

    batches: np.ndarray
    iterator: object
    element_spec: object
    cursor: int = 0

    def next_batch(self):
        examples = self.batches[self.cursor]
        self.cursor += 1
        return examples, next(self.iterator)

    def take(self, n: int) -> np.ndarray:
        """The example ids of the next `n` batches, which a loop in the graph then fetches
        from `iterator` itself (`Trainer._make_loop_fn`)."""
        examples = self.batches[self.cursor:self.cursor + n]
        self.cursor += n
        return examples


# Steps whose loss may wait on the device before the host reads them (and checks them for NaN).
MAX_PENDING_LOSSES = 100


@dataclasses.dataclass
class _PendingLoss:
    """A step taken whose loss is not read yet: a float32 scalar tensor, or (`index` set) item
    `index` of the float32 [n] tensor of the n steps of one loop in the graph (`steps_per_loop`)."""

    step: int
    task: str
    epoch: int
    batch: int
    loss: object
    index: Optional[int] = None


@dataclasses.dataclass
class _Task:
    index: int
    name: str
    batch_size: int
    loss: object
    tokens: train_data.TokenizedTask
    element_fn: object
    step_fn: object = None          # one step a call (steps_per_loop 1) ...
    loop_fn: object = None          # ... or n steps a call (steps_per_loop > 1)
    teacher_files: object = None    # online-teacher losses: the teacher's ModelFiles ...
    teacher: object = None          # ... its frozen TransformerEncoder (built in the strategy scope)
    layer_map: tuple = ()           # ... and the teacher layer of each student layer


def eval_batch_rows(n: int, batch_size: int, replicas: int = 1) -> int:
    """Rows of a padded dev-evaluation batch on TPU: `batch_size`, or a multiple of it for a
    larger call (SentenceEncoder-style callers may pass more than one batch), rounded up to a
    multiple of `replicas` so that every replica gets the same number of rows."""
    rows = max(1, -(-n // batch_size)) * batch_size
    return -(-rows // replicas) * replicas


def replica_rows(inputs: Dict[str, tf.Tensor], replicas: int) -> Dict[str, tf.Tensor]:
    """This replica's share of a batch every replica was given whole: rows
    [id * m, (id + 1) * m) of each [rows, seq] tensor, m = rows / replicas (rows must be a
    multiple of `replicas`; the caller pads). Called inside `strategy.run`."""
    replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
    rows = tf.shape(inputs["input_word_ids"])[0] // replicas
    return {k: v[replica_id * rows:(replica_id + 1) * rows] for k, v in inputs.items()}


@contextlib.contextmanager
def _dtype_policy(name: Optional[str]):
    previous = keras.config.dtype_policy()
    if name:
        keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class Trainer:
    """Runs one recipe (`TrainConfig`); see the module docstring.

    data_dir: where registry datasets live (default: $TFKOSENT_DATA_DIR, else
      the download cache).
    resume: continue from the newest checkpoint in OUTPUT_DIR/checkpoints
      (without one: start fresh).  Without `resume`, an output directory that
      already holds checkpoints is refused, so no run overwrites another.
    overwrite: start again in an output directory that holds a run: the old
      directory is first renamed OUTPUT_DIR.replaced-<UTC time> (nothing is
      deleted).  E.g. after a run that failed early under a recipe since fixed,
      which --resume refuses because the recipe changed.
    strategy: a tf.distribute.Strategy overriding the recipe's `strategy`.
    """

    def __init__(self, config: TrainConfig, data_dir: Optional[str] = None, resume: bool = False,
                 strategy: Optional[tf.distribute.Strategy] = None, overwrite: bool = False):
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other: continue the run, or replace it")
        self.config = config
        self.data_dir = data_dir
        self.resume = resume
        self.overwrite = overwrite
        self._previous_recipe: Optional[dict] = None
        self._last_loss: Optional[float] = None  # of the last step taken; checkpointed with it
        self._pending: List[_PendingLoss] = []   # steps taken whose loss is not read yet
        self._window: Dict[str, List[float]] = {}  # task -> losses since the last log line
        self.output_dir = resolve_path(config.output_dir)
        self.cross = config.model_type == "cross_encoder"
        self.strategy = strategy
        self.resumed_from: Optional[int] = None
        self._made_output_dir = False  # set by _check_output_dir

    # ------------------------------------------------------------------ setup

    def _remove_unused_output_dir(self) -> None:
        """After a failed setup (a recipe or data error): the output_dir that this run created,
        if it is still empty, so that the failure leaves nothing behind. Never a directory
        that existed before, nor one that holds anything."""
        if self._made_output_dir:
            try:
                os.rmdir(self.output_dir)  # refuses a directory that is not empty
            except OSError:
                pass

    def _remove_interrupted_writes(self) -> None:
        """What killed writes of an earlier attempt left in the run directory: temporary copies
        of best_model/, model/, export/, student_init/ and summary.json, and TensorFlow's
        `ckpt-N_temp` checkpoint directories (never rotated away). This process is the run's
        only writer, so none of them is in progress."""
        from tfkosent.model_dir import remove_interrupted_writes
        names = (BEST_MODEL_DIR, MODEL_DIR, EXPORT_DIR, "student_init", SUMMARY_FILE)
        removed = remove_interrupted_writes(self.output_dir, names)
        for path in glob.glob(os.path.join(self.output_dir, CHECKPOINT_DIR, "*_temp")):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        if removed:
            logger.info("removed %d leftover(s) of interrupted writes: %s", len(removed),
                        ", ".join(os.path.relpath(p, self.output_dir) for p in sorted(removed)))

    def _check_output_dir(self) -> None:
        """Refuses to overwrite a run, or to resume one whose data order the recipe changed, and
        an output_dir that cannot be a directory (a file, or under one), before anything loads."""
        check_output_path(self.output_dir, "output_dir", directory=True)
        has_checkpoint = tf.train.latest_checkpoint(os.path.join(self.output_dir, CHECKPOINT_DIR))
        if has_checkpoint and self.overwrite:
            moved = f"{self.output_dir}.replaced-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            os.rename(self.output_dir, moved)
            logger.info("moved the run in %s to %s (--overwrite)", self.output_dir, moved)
            has_checkpoint = None
        self._made_output_dir = not os.path.isdir(self.output_dir)
        os.makedirs(self.output_dir, exist_ok=True)
        if has_checkpoint and not self.resume:
            raise FileExistsError(f"{self.output_dir} already holds checkpoints of a run; pass "
                                  f"--resume to continue it, --overwrite to start again (the old run "
                                  f"is renamed, not deleted), or choose another output_dir")
        recipe_path = os.path.join(self.output_dir, RECIPE_FILE)
        if has_checkpoint and os.path.isfile(recipe_path):
            with open(recipe_path, encoding="utf-8") as f:
                self._previous_recipe = json.load(f)
            saved = _resume_view(self._previous_recipe)
            current = _resume_view(self.config.to_dict())
            changed = [k for k in RESUME_KEYS
                       if saved.get(k, _KEY_DEFAULTS.get(k)) != current.get(k, _KEY_DEFAULTS.get(k))]
            if changed:
                raise RecipeError(f"cannot resume {self.output_dir}: the recipe changed "
                                  f"{', '.join(changed)} since the checkpoint (that would change "
                                  f"the data order or the model); use --overwrite to start again "
                                  f"(the old run is renamed, not deleted) or a new output_dir")

    def _write_recipe(self) -> None:
        current = self.config.to_dict()
        previous = self._previous_recipe
        # A key added since the saved recipe was written had its default there: no change.
        then = None if previous is None else {**{k: v for k, v in _KEY_DEFAULTS.items()
                                                 if k not in previous}, **previous}
        if self.resumed_from is not None and then is not None and then != current:
            # Allowed on resume (e.g. the learning rate), but not silently: the recipe the steps
            # so far ran under is kept beside the new one.
            old, new = _flatten(then), _flatten(current)
            changed = [f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in sorted(set(old) | set(new))
                       if old.get(k) != new.get(k)]
            kept = os.path.join(self.output_dir, f"recipe.until-step-{self.resumed_from}.json")
            atomic_write_bytes(kept, (json.dumps(previous, ensure_ascii=False, indent=2) + "\n")
                               .encode("utf-8"))
            logger.warning("resuming at step %d with a recipe that changed %s; the recipe of the "
                           "steps before is kept in %s", self.resumed_from, ", ".join(changed), kept)
        atomic_write_bytes(os.path.join(self.output_dir, RECIPE_FILE),
                           (json.dumps(self.config.to_dict(), ensure_ascii=False, indent=2)
                            + "\n").encode("utf-8"))

    def _model_files(self):
        c = self.config
        if c.model is not None:
            try:
                return load_model_dir(resolve_model_path(c.model))
            except FileNotFoundError as e:
                raise FileNotFoundError(f"model: {e}") from None
        from tfkosent.training.student import init_student
        path = os.path.join(self.output_dir, "student_init")
        if not (self.resume and is_model_dir(path)):  # a resumed run keeps its student's files
            init_student(resolve_model_path(c.student.teacher), path, c.student.layers, c.student.num_layers,
                         overwrite=True, intermediate_size=c.student.intermediate_size)
        return load_model_dir(path)

    def _load_tasks(self) -> List[_Task]:
        special = self.preprocessor.get_special_tokens_dict()
        replicas = self.strategy.num_replicas_in_sync
        tasks = []
        for i, tc in enumerate(self.config.tasks):
            loss = tc.loss.build()
            where = f"tasks[{i}]"
            if tc.batch_size % replicas:
                raise RecipeError(f"{where}.batch_size: {tc.batch_size} is not divisible by the "
                                  f"{replicas} replicas of the strategy")
            if loss.within_batch and tc.batch_size // replicas < 2:
                raise RecipeError(
                    f"{where}.batch_size: {tc.batch_size} over {replicas} replica(s) gives each "
                    f"replica {tc.batch_size // replicas} example; {tc.loss.type} compares the "
                    f"examples of a replica's batch with each other, so its loss would be 0: use "
                    f"at least {2 * replicas}")
            examples = train_data.load_task_data(loss.input_kind, tc.data, self.data_dir,
                                                 where=f"{where}.data", loss_name=tc.loss.type)
            teacher_files = None
            if loss.online_teacher:
                teacher_files = self._online_teacher_files(tc, where)
            elif loss.requires_teacher:
                examples.labels["teacher"] = self._teacher_embeddings(tc, examples.texts["text"], where)
            if len(examples) < tc.batch_size:
                raise train_data.DataError(f"{where}: {len(examples)} examples are fewer than one "
                                           f"batch of {tc.batch_size}")
            packing = self.files.config.preprocess.packing
            tokens = train_data.TokenizedTask(examples, loss.views, self._tokenize, paired=self.cross)
            if "teacher" in examples.labels:
                self._warn_about_cut_distillation_texts(tokens, tc, where)
            if self.cross:
                element_fn = tokens.pair_element_fn(loss.label_keys, special, packing,
                                                    swap_seed=self.config.seed if self.config.swap_pairs
                                                    else None)
            else:
                element_fn = tokens.element_fn(loss.label_keys, special, packing)
            tasks.append(_Task(i, tc.name, tc.batch_size, loss, tokens, element_fn,
                               teacher_files=teacher_files,
                               layer_map=self._layer_map(loss, teacher_files, where)
                               if teacher_files is not None else ()))
            logger.info("task %s: %s on %d examples (%s), %d batches of %d per epoch", tc.name,
                        tc.loss.type, len(examples), ", ".join(s.label for s in tc.data),
                        tokens.num_batches(tc.batch_size), tc.batch_size)
        return tasks

    def _online_teacher_files(self, tc, where):
        """The teacher model directory of an online-teacher loss, checked against the student:
        the teacher encodes the student's token ids, so both must tokenize the same way."""
        teacher = resolve_model_path(tc.teacher)
        if not is_model_dir(teacher):
            raise train_data.DataError(f"{where}.teacher: {teacher} is not a tfkosent model directory "
                                       f"(config.json + weights.npz)")
        files = load_model_dir(teacher)
        mine, theirs = self.files.config, files.config
        if (files.sentencepiece_proto != self.files.sentencepiece_proto
                or files.wordpiece_vocab != self.files.wordpiece_vocab
                or theirs.preprocess.to_dict() != mine.preprocess.to_dict()):
            raise RecipeError(f"{where}.teacher: {teacher} tokenizes differently from the student "
                              f"{self.files.path} (vocabulary or preprocess config); "
                              f"{tc.loss.type} needs one tokenization for both")
        for field in ("hidden_size", "max_position_embeddings", "position_offset"):
            if getattr(theirs.encoder, field) != getattr(mine.encoder, field):
                raise RecipeError(f"{where}.teacher: encoder.{field} is {getattr(theirs.encoder, field)} "
                                  f"in the teacher, {getattr(mine.encoder, field)} in the student; "
                                  f"{tc.loss.type} needs them equal")
        return files

    def _layer_map(self, loss, teacher_files, where) -> tuple:
        """The teacher layer each student layer reproduces: the loss's `layer_map`, else the
        student's metadata.teacher_layers (init_student), else evenly spaced layers."""
        from tfkosent.training.student import check_layers, default_student_layers
        num_student = self.files.config.encoder.num_layers
        num_teacher = teacher_files.config.encoder.num_layers
        layers = loss.layer_map or self.files.config.metadata.get("teacher_layers")
        if layers is None or len(layers) != num_student:
            if loss.layer_map is not None:
                raise RecipeError(f"{where}.loss.layer_map: {len(layers)} entries for a student of "
                                  f"{num_student} layers")
            layers = default_student_layers(num_teacher, num_student)
        try:
            return tuple(check_layers(layers, num_teacher))
        except ValueError as e:
            raise RecipeError(f"{where}.loss.layer_map: {e}") from None

    def _warn_about_cut_distillation_texts(self, tokens, tc, where) -> None:
        """Warns when the student's `max_seq_length` cuts texts that the teacher embedded whole
        (up to its own limit): their cached targets describe text the student does not see."""
        from tfkosent.model_dir import CONFIG_FILE

        teacher = ModelConfig.load(os.path.join(resolve_model_path(tc.teacher), CONFIG_FILE))  # not its weights
        teacher_cap = min(teacher.preprocess.seq_length, teacher.encoder.max_seq_length)
        specials = num_special_tokens(1, self.files.config.preprocess.packing)
        lengths = tokens.example_lengths + specials
        cut = int(np.sum(lengths > self.seq_cap))
        if cut and self.seq_cap < teacher_cap:
            logger.warning(
                "%s: %d of %d texts are longer than the student's max_seq_length (%d tokens with "
                "the special tokens; the longest has %d) and are cut for it, but the teacher "
                "embedded them up to its own %d: their targets describe text the student does not "
                "see. Raise max_seq_length, or drop or split such texts.", where, cut,
                len(lengths), self.seq_cap, int(lengths.max()), teacher_cap)

    def _teacher_embeddings(self, tc, sentences, where) -> np.ndarray:
        from tfkosent.training.teacher_cache import teacher_embeddings
        teacher = resolve_model_path(tc.teacher)
        if not is_model_dir(teacher):
            raise train_data.DataError(f"{where}.teacher: {teacher} is not a tfkosent model directory "
                                       f"(config.json + weights.npz)")
        cache = resolve_path(tc.teacher_cache) or os.path.join(self.output_dir, "teacher_cache", tc.name)
        embeddings = teacher_embeddings(teacher, sentences, cache, tc.teacher_shard_size,
                                        tc.teacher_batch_size, progress=self.config.progress_bar)
        hidden = self.files.config.encoder.hidden_size
        if embeddings.shape[1] != hidden:
            raise RecipeError(f"{where}.teacher: the teacher's embeddings have {embeddings.shape[1]} "
                              f"dimensions, the student's {hidden}; MSE distillation needs equal sizes")
        return embeddings

    def _build_model(self) -> None:
        c = self.config
        # The dropout RNG states (Keras SeedGenerators) are drawn from Python's `random`;
        # seeded here (and the caller's state put back), they follow the recipe's seed.  Not
        # keras.utils.set_random_seed: its tf.random.set_seed clears TF's kernel cache, which
        # deletes the SentencePiece resource of every tokenizer alive in the process.
        outside = random.getstate()
        random.seed(c.seed)
        encoder_weights, head = self.files.weights, None
        if self.cross:
            from tfkosent.cross_encoder import split_head
            encoder_weights, head = split_head(self.files.weights, source=self.files.path)
        try:
            with self.strategy.scope(), _dtype_policy(_POLICIES[c.mixed_precision]):
                self.encoder = TransformerEncoder(self.files.config.encoder, name="transformer_encoder")
                self.encoder.build()
                if self.cross:  # the score head: the model directory's, or a new (seeded) one
                    from tfkosent.cross_encoder import CrossEncoder
                    self.cross_encoder = CrossEncoder(self.files.config, self.preprocessor,
                                                      self.encoder, head)
        finally:
            random.setstate(outside)
        self.encoder.set_weight_dict(encoder_weights, source=os.path.join(self.files.path, WEIGHTS_FILE))
        for task in self.tasks:  # online teachers: frozen, outside the checkpoint, after the seeded
            if task.teacher_files is not None:  # block so the student's dropout seeds do not move
                with self.strategy.scope():
                    task.teacher = TransformerEncoder.from_weights(
                        task.teacher_files.config.encoder, task.teacher_files.weights,
                        source=os.path.join(task.teacher_files.path, WEIGHTS_FILE),
                        name=f"teacher_encoder_{task.index}")
                task.teacher.trainable = False
        with self.strategy.scope():
            self.schedule = create_schedule(c.optimizer, self.schedule_steps)
            self.optimizer = create_optimizer(c.optimizer, self.schedule,
                                              loss_scaling=c.mixed_precision == "float16")
            self.optimizer.build(self._trainable_variables())

    def _trainable_variables(self) -> list:
        if self.cross:
            return self.cross_encoder.trainable_variables
        return list(self.encoder.trainable_variables)

    def _model_variables(self) -> list:
        """Everything a checkpoint holds of the model (weights and dropout RNG states)."""
        if self.cross:
            return list(self.encoder.variables) + list(self.cross_encoder.head.variables)
        return list(self.encoder.variables)

    def _weight_dict(self) -> Dict[str, np.ndarray]:
        weights = self.encoder.get_weight_dict()
        if self.cross:
            weights.update(self.cross_encoder.head_weights())
        return weights

    def _plan(self) -> None:
        c = self.config
        self.epochs = multitask.plan_epochs(c.schedule, [c.task_epochs(t) for t in c.tasks])
        self.orders = [multitask.interleave({t: self.tasks[t].tokens.num_batches(self.tasks[t].batch_size)
                                             for t in e.task_epochs}) for e in self.epochs]
        total = sum(len(o) for o in self.orders)
        # The learning rate spans `schedule_steps`; the run ends at `total_steps`, earlier when
        # `stop_at_step` asks for a prefix of a longer schedule (the GPU probe's teacher: a 4-epoch
        # schedule kept after epoch 2, while its rate was still at about half its peak).
        self.schedule_steps = min(total, c.max_steps) if c.max_steps else total
        self.total_steps = min(self.schedule_steps, c.stop_at_step or self.schedule_steps)

    def _setup(self) -> None:
        c = self.config
        self._check_output_dir()
        self._remove_interrupted_writes()
        if c.deterministic:
            tf.config.experimental.enable_op_determinism()
        if self.strategy is None:
            self.strategy = create_strategy(c.strategy, c.tpu, c.devices)
        logger.info("strategy %s with %d replica(s)", type(self.strategy).__name__,
                    self.strategy.num_replicas_in_sync)
        if c.length_chunks > 1 and is_tpu(self.strategy):   # `strategy: auto` found a TPU
            raise RecipeError("length_chunks: needs run-time shapes, which TPUs do not compile; use 1")
        self.files = self._model_files()
        enc = self.files.config.encoder
        self.seq_cap = min(c.max_seq_length or self.files.config.preprocess.seq_length, enc.max_seq_length)
        self.preprocessor = Preprocessor.from_config_and_vocab(
            self.files.config.preprocess, self.files.sentencepiece_proto, self.files.wordpiece_vocab,
            seq_length=self.seq_cap)
        self._tokenize = tf.function(self.preprocessor.tokenize,
                                     input_signature=[tf.TensorSpec([None], tf.string)])
        self.tasks = self._load_tasks()
        self.eval_examples = None
        if c.eval is not None:
            self.eval_examples = train_data.load_sts_examples(c.eval.dataset, self.data_dir, c.eval.limit)
        self._plan()
        self._build_model()
        self.state = TrainState(os.path.join(self.output_dir, CHECKPOINT_DIR), self._model_variables(),
                                self.optimizer.variables, keep=c.checkpoint.keep)
        if self.resume:
            path = self.state.restore_latest()
            if path is None:
                logger.info("no checkpoint in %s: starting from scratch", self.output_dir)
            else:
                self.resumed_from = self.state.position[0]
                logger.info("resumed from %s (step %d, epoch %d, batch %d)", path, *self.state.position)
                self._adopt_best_model()
        self._finished = self._finished_result()
        if self._finished is None:  # a finished run keeps the recipe it ran under
            self._write_recipe()  # only once the recipe proved runnable
        self.log = RunLog(self.output_dir, log_batches=c.log_batches)

    def _adopt_best_model(self) -> None:
        """A best model written after the newest checkpoint (killed in between) is kept."""
        path = os.path.join(self.output_dir, BEST_MODEL_DIR)
        if is_model_dir(path):
            info = ModelConfig.load(os.path.join(path, "config.json")).metadata.get("training", {})
            score = (info.get("dev") or {}).get(self._score_key)
            if score is not None and score > float(self.state.best_score.numpy()):
                self.state.best_score.assign(score)
                self.state.best_step.assign(info.get("step", -1))

    # ------------------------------------------------------------------ steps

    def _embed_views(self, inputs: Dict[str, tf.Tensor], training: bool) -> tf.Tensor:
        """int32 [b, views, seq] inputs -> float32 [b, views, hidden] pooled outputs."""
        shape = tf.shape(inputs["input_word_ids"])
        flat = {k: tf.reshape(inputs[k], [-1, shape[2]]) for k in ENCODER_INPUT_KEYS}
        pooled = pooled_in_length_chunks(self.encoder, flat, self.config.length_chunks, training)
        return tf.reshape(tf.cast(pooled, tf.float32),
                          [shape[0], shape[1], self.files.config.encoder.hidden_size])

    @property
    def _score_key(self) -> str:
        """The dev metric that selects the best model (x100)."""
        return "spearman" if self.cross else "cosine_spearman"

    def _forward(self, inputs: Dict[str, tf.Tensor], training: bool) -> tf.Tensor:
        """What the losses take: pair logits float32 [b] (cross-encoder) or pooled views."""
        if self.cross:
            return tf.cast(self.cross_encoder.logits(inputs, training=training), tf.float32)
        return self._embed_views(inputs, training)

    def _online_distill_loss(self, task: _Task, inputs: Dict[str, tf.Tensor]) -> tf.Tensor:
        """An online-teacher loss: the frozen teacher (no dropout, no gradient) and the student
        encode the same int32 [b, 1, seq] inputs; the loss compares their output dicts."""
        flat = {k: inputs[k][:, 0] for k in ENCODER_INPUT_KEYS}
        teacher = tf.nest.map_structure(tf.stop_gradient, task.teacher(flat, training=False))
        student = self.encoder(flat, training=True)
        return task.loss.distill(student, teacher, flat["input_mask"], task.layer_map)

    def _make_replica_step(self, task: _Task):
        """One training step of one replica on its share of a batch; returns its loss. Shared
        by the single step (`_make_step_fn`) and the loop of steps (`_make_loop_fn`)."""
        strategy, optimizer = self.strategy, self.optimizer
        replicas = strategy.num_replicas_in_sync
        variables = self._trainable_variables()
        loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

        def replica_step(batch):
            with tf.GradientTape() as tape:
                loss = (self._online_distill_loss(task, batch["inputs"]) if task.teacher is not None
                        else task.loss(self._forward(batch["inputs"], training=True), batch["labels"]))
                scaled = loss / replicas
                if loss_scaling:
                    scaled = optimizer.scale_loss(scaled)
            grads = tape.gradient(scaled, variables)
            if any(g is None for g in grads):
                unused = [v.path for g, v in zip(grads, variables) if g is None]
                raise ValueError(f"no gradient for {unused[:3]}: the loss does not use them")
            if replicas > 1:
                # Dense before any cross-replica sum: a word-embedding gradient is IndexedSlices
                # with one row per token of this replica's batch, and the collective all-reduce
                # needs equal shapes on every replica (without this, `clip_norm: null` under
                # MirroredStrategy failed with "Shape mismatch in the collective instance").
                grads = [tf.convert_to_tensor(g) for g in grads]
            # The optimizer sums the replicas' gradients once and clips that sum
            # (optimization.SummedGradientClippingAdamW).
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        return replica_step

    def _make_step_fn(self, task: _Task, element_spec):
        """batch -> the step's loss (float32 scalar, the mean over replicas)."""
        strategy, replica_step = self.strategy, self._make_replica_step(task)

        @tf.function(input_signature=[element_spec])
        def step(batch):
            per_replica = strategy.run(replica_step, args=(batch,))
            return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

        return step

    def _make_loop_fn(self, task: _Task):
        """(distributed iterator, n: int32 scalar tensor) -> float32 [n], the n steps' losses:
        n steps in one call, each fetching its batch from the iterator inside the graph, not from Python
        (`steps_per_loop`; Keras' steps_per_execution, Orbit's steps_per_loop). n is a tensor,
        so chunks of any length share one trace; the batch is fetched inside the loop body, not
        carried by it, so the batches of a task may differ in length (bucketing)."""
        strategy, replica_step = self.strategy, self._make_replica_step(task)

        @tf.function
        def loop(iterator, steps):
            losses = tf.TensorArray(tf.float32, size=steps)
            for i in tf.range(steps):
                per_replica = strategy.run(replica_step, args=(next(iterator),))
                losses = losses.write(i, strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica,
                                                         axis=None))
            return losses.stack()

        return loop

    def _chunk_length(self, order, pos: int, step: int) -> int:
        """How many steps, from position `pos` of an epoch's order with `step` steps taken, run
        in one loop: at most `steps_per_loop` consecutive batches of one task, never
        past a log line, an evaluation, a checkpoint, the epoch's end or `total_steps`, so that
        these happen at the same steps as with one step a call."""
        c = self.config
        limit = min(c.steps_per_loop, len(order) - pos, self.total_steps - step)
        every = [c.log_every, c.checkpoint.every_steps]
        if c.eval is not None and c.eval.every_steps:
            every.append(c.eval.every_steps)
        for n in every:
            limit = min(limit, n - step % n)
        task, length = order[pos][0], 1
        while length < limit and order[pos + length][0] == task:
            length += 1
        return length

    def _epoch_plan(self, task: _Task, task_epoch: int):
        """(example ids int64 [batches, batch_size], seq lengths int32 [batches]) of one epoch."""
        c = self.config
        batches = train_data.epoch_batches(task.tokens.num_examples, task.batch_size, c.seed, task_epoch,
                                           stream=task.index, lengths=task.tokens.example_lengths,
                                           bucket_batches=c.bucket_batches)
        seq_lengths = train_data.batch_seq_lengths(
            batches, task.tokens.example_lengths,
            num_special_tokens(2 if self.cross else 1, self.files.config.preprocess.packing),
            c.pad_to_multiple_of,
            self.seq_cap)
        return batches, seq_lengths

    def _open_streams(self, epoch_index: int, position: int) -> Dict[int, _Stream]:
        """Per task, one distributed iterator over all its batches from the data position on
        (its remaining epochs back to back: one input pipeline, traced once, per run)."""
        replicas = self.strategy.num_replicas_in_sync
        streams = {}
        for task in self.tasks:
            plans = []
            for epoch in self.epochs[epoch_index:]:
                if task.index in epoch.task_epochs:
                    skip = (multitask.batches_consumed(self.orders[epoch.index], position).get(task.index, 0)
                            if epoch.index == epoch_index else 0)
                    batches, seq_lengths = self._epoch_plan(task, epoch.task_epochs[task.index])
                    plans.append((batches[skip:], seq_lengths[skip:]))
            batches = np.concatenate([p[0] for p in plans]) if plans else np.zeros((0, 0))
            if not len(batches):
                continue
            seq_lengths = np.concatenate([p[1] for p in plans])
            dataset = self.strategy.distribute_datasets_from_function(
                lambda ctx, b=batches, s=seq_lengths, fn=task.element_fn:
                train_data.make_dataset(fn, b, s, replicas, ctx))
            streams[task.index] = _Stream(batches, iter(dataset), dataset.element_spec)
        return streams

    # ------------------------------------------------------------------ eval / saving

    def _make_encode_fn(self):
        """The dev evaluation's encoder: sentences -> unit vectors float32 [n, hidden].

        With several replicas (GPUs, TPU cores) each encodes its own share of the rows: the
        batch is padded with empty sentences to a multiple of the replica count, every
        replica slices its rows out of it (`replica_rows`), and the local results are
        concatenated in replica order. (Calling the encoder in the cross-replica context
        would run the whole batch on one device, and `strategy.run` on the whole batch would
        run it on every device.) `strategy.gather` is not used: under MirroredStrategy its
        collective instance keys collided with the training step's all-reduce ("Collective
        instance 100 expected type 0 ... but got type 2"). Where this host holds only some
        of the replicas (a multi-host TPU pod) their local results would miss rows, so there
        every replica encodes the whole batch, as before.

        On TPU every batch gets one of few shapes: XLA compiles a program per input shape,
        so rows are padded to `eval.batch_size` and lengths rounded up to
        `pad_to_multiple_of`, as for training batches; an evaluation then compiles a
        handful of programs instead of one per batch."""
        strategy, encoder = self.strategy, self.encoder
        packing = self.files.config.preprocess.packing
        specials = num_special_tokens(1, packing)
        spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ENCODER_INPUT_KEYS}
        tpu = is_tpu(strategy)
        replicas = strategy.num_replicas_in_sync
        split = replicas if replicas > 1 and len(strategy.extended.worker_devices) == replicas else 1

        def replica_pooled(inputs):
            share = replica_rows(inputs, split) if split > 1 else inputs
            return encoder(share, training=False)["pooled_output"]

        @tf.function(input_signature=[spec])
        def pooled(inputs):
            if replicas > 1 or tpu:
                parts = strategy.experimental_local_results(strategy.run(replica_pooled, args=(inputs,)))
                return tf.concat(parts, axis=0) if split > 1 else parts[0]
            return encoder(inputs, training=False)["pooled_output"]

        def encode(sentences: List[str]) -> np.ndarray:
            n = len(sentences)
            rows = (eval_batch_rows(n, self.config.eval.batch_size, split) if tpu
                    else -(-n // split) * split)
            # Padding rows (empty sentences) are dropped again below; they do not change the
            # length, which comes from the longest real sentence.
            tokens = self._tokenize(tf.constant(list(sentences) + [""] * (rows - n), tf.string))
            longest = int(tf.reduce_max(tokens.row_lengths()[:n])) if n else 0
            length = min(longest + specials, self.seq_cap)
            if tpu:  # rounded up like training batches (train_data.batch_seq_lengths)
                multiple = self.config.pad_to_multiple_of
                length = min(-(-(longest + specials) // multiple) * multiple, self.seq_cap)
            inputs = self.preprocessor.bert_pack_inputs([tokens], length)
            out = np.asarray(pooled(inputs), np.float32)[:n]
            # Unit length, like SentenceEncoder.encode and `tfkosent evaluate`, so that the dev
            # log's euclidean / dot metrics (and "avg") are the numbers evaluate prints.
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

        return encode

    def _cross_metrics(self) -> Dict[str, float]:
        """Dev metrics of the cross-encoder's scores: both orders, metrics on their mean."""
        from tfkosent.evaluation.sts import evaluate_scores
        examples, batch_size = self.eval_examples, self.config.eval.batch_size
        first = [e.sentence1 for e in examples]
        second = [e.sentence2 for e in examples]
        ab = self.cross_encoder._score(first, second, batch_size, show_progress_bar=False)
        ba = self.cross_encoder._score(second, first, batch_size, show_progress_bar=False)
        metrics = evaluate_scores(5.0 * (ab + ba) / 2, examples)
        metrics["spearman_ab"] = evaluate_scores(5.0 * ab, examples)["spearman"]
        metrics["spearman_ba"] = evaluate_scores(5.0 * ba, examples)["spearman"]
        return metrics

    def _evaluate(self, step: int) -> Optional[float]:
        self._read_losses()  # a NaN step is reported, never evaluated or saved as the best model
        if self.eval_examples is None:
            return None
        if self.cross:
            metrics = self._cross_metrics()
        else:
            metrics = evaluate_sts(self._encode, self.eval_examples,
                                   batch_size=self.config.eval.batch_size)
        score = metrics[self._score_key]
        self.log.record("eval", step, **{k: float(v) for k, v in metrics.items()})
        self._last_eval = (step, score)
        best = float(self.state.best_score.numpy())
        logger.info("step %d: dev %s %.2f (best %.2f)", step, self._score_key.replace("_", " "), score,
                    max(best, score))
        if score > best:
            self.state.best_score.assign(score)
            self.state.best_step.assign(step)
            if self.config.save_best:
                self._write_model(os.path.join(self.output_dir, BEST_MODEL_DIR),
                                  self._weight_dict(), step, score)
                self._save_checkpoint()  # the best model never runs ahead of the checkpoints
        return score

    def _write_model(self, path: str, weights, step: int, score: Optional[float]) -> str:
        c = self.config
        metadata = inherited_metadata(self.files.config.metadata)
        metadata.update(trained=True, training={
            "base_model": self.files.path, "step": int(step),
            "tasks": [{"name": t.name, "loss": t.loss.type, "data": [s.label for s in t.data]}
                      for t in c.tasks],
            "dev": ({"dataset": c.eval.dataset.label, self._score_key: score}
                    if c.eval is not None and score is not None else None)})
        if self.cross:  # the format of CrossEncoder.save (task "cross-encoder", head weights)
            from tfkosent.cross_encoder import save_cross_encoder
            # The whole metadata goes in the config: save_cross_encoder *adds* its `metadata`
            # argument to config.metadata, which would bring the parent's dropped keys back.
            config = dataclasses.replace(self.files.config, metadata=metadata)
            return save_cross_encoder(path, config, weights, sentencepiece_proto=self.files.sentencepiece_proto,
                                      wordpiece_vocab=self.files.wordpiece_vocab)
        config = ModelConfig(self.files.config.encoder, self.files.config.preprocess, metadata)
        return save_model_dir(path, config, weights, sentencepiece_proto=self.files.sentencepiece_proto,
                              wordpiece_vocab=self.files.wordpiece_vocab)

    def _weights_finite(self) -> bool:
        return all(bool(np.isfinite(keras.ops.convert_to_numpy(v)).all())
                   for v in self._trainable_variables())

    def _save_checkpoint(self) -> str:
        self._read_losses()  # a NaN step stops the run here: nothing is saved past it
        step = self.state.position[0]
        if not self._weights_finite():
            raise NonFiniteLossError(
                f"the weights became non-finite by step {step}; stopped without saving. "
                f"{self._last_good()} Lower optimizer.learning_rate (or keep optimizer.clip_norm).")
        if self._last_loss is not None:  # so that a run resumed after its last step reports it
            self.state.last_loss.assign(self._last_loss)
        return self.state.save()

    def _last_good(self) -> str:
        latest = self.state.latest
        if latest is None:
            return "No checkpoint was saved before."
        return f"The last good checkpoint is {latest}; `--resume` continues from it."

    # ------------------------------------------------------------------ loop

    def fit(self) -> TrainResult:
        """Runs (or resumes) the recipe; returns where the model went and its dev score."""
        try:
            self._setup()
        except BaseException:
            self._remove_unused_output_dir()
            raise
        try:
            return self._finished if self._finished is not None else self._fit()
        finally:
            self.log.close()

    def _finished_result(self) -> Optional[TrainResult]:
        """The summary of a run resumed after it had finished (nothing left to do), else None.
        A run killed while it finished (no summary, or no model yet) finishes again."""
        summary = os.path.join(self.output_dir, SUMMARY_FILE)
        if (self.resumed_from is None or self.resumed_from < self.total_steps
                or not os.path.isfile(summary) or not is_model_dir(os.path.join(self.output_dir, MODEL_DIR))):
            return None
        with open(summary, encoding="utf-8") as f:
            result = dataclasses.replace(TrainResult(**json.load(f)), resumed_from=self.resumed_from)
        logger.info("%s finished at step %d already: nothing to do (model %s)", self.output_dir,
                    result.steps, result.model_dir)
        return result

    def _fit(self) -> TrainResult:
        c = self.config
        self._encode = None if self.cross else self._make_encode_fn()
        self._last_eval = (-1, None)
        step, epoch_index, position = self.state.position
        self.log.note(step, f"resume from step {step}" if self.resumed_from is not None else "start")
        self._window, self._pending = {}, []   # a run (or a resumed one) starts with none
        last_loss = float(self.state.last_loss.numpy())  # NaN: no step taken (or an old checkpoint)
        self._last_loss = last_loss if math.isfinite(last_loss) else None
        from tqdm.auto import tqdm
        bar = tqdm(total=self.total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not c.progress_bar, mininterval=0.5)
        if c.eval is not None and c.eval.at_start and step == 0:
            self._evaluate(0)
        streams = self._open_streams(epoch_index, position)
        from tqdm.contrib.logging import logging_redirect_tqdm
        # Log lines go through the bar (tqdm.write) instead of being printed into its line.
        quiet_bar = logging_redirect_tqdm(loggers=[logging.getLogger("tfkosent.training")]) \
            if c.progress_bar else contextlib.nullcontext()
        with StopSignals() as stop, bar, quiet_bar:
            for epoch in self.epochs[epoch_index:]:
                order = self.orders[epoch.index]
                pos = position if epoch.index == epoch_index else 0
                while pos < len(order):
                    if step >= self.total_steps:
                        break
                    t = order[pos][0]
                    task = self.tasks[t]
                    # `steps_per_loop` > 1: up to that many consecutive steps of one task in one
                    # call; a chunk ends where a log line, an evaluation or a checkpoint is due,
                    # so these come at the same steps as with one step a call.
                    if c.steps_per_loop > 1:
                        n = self._chunk_length(order, pos, step)
                        if task.loop_fn is None:  # traced on first use, once per task and run
                            task.loop_fn = self._make_loop_fn(task)
                        examples = streams[t].take(n)
                        run = functools.partial(task.loop_fn, streams[t].iterator,
                                                tf.constant(n, tf.int32))
                    else:
                        n = 1
                        if task.step_fn is None:  # traced on first use, once per task and run
                            task.step_fn = self._make_step_fn(task, streams[t].element_spec)
                        one, batch = streams[t].next_batch()
                        examples = one[None]
                        run = functools.partial(task.step_fn, batch)
                    for i in range(n):
                        self.log.batch(step=step + 1 + i, epoch=epoch.index, position=pos + i,
                                       task=task.name, batch=order[pos + i][1],
                                       examples=examples[i].tolist())
                    # The loss stays on the device until the next log line, evaluation or
                    # checkpoint: reading it every step (float()) made the host wait for each
                    # step on a GPU/TPU before it could dispatch the next one.
                    loss = run()   # a scalar, or a loop's [n]: item i is step i's
                    self._pending += [_PendingLoss(step + 1 + i, task.name, epoch.index,
                                                   order[pos + i][1], loss,
                                                   i if c.steps_per_loop > 1 else None)
                                      for i in range(n)]
                    step += n
                    pos += n
                    self.state.set_position(step, epoch.index, pos)
                    bar.update(n)
                    # Evaluations and saves read the pending losses themselves (_evaluate,
                    # _save_checkpoint), so that no NaN step is ever saved past.
                    if step % c.log_every == 0 or step == self.total_steps:
                        self._read_losses()
                        lr = float(self.schedule(step - 1))  # the rate this step used
                        for name, losses in self._window.items():
                            self.log.record("train", step, task=name, loss=float(np.mean(losses)),
                                            learning_rate=lr, epoch=epoch.index)
                        bar.set_postfix(loss=f"{np.mean(sum(self._window.values(), [])):.4f}",
                                        lr=f"{lr:.2e}")
                        self._window = {}
                    elif len(self._pending) >= MAX_PENDING_LOSSES:
                        self._read_losses()
                    if c.eval is not None and c.eval.every_steps and step % c.eval.every_steps == 0:
                        self._evaluate(step)
                    if step % c.checkpoint.every_steps == 0:
                        self._save_checkpoint()
                    # With steps_per_loop > 1, stop signals are seen at the end of a chunk.
                    if stop.received:
                        path = self._save_checkpoint()
                        self.log.note(step, f"stopped by {stop.name}")
                        raise TrainingInterrupted(
                            f"stopped by {stop.name} at step {step}/{self.total_steps}; checkpoint "
                            f"{path} saved; continue with --resume", stop.received, step, path)
                else:
                    self.state.set_position(step, epoch.index + 1, 0)
                    if c.eval is not None and not c.eval.every_steps and self._last_eval[0] != step:
                        self._evaluate(step)
                    continue
                break
            if c.eval is not None and self._last_eval[0] != step:
                self._evaluate(step)
            self._save_checkpoint()
        return self._finish(step)

    def _read_losses(self) -> None:
        """Reads the pending steps' losses from the device (one transfer), oldest first, into
        the log window (task -> losses since the last log line). NonFiniteLossError names the
        first step whose loss is NaN/inf; nothing is saved after it: `_evaluate` and
        `_save_checkpoint` call this first."""
        pending, window = self._pending, self._window
        if not pending:
            return
        # One transfer of each distinct loss tensor, in one op: steps' scalars (steps_per_loop
        # 1) are stacked, loops' [n] vectors (steps_per_loop > 1: every call is a loop) joined.
        tensors, offsets, size = [], {}, 0
        for p in pending:
            if id(p.loss) not in offsets:
                offsets[id(p.loss)] = size
                tensors.append(p.loss)
                size += 1 if p.index is None else int(p.loss.shape[0])
        values = (tf.stack(tensors) if all(p.index is None for p in pending)
                  else tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)).numpy()
        for p in pending:
            loss = float(values[offsets[id(p.loss)] + (p.index or 0)])
            if not math.isfinite(loss):
                pending.clear()
                raise NonFiniteLossError(
                    f"loss is {loss} at step {p.step} (task {p.task}, epoch {p.epoch}, batch {p.batch}); "
                    f"stopped without saving. {self._last_good()} Lower optimizer.learning_rate "
                    f"(now {self.config.optimizer.learning_rate:g}) or check the data.")
            self._last_loss = loss
            window.setdefault(p.task, []).append(loss)
        pending.clear()

    def _finish(self, step: int) -> TrainResult:
        c = self.config
        best_step = int(self.state.best_step.numpy())
        best_score = float(self.state.best_score.numpy()) if best_step >= 0 else None
        best_dir = os.path.join(self.output_dir, BEST_MODEL_DIR)
        if c.save_best and best_step >= 0 and is_model_dir(best_dir):
            weights, at, score = load_model_dir(best_dir).weights, best_step, best_score
        else:
            weights, at = self._weight_dict(), step
            score = self._last_eval[1] if self._last_eval[0] == step else None
        model_dir = self._write_model(os.path.join(self.output_dir, MODEL_DIR), weights, at, score)
        export_dir = None
        if c.export and self.cross:
            from tfkosent.cross_encoder import CrossEncoder
            export_dir = CrossEncoder.from_model_dir(model_dir).export(
                os.path.join(self.output_dir, EXPORT_DIR), overwrite=True)
        elif c.export:
            from tfkosent.export import export_model
            export_dir = export_model(model_dir, os.path.join(self.output_dir, EXPORT_DIR), overwrite=True)
        try:
            plot_loss_curve(os.path.join(self.output_dir, METRICS_FILE),
                            os.path.join(self.output_dir, LOSS_CURVE_FILE),
                            title=", ".join(f"{t.name}" for t in self.tasks))
        except Exception as e:  # a picture never fails a finished run (its model is written)
            logger.warning("%s: not written (%s: %s)", LOSS_CURVE_FILE, type(e).__name__, e)
        result = TrainResult(self.output_dir, model_dir, step, self._last_loss, best_score,
                             best_step if best_step >= 0 else None, export_dir, self.resumed_from,
                             self._score_key)
        atomic_write_bytes(os.path.join(self.output_dir, SUMMARY_FILE),
                           (json.dumps(dataclasses.asdict(result), indent=2) + "\n").encode("utf-8"))
        logger.info("done: %d steps; model %s%s", step, model_dir,
                    f" (dev {self._score_key.replace('_', ' ')} {best_score:.2f} at step {best_step})"
                    if best_score is not None
                    else "")
        return result


def _flatten(value, prefix: str = "") -> Dict[str, Any]:
    """{"optimizer.learning_rate": 2e-05, "tasks.0.loss.type": "cosent", ...} of a recipe dict."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value}
    out: Dict[str, Any] = {}
    for key, item in items:
        out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def train(config: TrainConfig, data_dir: Optional[str] = None, resume: bool = False,
          strategy: Optional[tf.distribute.Strategy] = None, overwrite: bool = False) -> TrainResult:
    """`Trainer(config, data_dir, resume, strategy, overwrite).fit()`."""
    return Trainer(config, data_dir=data_dir, resume=resume, strategy=strategy, overwrite=overwrite).fit()
