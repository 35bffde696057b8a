"""Multi-step, resumable pipelines built from tfkosent's own functions and recipes.

    tfkosent pipeline default-model [--work-dir runs/default_model] [--data-dir DIR]
                                    [--from S] [--until S] [--only S] [--dry-run]

`default_model` is the recipe of the shipped default model (see TRAINING.md,
"Default model: how it is made"); its steps are listed in
`tfkosent/configs/default_model/pipeline.yaml`.
"""

from tfkosent.pipeline.default_model import (  # noqa: F401
    DEFAULT_PIPELINE, Pipeline, PipelineError, Step, main_cli,
)

__all__ = ["DEFAULT_PIPELINE", "Pipeline", "PipelineError", "Step", "main_cli"]
