"""Reading and writing tfkosent model directories (format in `tfkosent.config`).

Writes are atomic: everything goes to a temporary sibling directory that is
renamed into place only when complete, so a crash never leaves half a model.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
import zipfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from tfkosent.config import ConfigError, ModelConfig

CONFIG_FILE = "config.json"
SENTENCEPIECE_FILE = "tokenizer.model"
WORDPIECE_FILE = "vocab.txt"
WEIGHTS_FILE = "weights.npz"
# What `tfkosent export` writes at the top of an export directory (tfkosent.export), and what
# marks a directory as one (SentenceEncoder.load, the Beam handler, convert --overwrite, ...).
EXPORT_INFO_FILE = "tfkosent_export.json"
TFLITE_INFO_FILE = "tflite_export.json"   # what `tfkosent export-tflite` writes (tflite.py)


def is_model_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) and os.path.isfile(
        os.path.join(path, WEIGHTS_FILE))


def refuse_to_replace_foreign(out_dir: str, marker: str, what: str) -> None:
    """FileExistsError unless `out_dir` is absent or holds `marker` (a file this kind of output
    writes): `--overwrite` replaces a previous output of the same command, never a directory
    it did not write (e.g. a repository's `export/` folder of scripts)."""
    if os.path.exists(out_dir) and not os.path.exists(os.path.join(out_dir, marker)):
        raise FileExistsError(f"{out_dir} exists and is not {what} (no {marker}): refusing to replace "
                              f"it; choose another output directory")


def check_replaceable(out_dir: str, marker: str, what: str, overwrite: bool) -> None:
    """Before any work: FileExistsError when `out_dir` is not `what` written earlier (no
    `marker`), whatever `overwrite` says, or is one and `overwrite` is False. Foreign
    directories are refused either way, so that error does not suggest --overwrite."""
    refuse_to_replace_foreign(out_dir, marker, what)
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"{os.path.abspath(out_dir)} already exists: {what} written earlier "
                              f"(pass overwrite=True / --overwrite to replace it)")


def atomic_directory(out_dir: str, overwrite: bool = False):
    """Context manager yielding a temp dir that replaces `out_dir` on success."""
    return _AtomicDirectory(out_dir, overwrite)


class _AtomicDirectory:
    def __init__(self, out_dir: str, overwrite: bool):
        self.out_dir = os.path.abspath(out_dir)
        self.overwrite = overwrite

    def __enter__(self) -> str:
        if os.path.exists(self.out_dir) and not self.overwrite:
            raise FileExistsError(f"{self.out_dir} already exists (pass overwrite=True / --overwrite)")
        parent = os.path.dirname(self.out_dir)
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.out_dir)}.tmp-", dir=parent)
        # mkdtemp creates mode 0700; the result must be as readable as any new directory
        # (a TF Serving process often runs as another user).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        old = None
        if os.path.exists(self.out_dir):
            old = self.tmp + ".old"
            os.replace(self.out_dir, old)
        os.replace(self.tmp, self.out_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return False


def remove_interrupted_writes(directory: str, names: Sequence[str]) -> List[str]:
    """Cleans up after atomic writes of `names` in `directory` that a kill interrupted.

    It removes the `.NAME.tmp-*` directories of `atomic_directory` and the `.NAME.*.tmp` files
    of `atomic_write_bytes`. When NAME itself is missing and the kill fell between
    `atomic_directory`'s two renames, the previous NAME (`.NAME.tmp-*.old`) is put back.
    Returns the paths removed or restored.

    Nothing reads these leftovers as outputs, but each killed write left one behind, up to a
    whole model or export. Call this only where no other process is writing these names, such
    as a run's own directory when it starts or resumes.
    """
    touched = []
    for name in names:
        target = os.path.join(directory, name)
        olds = sorted(glob.glob(os.path.join(directory, f".{glob.escape(name)}.tmp-*.old")))
        if olds and not os.path.exists(target):
            os.replace(olds[-1], target)
            touched.append(target)
        for path in glob.glob(os.path.join(directory, f".{glob.escape(name)}.tmp-*")) + \
                glob.glob(os.path.join(directory, f".{glob.escape(name)}.*.tmp")):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.remove(path)
            touched.append(path)
    return touched


def save_model_dir(out_dir: str, config: ModelConfig, weights: Dict[str, np.ndarray],
                   sentencepiece_proto: Optional[bytes] = None,
                   wordpiece_vocab: Optional[List[str]] = None, dtype: str = "float32",
                   overwrite: bool = True) -> str:
    """Writes config.json, the vocabulary and weights.npz (in `dtype`) atomically."""
    if (sentencepiece_proto is None) == (wordpiece_vocab is None):
        raise ValueError("give exactly one of sentencepiece_proto or wordpiece_vocab")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        with open(os.path.join(tmp, CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(config.to_dict(), f, ensure_ascii=False, indent=2)
            f.write("\n")
        if sentencepiece_proto is not None:
            with open(os.path.join(tmp, SENTENCEPIECE_FILE), "wb") as f:
                f.write(sentencepiece_proto)
        else:
            with open(os.path.join(tmp, WORDPIECE_FILE), "w", encoding="utf-8") as f:
                f.write("\n".join(wordpiece_vocab) + "\n")
        np.savez(os.path.join(tmp, WEIGHTS_FILE),
                 **{k: np.asarray(v, dtype=dtype) for k, v in weights.items()})
    return os.path.abspath(out_dir)


class ModelFiles:
    """The loaded contents of a model directory."""

    def __init__(self, path: str, config: ModelConfig, weights: Dict[str, np.ndarray],
                 sentencepiece_proto: Optional[bytes], wordpiece_vocab: Optional[List[str]]):
        self.path = path
        self.config = config
        self.weights = weights
        self.sentencepiece_proto = sentencepiece_proto
        self.wordpiece_vocab = wordpiece_vocab

    @property
    def weights_path(self) -> str:
        return os.path.join(self.path, WEIGHTS_FILE)

    def build_preprocessor(self, seq_length: Optional[int] = None, **kwargs):
        """The model's `Preprocessor`; seq_length (default: the config's) is capped at what the
        position table allows."""
        from tfkosent.layers.preprocessor import Preprocessor

        c = self.config
        seq_length = min(seq_length or c.preprocess.seq_length, c.encoder.max_seq_length)
        return Preprocessor.from_config_and_vocab(c.preprocess, self.sentencepiece_proto,
                                                  self.wordpiece_vocab, seq_length=seq_length, **kwargs)

    def build_encoder(self, weights: Optional[Dict[str, np.ndarray]] = None):
        """The model's `TransformerEncoder` with its weights (or `weights`) assigned."""
        from tfkosent.layers.transformer import TransformerEncoder

        return TransformerEncoder.from_weights(self.config.encoder,
                                               self.weights if weights is None else weights,
                                               source=self.weights_path)


def check_sentencepiece_model(path: str, proto: bytes) -> None:
    """ConfigError naming `path` unless `proto` (its bytes) is a serialized SentencePiece model:
    an empty, truncated or foreign file otherwise fails later inside TensorFlow's tokenizer op,
    with an error that names no file."""
    import sentencepiece as spm

    if not proto:
        raise ConfigError(f"{path}: not a SentencePiece model (the file is empty)")
    try:
        spm.SentencePieceProcessor(model_proto=proto)
    except RuntimeError as e:  # "Internal: src/sentencepiece_processor.cc(237) [...]"
        reason = str(e).strip()
        reason = ("its bytes do not parse as one" if "ParseFromArray" in reason
                  else re.sub(r"^\w+: (src/\S+\(\d+\) )?", "", reason))
        raise ConfigError(f"{path}: not a SentencePiece model ({reason})") from e


def read_tokenizer_files(directory: str, tokenizer_type: str):
    """(SentencePiece proto bytes or None, WordPiece vocabulary list or None): the tokenizer
    file that `tokenizer_type` names in `directory` (a model directory, or a TFLite export,
    which copies it under the same name). FileNotFoundError / ConfigError name the file."""
    if tokenizer_type == "sentencepiece":
        sp_path = os.path.join(directory, SENTENCEPIECE_FILE)
        if not os.path.isfile(sp_path):
            raise FileNotFoundError(f"{sp_path}: missing (preprocess.tokenizer_type is sentencepiece)")
        with open(sp_path, "rb") as f:
            sp_proto = f.read()
        check_sentencepiece_model(sp_path, sp_proto)
        return sp_proto, None
    vocab_path = os.path.join(directory, WORDPIECE_FILE)
    if not os.path.isfile(vocab_path):
        raise FileNotFoundError(f"{vocab_path}: missing (preprocess.tokenizer_type is wordpiece)")
    with open(vocab_path, encoding="utf-8") as f:
        vocab = [line.rstrip("\n") for line in f]
    while vocab and vocab[-1] == "":
        vocab.pop()
    return None, vocab


def load_model_dir(path: str) -> ModelFiles:
    """Reads a model directory; errors name the file and the problem. "default" is the
    default model (`tfkosent.sentence_encoder.default_model_path`), as for `--model default`
    and `SentenceEncoder.load("default")`; a directory of that name is "./default"."""
    from tfkosent.sentence_encoder import resolve_default_model  # TF-free import

    path = resolve_default_model(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such model directory")
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        for marker, kind in ((EXPORT_INFO_FILE, "a tfkosent export (SavedModels)"),
                             (TFLITE_INFO_FILE, "a tfkosent TFLite export")):
            if os.path.isfile(os.path.join(path, marker)):
                raise FileNotFoundError(f"{path} is {kind}, not a model directory (config.json + "
                                        f"weights.npz); pass the model directory it was exported from")
        raise FileNotFoundError(f"{config_path}: missing (not a tfkosent model directory)")
    config = ModelConfig.load(config_path)
    sp_proto, vocab = read_tokenizer_files(path, config.preprocess.tokenizer_type)
    weights_path = os.path.join(path, WEIGHTS_FILE)
    try:
        with np.load(weights_path) as npz:
            weights = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{weights_path}: missing") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ConfigError(f"{weights_path}: unreadable or truncated ({e})") from e
    return ModelFiles(os.path.abspath(path), config, weights, sp_proto, vocab)
