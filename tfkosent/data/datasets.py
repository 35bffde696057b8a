"""Korean STS / NLI / paraphrase / raw-text datasets: registry, download and loaders.

Every dataset has a *registry name* (see `DATASETS`, `list_datasets()`) with

    path    where the file lives inside a data directory (e.g. "korsts/sts-dev.tsv")
    url     the public source it comes from (raw.githubusercontent.com at a pinned commit)
    sha256  the checksum of the file as the loaders expect it (after any conversion)
    rows    the expected number of data rows (header excluded)

Data directory (first that applies):

    1. an explicit ``data_dir`` argument,
    2. the environment variable ``TFKOSENT_DATA_DIR``,
    3. the cache ``$TFKOSENT_CACHE/data`` (``TFKOSENT_CACHE`` defaults to ``~/.cache/tfkosent``).

Only in case 3 do the loaders download a missing file (`download`), verify its sha256
and write it atomically.  With an explicit or environment data directory a missing file
is an error that says which file to put where.

Files are parsed strictly: TSVs are split on ``'\\t'`` without any quoting (a CSV
reader silently merges rows that contain a stray ``"``: KorSTS train then reads
as 5,703 rows instead of 5,749).  A malformed row (wrong column count, non-numeric
or out-of-range score, empty sentence, unknown label) raises `DatasetFormatError`,
whose message starts with ``<file>:<1-based line>:``.  A row count that differs from the
registry's expectation emits a `DatasetCountWarning` naming both numbers.

Record types::

    STSExample(sentence1: str, sentence2: str, score: float in [0, 5], binary_label: Optional[int])
    NLIExample(premise: str, hypothesis: str, label: "entailment" | "neutral" | "contradiction")
    paraphrase groups: List[List[str]]      pairs: List[Tuple[str, str]]      raw: List[str]

This module imports only the standard library and numpy; TensorFlow is imported
inside `make_tf_dataset` only.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import hashlib
import http.client
import io
import json
import math
import os
import urllib.request
import uuid
import warnings
import zlib
from pathlib import Path
from typing import (Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Union)

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

ENV_DATA_DIR = "TFKOSENT_DATA_DIR"
ENV_CACHE = "TFKOSENT_CACHE"
NLI_LABELS = ("entailment", "neutral", "contradiction")


# --------------------------------------------------------------------------- records


class STSExample(NamedTuple):
    """One sentence pair with a gold similarity `score` in [0, 5].

    `binary_label` is 1/0 for KLUE-STS (official "binary-label" = real-label >= 3) and
    None for KorSTS, which has no binary label.
    """
    sentence1: str
    sentence2: str
    score: float
    binary_label: Optional[int] = None


class NLIExample(NamedTuple):
    """One premise/hypothesis pair; `label` is one of `NLI_LABELS`."""
    premise: str
    hypothesis: str
    label: str


# --------------------------------------------------------------------------- errors


class DatasetFormatError(ValueError):
    """A data file is malformed.  ``str(e)`` is ``"<path>:<line>: <message>"``.

    For JSON files the location is the 1-based record number (``"<path>: record 12: ..."``)
    unless the JSON itself is unparsable, in which case it is the line of the syntax error.
    """

    def __init__(self, path: PathLike, line: Optional[int], message: str,
                 record: Optional[int] = None):
        self.path = str(path)
        self.line = line
        self.record = record
        self.detail = message
        if line is not None:
            where = f"{self.path}:{line}"
        elif record is not None:
            where = f"{self.path}: record {record}"
        else:
            where = self.path
        super().__init__(f"{where}: {message}")


class DatasetCountWarning(UserWarning):
    """A dataset has a different number of rows than the registry expects."""


class DownloadError(RuntimeError):
    """A download failed or its checksum does not match the registry."""


class ManualDownloadRequired(DownloadError):
    """The file is derived from its public source by steps `download` cannot reproduce
    byte for byte; the message says what to place where."""


# --------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Registry entry.

    kind:   "sts" | "nli" | "paraphrase_groups" | "pairs" | "raw"
    fmt:    name of the row parser (see `_PARSERS`)
    conversion: None when the file is a byte-identical copy of `url`; the name of a
            converter in `_CONVERTERS` when `download` derives it from `url`; "manual" when
            the derivation cannot be reproduced (then `download` raises
            `ManualDownloadRequired` with `derivation` as the instructions).
    """
    name: str
    path: str
    url: str
    sha256: str
    rows: int
    kind: str
    fmt: str
    license: str
    derivation: str = ""
    conversion: Optional[str] = None


_GH = "https://raw.githubusercontent.com"
_KORNLU = f"{_GH}/kakaobrain/KorNLUDatasets/0df0fe7d496eb61b092e022e238c2230b29f1cbc"
_KLUE = f"{_GH}/KLUE-benchmark/KLUE/3efd98708a40ff49251fddde35453f8fbb11f536/klue_benchmark"
_DACON = f"{_GH}/hahajjjun/KorNLI-DACON/3f09f6da4678c1501aeabd519451798c7e1f2a5d/DATA"
_HATE = f"{_GH}/kocohub/korean-hate-speech/f8d05dce2b22007bb149e5139c0060c68ad8f94b"
_CC = "CC BY-SA 4.0"

_REGISTRY: Tuple[DatasetInfo, ...] = (
    # ---- STS
    DatasetInfo("korsts-train", "korsts/sts-train.tsv", f"{_KORNLU}/KorSTS/sts-train.tsv",
                "b5aaa7f957d6ff46f4b6834a8b0f024a9234a6eefe9289aed66746b4533da3b8",
                5749, "sts", "korsts_tsv", _CC),
    DatasetInfo("korsts-dev", "korsts/sts-dev.tsv", f"{_KORNLU}/KorSTS/sts-dev.tsv",
                "d835b65b424401fbcce6be28a78159df8d61f5b19977ea7a0b83b8cb6105f393",
                1500, "sts", "korsts_tsv", _CC),
    DatasetInfo("korsts-test", "korsts/sts-test.tsv", f"{_KORNLU}/KorSTS/sts-test.tsv",
                "13f83a3440d9db52d134eb40303ce021b03264aa338fbf2871c8786ce04d2105",
                1379, "sts", "korsts_tsv", _CC),
    # The KLUE-STS v1.1 train split as CSV (sentence1, sentence2, label = real-label), at a full
    # commit id (it replaced the short id cf7cf47: a short id can become ambiguous). The file at
    # this commit has the registry copy's length (959,967 characters) and its first 16,000 and
    # last 267 characters, as a public code index shows it; the sha256 check is the proof.
    DatasetInfo("klue-sts-train", "klue-sts/klue_sts_train.csv",
                f"{_GH}/Bing-su/klue-sts-csv-data/5cc4924f699e0ead8b654730b73c735a5a55dedf"
                "/data/klue_sts_train.csv",
                "1204659f6e5914b16f349810c89784339abdc436fb2feb28865313fadc38cbe9",
                11668, "sts", "klue_sts_csv", _CC),
    DatasetInfo("klue-sts-dev", "klue-sts/klue-sts-v1.1_dev.json",
                f"{_KLUE}/klue-sts-v1.1/klue-sts-v1.1_dev.json",
                "b6a0ae0c370e21687f7eef0fdea872a328bb2ecbdb020c546cb870d28606bf80",
                519, "sts", "klue_sts_json", _CC),
    # ---- NLI
    DatasetInfo("klue-nli-train", "klue-nli/klue_nli_train.tsv",
                f"{_DACON}/benchmark_train_data.csv",
                "94f687014052adcb3d96db1b9e081d7619ce568078c207ad441246dfa773daab",
                24998, "nli", "nli_tsv", _CC,
                derivation=("KLUE-NLI v1.1 train.  The source CSV (index,premise,hypothesis,label; "
                            "cp949 or UTF-8) is the 24,998 train rows followed by the 3,000 KLUE-NLI "
                            "dev rows; download keeps the train rows and writes UTF-8 TSV "
                            "'premise\\thypothesis\\tlabel' with LF line ends."),
                conversion="klue_nli_dacon"),
    DatasetInfo("klue-nli-dev", "klue-nli/klue-nli-v1.1_dev.json",
                f"{_KLUE}/klue-nli-v1.1/klue-nli-v1.1_dev.json",
                "0699db82be17766b26e199864e6260443e17ec6e91d1870e876419e388f245b1",
                3000, "nli", "klue_nli_json", _CC),
    DatasetInfo("xnli-ko-dev", "xnli-ko/xnli.dev.ko.tsv", f"{_KORNLU}/KorNLI/xnli.dev.ko.tsv",
                "821fb1c1c2e538ac2724a6132da36ffa379eb9a542ceb89243b3cf711377382c",
                2490, "nli", "xnli_tsv", _CC),
    DatasetInfo("xnli-ko-test", "xnli-ko/xnli.test.ko.tsv", f"{_KORNLU}/KorNLI/xnli.test.ko.tsv",
                "0db53cf8e182283a0d0404ec3fe1b15d1e29236d23d22082dc20d43067254b3e",
                5010, "nli", "xnli_tsv", _CC),
    # ---- paraphrase groups / pairs
    DatasetInfo("parakqc", "paraphrase/parakqc_groups.tsv",
                f"{_GH}/warnikchow/paraKQC/c16270fe6c2e888af07e7cb043248ad31d8a6f9c/data/paraKQC_v1.txt",
                "27cc6d47f705699a5b110e01dca6eb115fdb0748aff0a3654f234ea7f18f993e",
                8360, "paraphrase_groups", "parakqc_tsv", _CC,
                derivation=("836 paraphrase groups of 10 from paraKQC_v1.txt, minus every group "
                            "that shares a sentence with KLUE-STS dev, as TSV "
                            "'group\\tcol1\\tcol2\\tsentence'."),
                conversion="manual"),
    DatasetInfo("stylekqc", "paraphrase/stylekqc_groups.train.tsv",
                f"{_GH}/cynthia/stylekqc/f12bff2c26779969e1f8e54e1b98fcb8cfeeff77/topic/train.tsv",
                "97841ddcc9d5838d3abe3eefdb78eeb194198e0223002978a8f26a8380f46c57",
                24000, "paraphrase_groups", "stylekqc_tsv", _CC,
                derivation=("2,400 groups of 10 formal/informal variants from the StyleKQC train "
                            "split, as TSV 'split\\tgroup\\ttopic\\tact\\tsentence'."),
                conversion="manual"),
    DatasetInfo("sae4k", "paraphrase/sae4k_v1.tsv",
                f"{_GH}/warnikchow/sae4k/4d55f8f655a080b41943e642d55a8f7fa3cc09a2/data/sae4k_v1.txt",
                "876978f6ae9aed4d7ef7efe33c4f27210ef3ecc1fc010e656d85bc1d51896675",
                30837, "pairs", "sae4k_tsv", _CC),
    DatasetInfo("klue-nli-backtranslations", "paraphrase/klue_nli_train.backtranslations.tsv",
                f"{_DACON}/aug_train_data.csv",
                "2b5af51e6c701da797fee8900786fa6c92cd8991c1501cdf17ca521392703c17",
                19636, "pairs", "backtranslation_tsv", _CC,
                derivation=("ko->en->ko back-translations of KLUE-NLI train premises/hypotheses "
                            "aligned with their originals, as TSV "
                            "'row\\tfield\\toriginal\\tbacktranslated'."),
                conversion="manual"),
    # ---- raw sentences
    DatasetInfo("nsmc-reviews", "raw/nsmc_reviews.txt.gz",
                "https://github.com/e9t/nsmc/tree/cc0670e872d4ac27bfe36c87456783004b39ef6c/raw",
                "3aa6762acec0ace02e31185d521c87be286b52ed9d9a947bab985fd17dea55d1",
                688507, "raw", "lines", "CC0",
                derivation=("unique review texts of the NSMC crawl (the ~14,700 per-movie JSON files "
                            "under raw/), one per line, gzip-compressed."),
                conversion="manual"),
    DatasetInfo("3i4k", "raw/3i4k_utterances.txt",
                f"{_GH}/warnikchow/3i4k/cfa90c15f808becafca2d8ef8649b8b71f6bbe71/data/fci.txt",
                "d08a9031bbd454a125fbd9c9af85974e0309413cb3e219a05e216e9735b0e197",
                57315, "raw", "lines", _CC,
                derivation="unique utterances of the 3i4k corpus (text column only), one per line.",
                conversion="manual"),
    DatasetInfo("chatbot-qa", "raw/chatbot_qa.csv",
                f"{_GH}/songys/Chatbot_data/4cf20d13fc46f5037fd1c531cd566e2dd9f72974/ChatbotData.csv",
                "287eb129695b577321c80ad397bb3c2279164d4ca577874d129fd3db5b30afe2",
                11823, "raw", "chatbot_csv", "MIT"),
    DatasetInfo("news-titles", "raw/news_titles.txt",
                f"{_HATE}/news_title/train.news_title.txt",
                "585408f5b47c1dae6bc41036d085e4a4f709336a0e7ac345db15834e0449ce0b",
                1793, "raw", "csv_lines", _CC,
                derivation=("unique news headlines of the korean-hate-speech news_title/*.txt files, "
                            "one CSV-quoted field per line (as in the source)."),
                conversion="manual"),
    DatasetInfo("news-comments", "raw/news_comments.txt",
                f"{_HATE}/labeled/train.tsv",
                "72f8ece5cc16117dcb246f60d5997a045e7363610f9c68b317509b480a1f40cb",
                28688, "raw", "lines", _CC,
                derivation="news comments from the korean-hate-speech corpus, one per line.",
                conversion="manual"),
)

DATASETS: Dict[str, DatasetInfo] = {info.name: info for info in _REGISTRY}


def list_datasets(kind: Optional[str] = None) -> List[str]:
    """Registry names, optionally only those of one `kind` ("sts", "nli", ...)."""
    return [n for n, info in DATASETS.items() if kind is None or info.kind == kind]


def get_dataset_info(name: str, kind: Optional[str] = None) -> DatasetInfo:
    """The registry entry of `name`; ValueError naming the valid names otherwise."""
    info = DATASETS.get(name)
    if info is None or (kind is not None and info.kind != kind):
        what = f"{kind} dataset" if kind else "dataset"
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(list_datasets(kind))}")
    return info


# --------------------------------------------------------------------------- data directory


def cache_dir() -> Path:
    """``$TFKOSENT_CACHE/data``, default ``~/.cache/tfkosent/data``."""
    root = os.environ.get(ENV_CACHE) or os.path.join("~", ".cache", "tfkosent")
    return expand_path(root) / "data"


def expand_path(path: PathLike) -> Path:
    """`path` with ``~`` and ``$VARS`` expanded, as recipe paths are: a shell leaves ``~`` as
    it is in ``--data-dir=~/data`` and in environment variables."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))


def resolve_data_dir(data_dir: Optional[PathLike] = None) -> Path:
    """`data_dir` if given, else ``$TFKOSENT_DATA_DIR`` if set, else `cache_dir()`."""
    if data_dir is not None:
        return expand_path(data_dir)
    env = os.environ.get(ENV_DATA_DIR)
    return expand_path(env) if env else cache_dir()


def find_local_data_dir() -> Optional[Path]:
    """A local copy of the datasets for tests and benchmarks, or None.

    ``$TFKOSENT_DATA_DIR`` if set, else ``<repository root>/../shared/data`` when this
    package runs from a source checkout that has one.
    """
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return expand_path(env)
    from tfkosent.checkout import checkout_root

    root = checkout_root()
    candidate = root.parent / "shared" / "data" if root is not None else None
    return candidate if candidate is not None and candidate.is_dir() else None


def dataset_path(name: str, data_dir: Optional[PathLike] = None) -> Path:
    """Path of dataset `name`; downloads it when the data directory is the cache.

    Raises FileNotFoundError (explicit / environment data directory, file missing) or
    `ManualDownloadRequired` (cache, file not reproducible from its source).
    """
    info = get_dataset_info(name)
    use_cache = data_dir is None and not os.environ.get(ENV_DATA_DIR)
    path = resolve_data_dir(data_dir) / info.path
    if path.is_file():
        return path
    if use_cache:
        return download(name)
    raise FileNotFoundError(
        f"dataset {name!r}: {path} does not exist. Place the file there (source: {info.url}"
        + (f"; {info.derivation}" if info.derivation else "")
        + (f"; prepared by hand: its sha256 is {info.sha256}, {info.rows} rows)."
           if info.conversion == "manual"
           else f") or run tfkosent.data.download({name!r}, data_dir=...)."))


# --------------------------------------------------------------------------- download


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Writes `data` to `path` via a temporary file in the same directory and `os.replace`,
    so readers never see a partial file; creates parent directories.  The file gets the
    default permissions (umask), like a plain `open(path, "wb")`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path


def _convert_klue_nli_dacon(raw: bytes) -> bytes:
    """DACON benchmark_train_data.csv -> klue_nli_train.tsv (see the registry's derivation)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp949")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or rows[0] != ["index", "premise", "hypothesis", "label"]:
        raise DownloadError(f"unexpected header {rows[:1]} in the KLUE-NLI source CSV")
    body = rows[1:]
    n_train = DATASETS["klue-nli-train"].rows
    if len(body) != n_train + DATASETS["klue-nli-dev"].rows:
        raise DownloadError(f"KLUE-NLI source CSV has {len(body)} rows, expected "
                            f"{n_train} train + {DATASETS['klue-nli-dev'].rows} dev")
    lines = ["premise\thypothesis\tlabel"]
    lines += ["\t".join(row[1:4]) for row in body[:n_train]]
    return ("\n".join(lines) + "\n").encode("utf-8")


_CONVERTERS: Dict[str, Callable[[bytes], bytes]] = {"klue_nli_dacon": _convert_klue_nli_dacon}


def download(name: str, data_dir: Optional[PathLike] = None, force: bool = False,
             timeout: float = 60.0) -> Path:
    """Fetches dataset `name` from its public URL into the data directory; returns its path.

    The bytes (after the registry's conversion, if any) must match the registry sha256,
    else `DownloadError`; the file is written atomically.  An existing file with the right
    checksum is kept unless `force`.  Datasets whose derivation is not reproducible raise
    `ManualDownloadRequired` saying which file to place where.
    """
    info = get_dataset_info(name)
    target = resolve_data_dir(data_dir) / info.path
    if target.is_file() and not force:
        digest = sha256_file(target)
        if digest == info.sha256:
            return target
        raise DownloadError(f"{target} exists with sha256 {digest}, expected {info.sha256}; "
                            f"pass force=True to replace it")
    if info.conversion == "manual":
        raise ManualDownloadRequired(
            f"dataset {name!r} is derived from {info.url} ({info.derivation}) by steps that "
            f"cannot be reproduced byte for byte; place the prepared file at {target} "
            f"(sha256 {info.sha256}, {info.rows} rows).")
    try:
        with urllib.request.urlopen(info.url, timeout=timeout) as response:
            data = response.read()
    except (OSError, http.client.HTTPException) as e:  # HTTPException: e.g. IncompleteRead
        raise DownloadError(f"downloading {name!r} from {info.url} failed: "
                            f"{type(e).__name__}: {e}") from e
    if info.conversion is not None:
        data = _CONVERTERS[info.conversion](data)
    digest = hashlib.sha256(data).hexdigest()
    if digest != info.sha256:
        raise DownloadError(f"{name!r} from {info.url}: sha256 {digest} does not match the "
                            f"registry's {info.sha256}; place a verified copy at {target}")
    atomic_write_bytes(target, data)
    return target


# --------------------------------------------------------------------------- low-level readers


def iter_lines(path: Path, stream: Optional[BinaryIO] = None) -> Iterator[Tuple[int, str]]:
    """(1-based line number, text) of a UTF-8 (optionally .gz) file, or of `stream` (a binary
    file object such as sys.stdin.buffer, named `path` in errors); lines end only at LF,
    a trailing CR is dropped.  Blank lines at the very end are ignored; a blank line
    followed by more text is yielded (and rejected by the callers)."""
    if stream is None and os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a file")
    opener = gzip.open if path.suffix == ".gz" else open
    pending: List[Tuple[int, str]] = []
    lineno = 0
    with (contextlib.nullcontext(stream) if stream is not None else opener(path, "rb")) as f:
        lines = enumerate(f, 1)
        while True:
            try:
                lineno, raw = next(lines)
            except StopIteration:
                break
            except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
                raise DatasetFormatError(path, lineno + 1, f"truncated or corrupt file "
                                         f"({type(e).__name__}: {e})") from None
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DatasetFormatError(path, lineno, f"not valid UTF-8 ({e.reason})") from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            line = line[:-1] if line.endswith("\n") else line
            line = line[:-1] if line.endswith("\r") else line
            if not line.strip():
                pending.append((lineno, line))
                continue
            yield from pending
            pending.clear()
            yield lineno, line


def read_stdin_lines(stream: Optional[BinaryIO] = None) -> List[str]:
    """The lines of standard input (or of the binary `stream`), read as `iter_lines` reads a
    file: UTF-8, CR LF or LF, trailing blank lines dropped; a line that is not UTF-8 raises
    DatasetFormatError naming `<stdin>:LINE`."""
    import sys

    stream = sys.stdin.buffer if stream is None else stream
    return [text for _, text in iter_lines(Path("<stdin>"), stream)]


def _iter_tsv(path: Path, columns: Sequence[str], header: bool) -> Iterator[Tuple[int, List[str]]]:
    """(line number, fields) of each data row of a TSV split on '\\t' without quoting."""
    for lineno, line in iter_lines(path):
        fields = line.split("\t")
        if header and lineno == 1:
            if fields != list(columns):
                raise DatasetFormatError(path, lineno, f"expected header {list(columns)}, got {fields}")
            continue
        if len(fields) != len(columns):
            raise DatasetFormatError(path, lineno, f"expected {len(columns)} tab-separated columns "
                                     f"({', '.join(columns)}), got {len(fields)}")
        yield lineno, fields


def _decodes(line: bytes) -> bool:
    try:
        line.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _iter_csv(path: Path, columns: Sequence[str]) -> Iterator[Tuple[int, List[str]]]:
    """(line number, fields) of each data row of a standard (RFC 4180) CSV with a header."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        blank: Optional[int] = None   # a blank row, an error unless only blank rows follow
        try:
            for fields in reader:
                lineno = reader.line_num
                if not fields:
                    blank = lineno if blank is None else blank
                    continue
                if blank is not None:
                    raise DatasetFormatError(path, blank, "blank line")
                if lineno == 1:
                    if fields != list(columns):
                        raise DatasetFormatError(path, 1, f"expected header {list(columns)}, got {fields}")
                    continue
                if len(fields) != len(columns):
                    raise DatasetFormatError(path, lineno, f"expected {len(columns)} comma-separated "
                                             f"columns ({', '.join(columns)}), got {len(fields)}")
                yield lineno, fields
        except csv.Error as e:
            raise DatasetFormatError(path, reader.line_num, f"CSV error: {e}") from None
        except UnicodeDecodeError as e:
            # The csv module decodes ahead of the row it returns: find the line in the bytes.
            with open(path, "rb") as raw:
                line = next((i for i, b in enumerate(raw, 1) if not _decodes(b)), None)
            raise DatasetFormatError(path, line, f"not valid UTF-8 ({e.reason})") from None


def _text(value: str, path: Path, line: Optional[int], column: str,
          record: Optional[int] = None) -> str:
    if not isinstance(value, str):
        raise DatasetFormatError(path, line, f"{column!r} is not a string: {value!r}", record)
    if not value.strip():
        raise DatasetFormatError(path, line, f"empty {column!r} field", record)
    return value


def parse_score(value: Any, path: Path, line: Optional[int], column: str,
                record: Optional[int] = None) -> float:
    """An STS score: a finite number in [0, 5] (a JSON bool is no score), else
    DatasetFormatError naming the file, line (or record) and column."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DatasetFormatError(path, line, f"non-numeric {column!r} {value!r}", record) from None
    if isinstance(value, bool) or not math.isfinite(x) or not 0.0 <= x <= 5.0:
        raise DatasetFormatError(path, line, f"{column!r} {value!r} is outside [0, 5]", record)
    return x


def _nli_label(value: str, path: Path, line: Optional[int], column: str,
               record: Optional[int] = None) -> str:
    if value not in NLI_LABELS:
        raise DatasetFormatError(path, line, f"{column!r} {value!r} is not one of {list(NLI_LABELS)}",
                                 record)
    return value


def _load_json_list(path: Path) -> list:
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetFormatError(path, e.lineno, f"invalid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise DatasetFormatError(path, None, f"not valid UTF-8 ({e.reason})") from None
    if not isinstance(data, list):
        raise DatasetFormatError(path, 1, f"expected a JSON list of records, got {type(data).__name__}")
    return data


def _json_field(record: Any, keys: Sequence[str], path: Path, index: int) -> Any:
    value = record
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise DatasetFormatError(path, None, f"missing field {'.'.join(keys)!r}", index)
        value = value[key]
    return value


# --------------------------------------------------------------------------- row parsers
# Each yields one record per data row of the file (so counting them gives the row count).

_KORSTS_COLUMNS = ("genre", "filename", "year", "id", "score", "sentence1", "sentence2")


def _parse_korsts_tsv(path: Path) -> Iterator[STSExample]:
    for line, f in _iter_tsv(path, _KORSTS_COLUMNS, header=True):
        yield STSExample(_text(f[5], path, line, "sentence1"), _text(f[6], path, line, "sentence2"),
                         parse_score(f[4], path, line, "score"), None)


def _parse_klue_sts_csv(path: Path) -> Iterator[STSExample]:
    for line, f in _iter_csv(path, ("sentence1", "sentence2", "label")):
        score = parse_score(f[2], path, line, "label")
        yield STSExample(_text(f[0], path, line, "sentence1"), _text(f[1], path, line, "sentence2"),
                         score, int(score >= 3.0))


def _parse_klue_sts_json(path: Path) -> Iterator[STSExample]:
    for i, rec in enumerate(_load_json_list(path), 1):
        s1 = _text(_json_field(rec, ("sentence1",), path, i), path, None, "sentence1", i)
        s2 = _text(_json_field(rec, ("sentence2",), path, i), path, None, "sentence2", i)
        score = parse_score(_json_field(rec, ("labels", "real-label"), path, i), path, None,
                       "labels.real-label", i)
        binary = _json_field(rec, ("labels", "binary-label"), path, i)
        if binary not in (0, 1) or isinstance(binary, bool):
            raise DatasetFormatError(path, None, f"'labels.binary-label' {binary!r} is not 0 or 1", i)
        if binary != int(score >= 3.0):  # KLUE's definition; a flipped label would skew F1 silently
            raise DatasetFormatError(path, None, f"'labels.binary-label' {binary} disagrees with "
                                     f"'labels.real-label' {score} (binary = real-label >= 3)", i)
        yield STSExample(s1, s2, score, int(binary))


def _parse_nli_columns(path: Path, columns: Sequence[str]) -> Iterator[NLIExample]:
    for line, f in _iter_tsv(path, columns, header=True):
        yield NLIExample(_text(f[0], path, line, columns[0]), _text(f[1], path, line, columns[1]),
                         _nli_label(f[2], path, line, columns[2]))


def _parse_klue_nli_json(path: Path) -> Iterator[NLIExample]:
    for i, rec in enumerate(_load_json_list(path), 1):
        yield NLIExample(
            _text(_json_field(rec, ("premise",), path, i), path, None, "premise", i),
            _text(_json_field(rec, ("hypothesis",), path, i), path, None, "hypothesis", i),
            _nli_label(_json_field(rec, ("gold_label",), path, i), path, None, "gold_label", i))


def _parse_group_tsv(path: Path, columns: Sequence[str], group_col: str) -> Iterator[Tuple[str, str]]:
    g = columns.index(group_col)
    for line, f in _iter_tsv(path, columns, header=True):
        yield _text(f[g], path, line, group_col), _text(f[-1], path, line, columns[-1])


def _parse_pair_tsv(path: Path, columns: Sequence[str], a: int, b: int,
                    header: bool) -> Iterator[Tuple[str, str]]:
    for line, f in _iter_tsv(path, columns, header=header):
        yield _text(f[a], path, line, columns[a]), _text(f[b], path, line, columns[b])


# Raw-text parsers yield a tuple of the row's sentences; a blank sentence is a row of a
# raw corpus (counted) but not a sentence (`load_raw_sentences` drops it).

def _parse_lines(path: Path) -> Iterator[Tuple[str]]:
    for _, text in iter_lines(path):
        yield (text,)


def _parse_csv_lines(path: Path) -> Iterator[Tuple[str]]:
    """One CSV-quoted field per line (korean-hate-speech news_title files)."""
    for line, text in iter_lines(path):
        try:
            fields = next(csv.reader([text])) if text else [""]
        except csv.Error as e:
            raise DatasetFormatError(path, line, f"CSV error: {e}") from None
        if len(fields) != 1:
            raise DatasetFormatError(path, line, f"expected 1 CSV field, got {len(fields)}")
        yield (fields[0],)


def _parse_chatbot_csv(path: Path) -> Iterator[Tuple[str, str]]:
    for _, f in _iter_csv(path, ("Q", "A", "label")):
        yield f[0], f[1]


_PARSERS: Dict[str, Callable[[Path], Iterator[Any]]] = {
    "korsts_tsv": _parse_korsts_tsv,
    "klue_sts_csv": _parse_klue_sts_csv,
    "klue_sts_json": _parse_klue_sts_json,
    "nli_tsv": lambda p: _parse_nli_columns(p, ("premise", "hypothesis", "label")),
    "xnli_tsv": lambda p: _parse_nli_columns(p, ("sentence1", "sentence2", "gold_label")),
    "klue_nli_json": _parse_klue_nli_json,
    "parakqc_tsv": lambda p: _parse_group_tsv(p, ("group", "col1", "col2", "sentence"), "group"),
    "stylekqc_tsv": lambda p: _parse_group_tsv(p, ("split", "group", "topic", "act", "sentence"),
                                               "group"),
    "sae4k_tsv": lambda p: _parse_pair_tsv(p, ("utterance", "argument", "label"), 0, 1, header=False),
    "backtranslation_tsv": lambda p: _parse_pair_tsv(
        p, ("row", "field", "original", "backtranslated"), 2, 3, header=True),
    "lines": _parse_lines,
    "csv_lines": _parse_csv_lines,
    "chatbot_csv": _parse_chatbot_csv,
}


def _read_rows(info: DatasetInfo, data_dir: Optional[PathLike]) -> Tuple[Path, Iterator[Any]]:
    path = dataset_path(info.name, data_dir)
    return path, _PARSERS[info.fmt](path)


def _check_count(info: DatasetInfo, path: Path, n: int) -> None:
    if n != info.rows:
        warnings.warn(f"{info.name}: read {n} rows from {path}, the registry expects {info.rows}",
                      DatasetCountWarning, stacklevel=3)


def _load_all(name: str, kind: str, data_dir: Optional[PathLike]) -> List[Any]:
    info = get_dataset_info(name, kind)
    path, rows = _read_rows(info, data_dir)
    records = list(rows)
    _check_count(info, path, len(records))
    return records


# --------------------------------------------------------------------------- public loaders


def load_sts(name: str, data_dir: Optional[PathLike] = None) -> List[STSExample]:
    """STS pairs of "korsts-train|dev|test" or "klue-sts-train|dev".

    `score` is the gold similarity in [0, 5] (KLUE-STS: "real-label"); `binary_label` is
    KLUE-STS's binary label (train: derived as real-label >= 3), None for KorSTS.
    """
    return _load_all(name, "sts", data_dir)


def load_nli(name: str, data_dir: Optional[PathLike] = None) -> List[NLIExample]:
    """NLI pairs of "klue-nli-train|dev" or "xnli-ko-dev|test"."""
    return _load_all(name, "nli", data_dir)


def load_paraphrase_groups(name: str, data_dir: Optional[PathLike] = None) -> List[List[str]]:
    """Paraphrase groups ("parakqc", "stylekqc"): sentences of each group, groups in order
    of first appearance, sentences in file order."""
    groups: Dict[str, List[str]] = {}
    for group, sentence in _load_all(name, "paraphrase_groups", data_dir):
        groups.setdefault(group, []).append(sentence)
    return list(groups.values())


def load_pairs(name: str, data_dir: Optional[PathLike] = None) -> List[Tuple[str, str]]:
    """Weak paraphrase pairs: "sae4k" (utterance, intent argument) or
    "klue-nli-backtranslations" (original, back-translation)."""
    return _load_all(name, "pairs", data_dir)


def load_raw_sentences(name: str, limit: Optional[int] = None,
                       data_dir: Optional[PathLike] = None) -> List[str]:
    """Raw sentences ("nsmc-reviews", "3i4k", "chatbot-qa", "news-titles", "news-comments"),
    at most `limit` of them (read lazily, so a small limit is cheap).

    "chatbot-qa" gives the question then the answer of each row (2 sentences per row);
    "news-titles" are unquoted from their one-field CSV lines.  Blank sentences (the
    news-titles file has one empty title, line 1306) are skipped; the row-count check
    counts file rows, not sentences.
    """
    info = get_dataset_info(name, "raw")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path, rows = _read_rows(info, data_dir)
    sentences: List[str] = []
    n_rows = 0
    for row in rows:
        n_rows += 1
        sentences.extend(s for s in row if s.strip())
        if limit is not None and len(sentences) >= limit:
            return sentences[:limit]
    _check_count(info, path, n_rows)
    return sentences


def count_rows(name: str, data_dir: Optional[PathLike] = None) -> int:
    """Number of data rows of dataset `name` (header excluded), after full validation."""
    info = get_dataset_info(name)
    _, rows = _read_rows(info, data_dir)
    return sum(1 for _ in rows)


def dataset_stats(names: Optional[Iterable[str]] = None, data_dir: Optional[PathLike] = None,
                  check_sha256: bool = False) -> Dict[str, Dict[str, Any]]:
    """Row counts of the datasets present in the data directory (never downloads).

    Returns ``{name: {"path", "present", "rows", "expected_rows", "rows_ok"[, "sha256_ok"]}}``;
    "rows" is None for a missing file.
    """
    base = resolve_data_dir(data_dir)
    stats: Dict[str, Dict[str, Any]] = {}
    for name in (list(names) if names is not None else list(DATASETS)):
        info = get_dataset_info(name)
        path = base / info.path
        entry: Dict[str, Any] = {"path": str(path), "present": path.is_file(), "rows": None,
                                 "expected_rows": info.rows, "rows_ok": False}
        if entry["present"]:
            entry["rows"] = sum(1 for _ in _PARSERS[info.fmt](path))
            entry["rows_ok"] = entry["rows"] == info.rows
            if check_sha256:
                entry["sha256_ok"] = sha256_file(path) == info.sha256
        stats[name] = entry
    return stats


def nli_triplets(examples: Iterable[NLIExample]) -> List[Tuple[str, str, str]]:
    """(anchor, positive, hard_negative) triplets for contrastive training.

    Per premise (in order of first appearance): one triplet per entailment hypothesis,
    paired with the premise's contradiction hypotheses in turn (cycling when there are
    fewer); premises without both an entailment and a contradiction are skipped.
    """
    by_premise: Dict[str, Dict[str, List[str]]] = {}
    for ex in examples:
        slots = by_premise.setdefault(ex.premise, {"entailment": [], "contradiction": []})
        if ex.label in slots:
            slots[ex.label].append(ex.hypothesis)
    triplets = []
    for premise, slots in by_premise.items():
        positives, negatives = slots["entailment"], slots["contradiction"]
        if positives and negatives:
            triplets += [(premise, pos, negatives[i % len(negatives)]) for i, pos in enumerate(positives)]
    return triplets


# --------------------------------------------------------------------------- numpy / tf.data


def _str_array(values: Iterable[str]) -> np.ndarray:
    out = np.empty(0, dtype=object)
    items = list(values)
    if items:
        out = np.empty(len(items), dtype=object)
        out[:] = items
    return out


def sts_to_numpy(examples: Sequence[STSExample]) -> Dict[str, np.ndarray]:
    """{"sentence1", "sentence2": object [n] (str), "score": float32 [n],
    "binary_label": int32 [n] (-1 where None)}."""
    return {
        "sentence1": _str_array(e.sentence1 for e in examples),
        "sentence2": _str_array(e.sentence2 for e in examples),
        "score": np.asarray([e.score for e in examples], dtype=np.float32).reshape(-1),
        "binary_label": np.asarray([-1 if e.binary_label is None else e.binary_label
                                    for e in examples], dtype=np.int32).reshape(-1),
    }


def nli_to_numpy(examples: Sequence[NLIExample]) -> Dict[str, np.ndarray]:
    """{"premise", "hypothesis": object [n] (str), "label": int32 [n] (index in NLI_LABELS)}."""
    return {
        "premise": _str_array(e.premise for e in examples),
        "hypothesis": _str_array(e.hypothesis for e in examples),
        "label": np.asarray([NLI_LABELS.index(e.label) for e in examples], dtype=np.int32).reshape(-1),
    }


def triplets_to_numpy(triplets: Sequence[Tuple[str, str, str]]) -> Dict[str, np.ndarray]:
    """{"anchor", "positive", "negative": object [n] (str)}."""
    return {key: _str_array(t[i] for t in triplets)
            for i, key in enumerate(("anchor", "positive", "negative"))}


def pairs_to_numpy(pairs: Sequence[Tuple[str, str]]) -> Dict[str, np.ndarray]:
    """{"text_a", "text_b": object [n] (str)}."""
    return {key: _str_array(p[i] for p in pairs) for i, key in enumerate(("text_a", "text_b"))}


def groups_to_numpy(groups: Sequence[Sequence[str]]) -> np.ndarray:
    """Equal-sized paraphrase groups as an object array [n_groups, group_size] (str)."""
    sizes = {len(g) for g in groups}
    if len(sizes) > 1:
        raise ValueError(f"groups have different sizes {sorted(sizes)}; cannot stack them")
    out = np.empty((len(groups), sizes.pop() if sizes else 0), dtype=object)
    for i, g in enumerate(groups):
        out[i, :] = list(g)
    return out


def make_tf_dataset(columns: Mapping[str, np.ndarray], batch_size: int, shuffle: bool = False,
                    seed: Optional[int] = None, drop_remainder: bool = False, repeat: bool = False,
                    shuffle_buffer: Optional[int] = None):
    """A `tf.data.Dataset` of dicts of batched tensors from equal-length numpy columns.

    `columns` comes from `sts_to_numpy`, `nli_to_numpy`, `triplets_to_numpy`, ... : object
    (str) arrays become tf.string, numeric arrays keep their dtype; an element has the
    column's shape with a leading batch dimension [batch_size, ...] (the last batch smaller
    unless `drop_remainder`).  Shuffling (whole dataset by default) reshuffles each epoch.
    """
    import tensorflow as tf  # lazy: keep `tfkosent.data` import-light

    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    lengths = {k: len(v) for k, v in columns.items()}
    if not lengths or len(set(lengths.values())) != 1:
        raise ValueError(f"columns must be non-empty and equally long, got lengths {lengths}")
    tensors = {}
    for key, values in columns.items():
        values = np.asarray(values)
        is_text = values.dtype == object or values.dtype.kind in "US"
        tensors[key] = tf.constant(values, dtype=tf.string if is_text else None)
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        n = next(iter(lengths.values()))
        ds = ds.shuffle(shuffle_buffer or n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
