"""`tfkosent train CONFIG [--resume] [--data-dir DIR] [--set KEY.PATH=VALUE ...]`: run a recipe.

`--set` changes one recipe value without copying the file, e.g. another distillation epoch:
`--set seed=43 --set optimizer.learning_rate=1e-4 --set tasks.0.teacher_cache=DIR`.

Exit status: 0 done; 2 bad recipe, data or output directory (the message names
the file, line and key); 3 non-finite loss (the last good checkpoint is kept);
128 + signal number when SIGTERM / SIGINT stopped the run after a checkpoint.
"""

from __future__ import annotations

import logging
import sys

EXIT_ERROR = 2
EXIT_NON_FINITE = 3


def configure_logging() -> None:
    logger = logging.getLogger("tfkosent.training")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def train_cli(args) -> int:
    """Entry point of `tfkosent train`; `args` has .config, .resume, .data_dir, .set."""
    from tfkosent.config import ConfigError
    from tfkosent.training.config import load_config, parse_override
    from tfkosent.training.data import DataError
    from tfkosent.training.teacher_cache import TeacherCacheError

    from tfkosent.training import trainer
    from tfkosent.training.stop import Interrupted, stopped_message, stops_anywhere
    from tfkosent.training.trainer import NonFiniteLossError, TrainingInterrupted

    configure_logging()
    prog = "tfkosent train"
    try:
        overrides = dict(parse_override(item) for item in (getattr(args, "set", None) or []))
        with stops_anywhere():
            result = trainer.train(load_config(args.config, overrides=overrides),
                                   data_dir=getattr(args, "data_dir", None),
                                   resume=bool(getattr(args, "resume", False)),
                                   overwrite=bool(getattr(args, "overwrite", False)))
    except (Interrupted, KeyboardInterrupt) as e:  # outside the loop, or a second Ctrl-C
        message, status = stopped_message(prog, e)
        print(message, file=sys.stderr)
        return status
    except (ConfigError, DataError, TeacherCacheError, FileNotFoundError, FileExistsError,
            NotADirectoryError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except NonFiniteLossError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_NON_FINITE
    except TrainingInterrupted as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 128 + int(e.signum)
    metric = result.best_metric.replace("_", " ").replace("spearman", "Spearman")
    best = (f"; best dev {metric} {result.best_score:.2f} at step {result.best_step}"
            if result.best_score is not None else "")
    print(f"trained {result.steps} steps; model: {result.model_dir}{best}"
          + (f"; export: {result.export_dir}" if result.export_dir else ""))
    return 0


def main(argv=None) -> int:
    """`python -m tfkosent.training.cli CONFIG [--resume] [--data-dir DIR]`."""
    import argparse
    parser = argparse.ArgumentParser(prog="tfkosent train")
    parser.add_argument("config")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
    return train_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
