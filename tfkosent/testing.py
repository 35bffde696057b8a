"""Tiny models and vocabularies for tests, notebooks run in CI and smoke checks.

Nothing here is a useful model: the SentencePiece vocabulary is trained on a
few hundred generated Korean sentences and the encoder weights are random.
"""

from __future__ import annotations

import io
import os
import random
from typing import List, Optional

KOREAN_SUBJECTS = ["나는", "그녀는", "우리는", "학생들은", "고양이가", "강아지가", "아이들이", "선생님이",
                   "한 남자가", "한 여자가", "친구가", "엄마가"]
KOREAN_OBJECTS = ["밥을", "사과를", "책을", "음악을", "영화를", "축구를", "편지를", "커피를", "그림을", "노래를"]
KOREAN_VERBS = ["먹는다", "읽는다", "듣는다", "본다", "한다", "쓴다", "마신다", "그린다", "부른다", "좋아한다"]
KOREAN_PLACES = ["집에서", "학교에서", "공원에서", "카페에서", "도서관에서", "바다에서"]


def korean_sentences(n: int = 400, seed: int = 0) -> List[str]:
    """Generated Korean sentences (subject, place, object, verb), deterministic."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [rng.choice(KOREAN_SUBJECTS)]
        if rng.random() < 0.6:
            parts.append(rng.choice(KOREAN_PLACES))
        parts += [rng.choice(KOREAN_OBJECTS), rng.choice(KOREAN_VERBS)]
        out.append(" ".join(parts) + rng.choice([".", "", "!", "?"]))
    return out


def train_sentencepiece(sentences: List[str], vocab_size: int = 300, model_type: str = "unigram",
                        bert_specials: bool = True) -> bytes:
    """Trains a tiny SentencePiece model; returns the serialized ModelProto.

    bert_specials: ids 0..3 are [PAD] [UNK] [CLS] [SEP] and [MASK] is 4;
    otherwise the XLM-R layout <s>=0 <pad>=1 </s>=2 <unk>=3 and <mask>.
    """
    import sentencepiece as spm

    model = io.BytesIO()
    if bert_specials:
        ids = dict(pad_id=0, unk_id=1, bos_id=2, eos_id=3, pad_piece="[PAD]", unk_piece="[UNK]",
                   bos_piece="[CLS]", eos_piece="[SEP]", user_defined_symbols=["[MASK]"])
    else:
        ids = dict(bos_id=0, pad_id=1, eos_id=2, unk_id=3, bos_piece="<s>", pad_piece="<pad>",
                   eos_piece="</s>", unk_piece="<unk>", user_defined_symbols=["<mask>"])
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
        model_type=model_type, character_coverage=1.0, num_threads=1, minloglevel=2,
        hard_vocab_limit=False, **ids)
    return model.getvalue()


def tiny_model_config(vocab_size: int, pooling: str = "mean", packing: str = "bert",
                      num_layers: int = 2, hidden_size: int = 32, dropout_rate: float = 0.1,
                      seq_length: int = 64):
    """A ModelConfig for a 2-layer, hidden-32 encoder over a tiny vocabulary."""
    from tfkosent.config import EncoderConfig, ModelConfig, PreprocessConfig

    if packing == "bert":
        tokens = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
                      mask_token="[MASK]")
        position_offset, type_vocab = 0, 2
    else:
        tokens = dict(cls_token="<s>", sep_token="</s>", pad_token="<pad>", unk_token="<unk>",
                      mask_token="<mask>")
        position_offset, type_vocab = 2, 1
    encoder = EncoderConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                            num_heads=4, intermediate_size=hidden_size * 2,
                            max_position_embeddings=seq_length + position_offset,
                            type_vocab_size=type_vocab, position_offset=position_offset,
                            dropout_rate=dropout_rate, attention_dropout_rate=dropout_rate,
                            pooling=pooling)
    preprocess = PreprocessConfig(tokenizer_type="sentencepiece", packing=packing,
                                  seq_length=seq_length, **tokens)
    return ModelConfig(encoder=encoder, preprocess=preprocess,
                       metadata={"name": "tiny-random", "trained": False,
                                 "note": "random weights for tests; scores are meaningless"})


def write_tiny_model(out_dir: str, seed: int = 0, pooling: str = "mean", packing: str = "bert",
                     sentences: Optional[List[str]] = None, **config_kwargs) -> str:
    """Writes a tiny random model directory (config.json, tokenizer.model, weights.npz)."""
    from tfkosent.model_dir import save_model_dir
    from tfkosent.layers.transformer import TransformerEncoder
    import keras

    proto = train_sentencepiece(sentences or korean_sentences(400, seed),
                                bert_specials=(packing == "bert"))
    import tensorflow_text as tf_text
    vocab_size = int(tf_text.SentencepieceTokenizer(model=proto).vocab_size())
    config = tiny_model_config(vocab_size, pooling=pooling, packing=packing, **config_kwargs)
    keras.utils.set_random_seed(seed)
    encoder = TransformerEncoder(config.encoder)
    encoder.build()
    save_model_dir(out_dir, config, encoder.get_weight_dict(), sentencepiece_proto=proto)
    return os.path.abspath(out_dir)
