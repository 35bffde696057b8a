"""Korean STS / NLI / paraphrase / raw-sentence datasets (registry, download, loaders).

Import-light: only the standard library and numpy; TensorFlow is imported inside
`make_tf_dataset`.  See `tfkosent.data.datasets` for the data-directory rules.
"""

from tfkosent.data.datasets import (
    DATASETS,
    ENV_CACHE,
    ENV_DATA_DIR,
    NLI_LABELS,
    DatasetCountWarning,
    DatasetFormatError,
    DatasetInfo,
    DownloadError,
    ManualDownloadRequired,
    NLIExample,
    STSExample,
    atomic_write_bytes,
    cache_dir,
    count_rows,
    dataset_path,
    dataset_stats,
    download,
    find_local_data_dir,
    get_dataset_info,
    groups_to_numpy,
    list_datasets,
    load_nli,
    load_pairs,
    load_paraphrase_groups,
    load_raw_sentences,
    load_sts,
    make_tf_dataset,
    nli_to_numpy,
    nli_triplets,
    pairs_to_numpy,
    resolve_data_dir,
    sha256_file,
    sts_to_numpy,
    triplets_to_numpy,
)

__all__ = [
    "DATASETS", "ENV_CACHE", "ENV_DATA_DIR", "NLI_LABELS", "DatasetCountWarning",
    "DatasetFormatError", "DatasetInfo", "DownloadError", "ManualDownloadRequired", "NLIExample",
    "STSExample", "atomic_write_bytes", "cache_dir", "count_rows", "dataset_path", "dataset_stats", "download",
    "find_local_data_dir", "get_dataset_info", "groups_to_numpy", "list_datasets", "load_nli",
    "load_pairs", "load_paraphrase_groups", "load_raw_sentences", "load_sts", "make_tf_dataset",
    "nli_to_numpy", "nli_triplets", "pairs_to_numpy", "resolve_data_dir", "sha256_file",
    "sts_to_numpy", "triplets_to_numpy",
]
