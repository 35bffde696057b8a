"""Training recipes: a small dataclass schema read from YAML or JSON.

A recipe (every key but `model`/`student`, `output_dir` and `tasks` has a default):

    model: models/e5-small-ko/model     # a tfkosent model directory to fine-tune ...
    # student: {teacher: DIR, layers: [3, 7, 11]}   # ... or a student cut from a teacher
    model_type: bi_encoder              # bi_encoder | cross_encoder (losses cross_bce, cross_mse)
    swap_pairs: false                   # cross_encoder: randomly swap (a, b) per example
    output_dir: runs/cosent_e5_korsts
    seed: 42
    strategy: auto                      # auto | mirrored | tpu | default
    mixed_precision: none               # none | float16 | bfloat16
    schedule: sequential                # sequential | round_robin   (multitask)
    epochs: 1
    tasks:
      - loss: cosent                    # or {type: cosent, scale: 20.0}
        data: [korsts-train, klue-sts-train]   # registry names or {path: FILE, format: sts}
        batch_size: 32
    optimizer: {learning_rate: 2.0e-5, weight_decay: 0.01, warmup_ratio: 0.1}
    eval: {dataset: korsts-dev, every_steps: 200}
    checkpoint: {every_steps: 200, keep: 3}

Validation happens before anything heavy runs, and every error names the file,
the line (YAML and JSON) and the key path, e.g.

    recipe.yaml:12: tasks[0].optimizer.lerning_rate: unknown key; known keys: [...]
    recipe.yaml:9: tasks[0].batch_size: expected int, got str ('32')

Relative paths (model, output_dir, data files, teacher) are relative to the
working directory; `~` and `$VARS` are expanded.  Data files are checked when
the run starts (`tfkosent.training.data`), not here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
import typing
from typing import Any, Dict, List, Literal, Mapping, Optional, Tuple

from tfkosent.config import ConfigError, FieldError

KeyPath = Tuple[Any, ...]  # e.g. ("tasks", 0, "loss", "scale")

STRATEGIES = ("auto", "mirrored", "tpu", "default")
MIXED_PRECISION = ("none", "float16", "bfloat16")
SCHEDULES = ("sequential", "round_robin")
MODEL_TYPES = ("bi_encoder", "cross_encoder")
SOURCE_FORMATS = ("sts", "nli", "triplets", "pairs", "groups", "sentences")
# Registry datasets kept out of every training mix, and those no model may be selected on:
# KorSTS test and KLUE-STS dev are the reported numbers (KLUE-STS has no public test split).
EVALUATION_ONLY = ("korsts-dev", "korsts-test", "klue-sts-dev")
REPORT_ONLY = ("korsts-test", "klue-sts-dev")


class RecipeError(ConfigError):
    """A recipe is malformed; the message names file, line and key path."""


def format_key_path(path: KeyPath) -> str:
    """("tasks", 0, "loss") -> "tasks[0].loss" ("<top>" for the root)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top>"


# --------------------------------------------------------------------------- schema


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One data source of a task: a registry dataset (`name`) or a file (`path`).

    A plain string in the recipe is a registry name when `tfkosent.data`
    knows it, else a file path.  `format` says how to read a file (default:
    guessed from its header / extension, see `tfkosent.training.data`);
    `limit` keeps the first N examples.
    """

    name: Optional[str] = None
    path: Optional[str] = None
    format: Optional[Literal[SOURCE_FORMATS]] = None
    limit: Optional[int] = None

    @classmethod
    def _from_scalar(cls, value):
        if isinstance(value, str):
            from tfkosent.data.datasets import DATASETS
            return {"name": value} if value in DATASETS else {"path": value}
        return value

    def _problems(self):
        from tfkosent.data.datasets import DATASETS
        if (self.name is None) == (self.path is None):
            yield None, "give exactly one of 'name' (a registry dataset) or 'path' (a file)"
        if self.name is not None and self.name not in DATASETS:
            yield "name", f"unknown dataset {self.name!r}; known: {', '.join(DATASETS)}"
        if self.name is not None and self.format is not None:
            yield "format", "only applies to 'path' sources"
        if self.limit is not None and self.limit <= 0:
            yield "limit", f"must be positive, got {self.limit}"

    @property
    def label(self) -> str:
        return self.name or self.path


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """`loss: NAME` or `loss: {type: NAME, PARAM: VALUE...}`; params are the loss's fields."""

    type: str
    params: Dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def _parse(cls, value, path: KeyPath, ctx: "_Context") -> "LossSpec":
        from tfkosent.training.losses import LOSSES, get_loss_class
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, Mapping):
            ctx.fail(path, f"expected a loss name or a mapping with 'type', got "
                           f"{type(value).__name__} ({value!r})")
        if "type" not in value:
            ctx.fail(path, "missing required key 'type'")
        name = value["type"]
        if name not in LOSSES:
            ctx.fail(path + ("type",), f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
        params = {k: v for k, v in value.items() if k != "type"}
        loss_cls = get_loss_class(name)
        parsed = _parse_dataclass(loss_cls, params, path, ctx, extra_known=("type",))
        return cls(name, {f.name: getattr(parsed, f.name) for f in dataclasses.fields(loss_cls)
                          if f.name in params})

    def build(self):
        """The loss object (a `tfkosent.training.losses.Loss`)."""
        from tfkosent.training.losses import get_loss_class
        return get_loss_class(self.type)(**self.params)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """One objective: a loss trained on the concatenation of its data sources.

    epochs: passes over this task's data (schedule: sequential only; default
      the recipe's `epochs`).
    teacher: model directory whose embeddings a distillation loss regresses to
      (default: the recipe's `student.teacher`); for `distill_mse` and `distill_cosine` they are
      computed once into `teacher_cache` (default OUTPUT_DIR/teacher_cache/TASK_NAME)
      in shards of `teacher_shard_size`; `distill_hidden` runs the teacher in
      the training step and caches nothing.
    """

    loss: LossSpec
    data: List[DataSource]
    name: Optional[str] = None
    batch_size: int = 32
    epochs: Optional[int] = None
    teacher: Optional[str] = None
    teacher_cache: Optional[str] = None
    teacher_batch_size: int = 64
    teacher_shard_size: int = 4096

    def _problems(self):
        if not self.data:
            yield "data", "needs at least one data source"
        for name in ("batch_size", "teacher_batch_size", "teacher_shard_size"):
            if getattr(self, name) <= 0:
                yield name, f"must be positive, got {getattr(self, name)}"
        if self.epochs is not None and self.epochs <= 0:
            yield "epochs", f"must be positive, got {self.epochs}"
        loss = self.loss.build()
        if not loss.requires_teacher and (self.teacher or self.teacher_cache):
            yield "teacher", f"only distillation losses use a teacher, not {self.loss.type!r}"
        if loss.online_teacher and self.teacher_cache:
            yield "teacher_cache", (f"{self.loss.type!r} runs its teacher in the training step "
                                    f"and caches nothing")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with linear warmup then linear decay to 0 (BERT / sentence-transformers).

    Warmup lasts `warmup_steps` if given, else `warmup_ratio` of the run.
    Weight decay skips biases and LayerNorm parameters.  `clip_norm` clips the
    global gradient norm (summed over replicas); null disables clipping.
    """

    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    warmup_steps: Optional[int] = None
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clip_norm: Optional[float] = 1.0

    def _problems(self):
        if not self.learning_rate > 0:
            yield "learning_rate", f"must be positive, got {self.learning_rate}"
        if self.weight_decay < 0:
            yield "weight_decay", f"must be >= 0, got {self.weight_decay}"
        if not 0.0 <= self.warmup_ratio < 1.0:
            yield "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}"
        if self.warmup_steps is not None and self.warmup_steps < 0:
            yield "warmup_steps", f"must be >= 0, got {self.warmup_steps}"
        if self.clip_norm is not None and not self.clip_norm > 0:
            yield "clip_norm", f"must be positive or null, got {self.clip_norm}"


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """STS dev evaluation; the best cosine Spearman selects the saved model.

    dataset: a registry STS dataset or an STS file (sentence1, sentence2, score).
      KorSTS test, KLUE-STS dev (the reported numbers) and any file named
      "*test*" are refused: selecting a model on them is leakage.
    every_steps: evaluate every N steps (0: at the end of every epoch); the
      last step is always evaluated.
    at_start: also evaluate the initial model (step 0), which then competes
      for "best" like any other step.
    """

    dataset: DataSource = DataSource(name="korsts-dev")
    every_steps: int = 0
    at_start: bool = True
    limit: Optional[int] = None
    batch_size: int = 64

    def _problems(self):
        label = (self.dataset.name or os.path.basename(self.dataset.path or "")).lower()
        if self.dataset.name in REPORT_ONLY:
            yield "dataset", (f"{self.dataset.label!r} is a reported evaluation set; select models "
                              f"on korsts-dev and report test numbers separately")
        elif re.search(r"(?<![a-z])test(?![a-z])", label):  # "sts-test.tsv", not "latest", "contest"
            yield "dataset", (f"{self.dataset.label!r} looks like a test set (its name has the word "
                              f"'test'); select models on a dev set and report test numbers separately")
        if self.every_steps < 0:
            yield "every_steps", f"must be >= 0, got {self.every_steps}"
        if self.limit is not None and self.limit < 2:
            yield "limit", f"must be >= 2 (a correlation needs 2 pairs), got {self.limit}"
        if self.batch_size <= 0:
            yield "batch_size", f"must be positive, got {self.batch_size}"


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """tf.train.CheckpointManager settings: save every N steps, keep the last `keep`."""

    every_steps: int = 500
    keep: int = 3

    def _problems(self):
        if self.every_steps <= 0:
            yield "every_steps", f"must be positive, got {self.every_steps}"
        if self.keep <= 0:
            yield "keep", f"must be positive, got {self.keep}"


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """A student encoder made of chosen teacher layers (DistilBERT-style init).

    layers: 0-based teacher layer indices, e.g. [3, 7, 11]; default: `num_layers`
    evenly spaced layers ending with the last (see `tfkosent.training.student`).
    intermediate_size: FFN neurons kept per layer (magnitude pruning); default all.
    """

    teacher: str
    layers: Optional[List[int]] = None
    num_layers: Optional[int] = None
    intermediate_size: Optional[int] = None

    def _problems(self):
        if self.layers is None and self.num_layers is None:
            yield None, "give 'layers' (teacher layer indices) or 'num_layers'"
        if self.layers is not None and self.num_layers is not None \
                and len(self.layers) != self.num_layers:
            yield "num_layers", f"is {self.num_layers} but 'layers' lists {len(self.layers)}"
        if self.num_layers is not None and self.num_layers <= 0:
            yield "num_layers", f"must be positive, got {self.num_layers}"
        if self.intermediate_size is not None and self.intermediate_size <= 0:
            yield "intermediate_size", f"must be positive, got {self.intermediate_size}"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A whole recipe (see the module docstring)."""

    output_dir: str
    tasks: List[TaskConfig]
    model: Optional[str] = None
    student: Optional[StudentConfig] = None
    model_type: Literal[MODEL_TYPES] = "bi_encoder"
    swap_pairs: bool = False
    seed: int = 42
    strategy: Literal[STRATEGIES] = "auto"
    tpu: Optional[str] = None
    devices: Optional[List[str]] = None
    mixed_precision: Literal[MIXED_PRECISION] = "none"
    deterministic: bool = False
    schedule: Literal[SCHEDULES] = "sequential"
    epochs: int = 1
    max_steps: Optional[int] = None
    stop_at_step: Optional[int] = None
    max_seq_length: Optional[int] = None
    pad_to_multiple_of: int = 8
    bucket_batches: int = 50
    length_chunks: int = 1
    optimizer: OptimizerConfig = OptimizerConfig()
    eval: Optional[EvalConfig] = EvalConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    save_best: bool = True
    export: bool = False
    log_every: int = 10
    steps_per_loop: int = 1
    log_batches: bool = False
    progress_bar: bool = True

    def __post_init__(self):
        tasks = _default_task_names(list(self.tasks))
        if self.student is not None:  # distillation tasks default to the student's teacher
            tasks = [dataclasses.replace(t, teacher=self.student.teacher)
                     if t.teacher is None and t.loss.build().requires_teacher else t for t in tasks]
        object.__setattr__(self, "tasks", tasks)

    def _problems(self):
        if (self.model is None) == (self.student is None):
            yield None, "give exactly one of 'model' (a model directory) or 'student' (a teacher to cut)"
        if not self.tasks:
            yield "tasks", "needs at least one task"
        if self.epochs <= 0:
            yield "epochs", f"must be positive, got {self.epochs}"
        for name in ("max_steps", "stop_at_step", "max_seq_length"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                yield name, f"must be positive, got {value}"
        for name in ("pad_to_multiple_of", "bucket_batches", "length_chunks", "log_every",
                     "steps_per_loop"):
            if getattr(self, name) <= 0:
                yield name, f"must be positive, got {getattr(self, name)}"
        if self.schedule == "round_robin":
            for i, task in enumerate(self.tasks):
                if task.epochs is not None:
                    yield ("tasks", i, "epochs"), ("only applies to schedule: sequential "
                                                   "(round_robin uses the top-level 'epochs')")
        for i, task in enumerate(self.tasks):
            for j, source in enumerate(task.data):
                if source.name in EVALUATION_ONLY:
                    yield ("tasks", i, "data", j), (f"{source.name!r} is an evaluation set; keep it out "
                                                    f"of training")
            if task.loss.build().requires_teacher and not task.teacher:
                yield ("tasks", i, "teacher"), (f"loss {task.loss.type!r} needs a teacher model "
                                                f"directory (or a top-level 'student')")
        cross = self.model_type == "cross_encoder"
        for i, task in enumerate(self.tasks):
            if task.loss.build().pair_scorer != cross:
                yield ("tasks", i, "loss"), (
                    f"loss {task.loss.type!r} does not train a {self.model_type.replace('_', '-')}; "
                    + ("cross-encoders train with cross_bce or cross_mse" if cross else
                       "cross_bce / cross_mse need model_type: cross_encoder"))
        if cross and self.student is not None:
            yield "student", "students are bi-encoders; give 'model' for model_type: cross_encoder"
        if self.swap_pairs and not cross:
            yield "swap_pairs", "only applies to model_type: cross_encoder"
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            yield "tasks", f"task names must be unique, got {names}"
        if self.devices is not None and self.strategy != "mirrored":
            yield "devices", "only applies to strategy: mirrored"
        if self.length_chunks > 1:
            # Chunks cut to their own longest sentence have shapes known only at run time.
            if self.strategy == "tpu":
                yield "length_chunks", "needs run-time shapes, which TPUs do not compile; use 1"
            if cross:
                yield "length_chunks", "only applies to bi-encoder embeddings, not model_type: cross_encoder"
            for i, task in enumerate(self.tasks):
                if task.loss.build().online_teacher:
                    yield ("tasks", i, "loss"), (f"loss {task.loss.type!r} compares token states; "
                                                 f"length_chunks applies to pooled embeddings only")

    def task_epochs(self, task: TaskConfig) -> int:
        return task.epochs if task.epochs is not None else self.epochs

    def to_dict(self) -> dict:
        return _to_plain(self)


# --------------------------------------------------------------------------- parsing


class _Context:
    """Where the recipe came from, for error messages."""

    def __init__(self, source: str, lines: Optional[Dict[KeyPath, int]] = None):
        self.source = source
        self.lines = lines or {}

    def line_of(self, path: KeyPath) -> Optional[int]:
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def fail(self, path: KeyPath, message: str):
        line = self.line_of(path)
        where = f"{self.source}:{line}" if line else self.source
        raise RecipeError(f"{where}: {format_key_path(path)}: {message}")


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, List):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _parse_value(tp, value, path: KeyPath, ctx: _Context):
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _parse_value(args[0], value, path, ctx)
    if origin is Literal:
        choices = typing.get_args(tp)
        if len(choices) == 1 and isinstance(choices[0], tuple):
            choices = choices[0]
        if value not in choices:
            ctx.fail(path, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin in (list, List):
        if not isinstance(value, list):
            ctx.fail(path, f"expected {_type_name(tp)}, got {type(value).__name__} ({value!r})")
        (item,) = typing.get_args(tp)
        return [_parse_value(item, v, path + (i,), ctx) for i, v in enumerate(value)]
    if hasattr(tp, "_parse"):
        return tp._parse(value, path, ctx)
    if dataclasses.is_dataclass(tp):
        if hasattr(tp, "_from_scalar"):
            value = tp._from_scalar(value)
        return _parse_dataclass(tp, value, path, ctx)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        # YAML 1.1 (PyYAML) reads 2e-5 as a string: it wants "2.0e-5"; --set accepts both.
        return float(value)
    if tp in (dict, Dict):
        ok = isinstance(value, Mapping)
    else:
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if not ok:
        ctx.fail(path, f"expected {_type_name(tp)}, got {type(value).__name__} ({value!r})")
    return value


def _parse_dataclass(cls, values, path: KeyPath, ctx: _Context, extra_known=()):
    if not isinstance(values, Mapping):
        ctx.fail(path, f"expected a mapping, got {type(values).__name__} ({values!r})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields and key not in extra_known:
            ctx.fail(path + (key,), f"unknown key {key!r}; known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in values:
            kwargs[name] = _parse_value(hints[name], values[name], path + (name,), ctx)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            ctx.fail(path, f"missing required key {name!r}")
    try:
        obj = cls(**kwargs)
    except FieldError as e:  # an object that checks its own fields when built (the losses)
        ctx.fail(path + ((e.field,) if e.field else ()), e.message)
    for field, message in (obj._problems() if hasattr(obj, "_problems") else ()):
        sub = () if field is None else (field if isinstance(field, tuple) else (field,))
        ctx.fail(path + sub, message)
    return obj


def _default_task_names(tasks: List[TaskConfig]) -> List[TaskConfig]:
    """Unnamed tasks are named after their loss ("cosent", "cosent_2", ...)."""
    out, used = [], {}
    for task in tasks:
        if task.name is None:
            base = task.loss.type
            used[base] = used.get(base, 0) + 1
            task = dataclasses.replace(task, name=base if used[base] == 1 else f"{base}_{used[base]}")
        out.append(task)
    return out


def parse_config(values: Mapping[str, Any], source: str = "<recipe>",
                 lines: Optional[Dict[KeyPath, int]] = None) -> TrainConfig:
    """Validates a recipe mapping; raises RecipeError naming source, line and key path."""
    return _parse_dataclass(TrainConfig, values, (), _Context(source, lines))


def _yaml_lines(text: str) -> Dict[KeyPath, int]:
    """{key path: 1-based line} of every key and list item; raises on duplicate keys."""
    import yaml

    lines: Dict[KeyPath, int] = {}
    duplicates: List[Tuple[KeyPath, int]] = []

    def walk(node, path):
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key in seen:
                    duplicates.append((path + (key,), key_node.start_mark.line + 1))
                seen.add(key)
                lines[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    if duplicates:
        path, line = duplicates[0]
        raise RecipeError(f"{{source}}:{line}: {format_key_path(path)}: duplicate key")
    return lines


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def parse_override(text: str) -> Tuple[str, Any]:
    """`KEY.PATH=VALUE` -> (key path, value); VALUE is read as YAML (`1e-4` is a float).

    >>> parse_override("optimizer.learning_rate=1e-4")
    ('optimizer.learning_rate', 0.0001)
    """
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"override {text!r}: expected KEY.PATH=VALUE, e.g. optimizer.learning_rate=1e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise RecipeError(f"override {text!r}: value is not valid YAML: {e}") from None
    # YAML 1.1 (PyYAML) reads 1e-4 as a string: the form everyone types for learning rates.
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        value = float(value)
    return key.strip(), value


def apply_overrides(values: Mapping[str, Any], overrides: Mapping[str, Any],
                    source: str = "<recipe>") -> Dict[str, Any]:
    """A deep copy of a recipe mapping with `{dotted.key.path: value}` set.

    A path component that is an integer indexes a list (`tasks.0.teacher_cache`) and must exist;
    a missing mapping key is created (validation then rejects unknown keys by name).  The value
    replaces what was there, it is not merged.  Errors name `source` and the override.
    """
    import copy

    result = copy.deepcopy(dict(values))
    for key, value in overrides.items():
        parts = str(key).split(".")
        if not all(parts):
            raise RecipeError(f"{source}: override {key!r}: empty key path component")
        node: Any = result
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth + 1])
            if isinstance(node, list):
                if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                    raise RecipeError(f"{source}: override {key!r}: {where}: the list has "
                                      f"{len(node)} item(s); expected an index 0..{len(node) - 1}")
                index = int(part)
                if last:
                    node[index] = copy.deepcopy(value)
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = copy.deepcopy(value)
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise RecipeError(f"{source}: override {key!r}: {'.'.join(parts[:depth])} is a "
                                  f"{type(node).__name__}, not a mapping or list")
    return result


# The recipes shipped in the package (tfkosent/configs/).
PACKAGED_RECIPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
_PACKAGED_PREFIX = "tfkosent/configs/"


def packaged_recipes() -> List[str]:
    """Names of the shipped recipes, e.g. "cosent_e5_korsts", "default_model/student_sts"."""
    names = []
    for folder, _, files in os.walk(PACKAGED_RECIPES):
        rel = os.path.relpath(folder, PACKAGED_RECIPES)
        names += [os.path.splitext(f if rel == "." else f"{rel}/{f}")[0].replace(os.sep, "/")
                  for f in files if f.endswith((".yaml", ".yml"))]
    return sorted(names)


def resolve_recipe_path(path: str) -> str:
    """`path` itself when it is a file, else the shipped recipe it names: "cosent_e5_korsts",
    "cosent_e5_korsts.yaml" or "tfkosent/configs/cosent_e5_korsts.yaml" (the README's form),
    so that the documented commands work outside a checkout too. FileNotFoundError lists the
    shipped names."""
    if os.path.isfile(path):
        return path
    name = posixpath.normpath(path.replace(os.sep, "/"))
    name = name[len(_PACKAGED_PREFIX):] if name.startswith(_PACKAGED_PREFIX) else name
    for candidate in (name, f"{name}.yaml"):
        full = os.path.join(PACKAGED_RECIPES, *candidate.split("/"))
        if "/.." not in f"/{candidate}" and os.path.isfile(full):
            return full
    top = [n for n in packaged_recipes() if "/" not in n]
    raise FileNotFoundError(f"{path}: no such recipe file, nor a shipped recipe (shipped: {', '.join(top)}; "
                            f"more under default_model/ and ablations/)")


def load_config(path: str, overrides: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """Reads and validates a YAML (.yaml/.yml) or JSON (.json) recipe file, or a shipped recipe
    by name (`resolve_recipe_path`).

    overrides: `{dotted.key.path: value}` applied before validation (`tfkosent train --set`).
    """
    import yaml

    path = resolve_recipe_path(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        if path.endswith(".json"):
            values = json.loads(text)
        else:
            values = yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise RecipeError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise RecipeError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    try:
        lines = _yaml_lines(text)  # JSON is YAML: one line map for both
    except RecipeError as e:
        raise RecipeError(str(e).replace("{source}", path)) from None
    except Exception:  # noqa: BLE001  (line numbers are a nicety)
        lines = {}
    values = values if values is not None else {}
    if overrides:
        if not isinstance(values, dict):
            raise RecipeError(f"{path}: expected a mapping at the top level")
        values = apply_overrides(values, overrides, source=path)
        source = f"{path} (with {', '.join(f'{k}={v!r}' for k, v in overrides.items())})"
    else:
        source = path
    return parse_config(values, source=source, lines=lines)


def _to_plain(obj):
    if isinstance(obj, LossSpec):
        return {"type": obj.type, **obj.params}
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def resolve_path(path: Optional[str]) -> Optional[str]:
    """~ and $VARS expanded, made absolute (relative to the working directory)."""
    if path is None:
        return None
    return os.path.abspath(os.path.expandvars(os.path.expanduser(path)))


def resolve_model_path(path: Optional[str]) -> Optional[str]:
    """`resolve_path` of a model directory, where "default" is the default model (the shipped
    one, as for `--model default`): `model: default` fine-tunes it, `teacher: default` distills
    from it. A directory named "default" is "./default"."""
    from tfkosent.sentence_encoder import resolve_default_model  # TF-free import

    return resolve_path(resolve_default_model(path))
