"""Model-agnostic STS evaluation (published KorSTS / KLUE-STS protocol) and its outputs.

Import-light: numpy and `tfkosent.data` only; tqdm / matplotlib are imported when used.
"""

from tfkosent.evaluation.sts import (
    BINARY_THRESHOLD,
    DEFAULT_TASKS,
    METRIC_KEYS,
    SIMILARITIES,
    TASKS,
    compute_similarities,
    cosine_to_score,
    dataset_provenance,
    encode_unique,
    evaluate_scores,
    evaluate_pairs,
    evaluate_sts,
    f1_binary,
    fit_f1_threshold,
    format_markdown_table,
    load_sts_file,
    load_task,
    pair_similarities,
    pearson,
    plot_scatter,
    rankdata,
    run_tasks,
    spearman,
    sts_metrics,
    write_json,
)

__all__ = [
    "BINARY_THRESHOLD", "DEFAULT_TASKS", "METRIC_KEYS", "SIMILARITIES", "TASKS",
    "compute_similarities", "cosine_to_score", "dataset_provenance", "encode_unique",
    "evaluate_pairs", "evaluate_scores", "evaluate_sts", "f1_binary", "fit_f1_threshold",
    "format_markdown_table", "load_sts_file", "load_task", "pair_similarities", "pearson", "plot_scatter",
    "rankdata", "run_tasks", "spearman", "sts_metrics", "write_json",
]
