"""`tfkosent convert hf`: tiny random BERT / RoBERTa / XLM-R / DistilBERT checkpoints.

Each model is built locally with transformers (hidden 32, 2 layers, 4 heads)
with a tokenizer trained here on generated Korean + mixed-script text, saved
like a Hub download, converted, and compared with the PyTorch model and the
Hugging Face tokenizer: identical token ids (single sentences and pairs),
`sequence_output` within 1e-4 of `last_hidden_state`, the pooler output, the
bad-input errors, and the CLI path through the exporter.
"""

import collections
import json
import os
import random

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

import tensorflow as tf  # noqa: E402

from tfkosent import testing  # noqa: E402
from tfkosent.convert.hf import HFConversionError, convert_hf, convert_tokenizer  # noqa: E402
from tfkosent.layers.preprocessor import Preprocessor  # noqa: E402
from tfkosent.layers.transformer import TransformerEncoder  # noqa: E402
from tfkosent.model_dir import load_model_dir  # noqa: E402

pytestmark = pytest.mark.conversion

MAX_DIFF = 1e-4
MIXED = ["Hello World! 안녕하세요, KLUE-RoBERTa 모델입니다.", "The Quick Brown Fox 2024년 3월 15일.",
         "😀 이모지와 漢字 中文, Ελληνικά ΟΔΟΣ", "  여러   칸의\t탭과\n줄바꿈  ", "café naïve ÀÉÎ 악센트",
         "ＡＢＣ 전각 ①② ㈜ ㎏", "가격은 ₩10,000원입니다!!", "e-mail: user@example.com (테스트)",
         "\u3000전각공백\u00a0nbsp\u200b폭없음", "", "   ", "ㅋㅋㅋ ㅎㅎ 대박~~", "x" * 120 + " 긴단어" * 3,
         "가" * 150, "Ünïcödé ß ǅ İstanbul"]
PAIRS = [("나는 밥을 먹는다.", "Hello 세계!"), ("고양이가 책을 읽는다", ""), ("😀 漢字", "우리는 공원에서 축구를 한다" * 3),
         ("", "엄마가 커피를 마신다.")]


def _corpus():
    english = ["The quick brown fox jumps over the lazy dog.", "Hello World, this is English text 123.",
               "Machine Learning with TensorFlow and PyTorch", "KLUE RoBERTa BERT KoBERT DistilBERT 2024"]
    return testing.korean_sentences(1500, seed=3) + (english + MIXED[:9]) * 10


def _model_kwargs():
    return dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _wordpiece_vocab(specials):
    """A small WordPiece vocab.txt (list) from Korean + Latin text, split like BERT."""
    from tokenizers import normalizers, pre_tokenizers

    norm = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    pre = pre_tokenizers.BertPreTokenizer()
    words = collections.Counter(w for s in _corpus() for w, _ in pre.pre_tokenize_str(norm.normalize_str(s)))
    chars = sorted({c for w in words for c in w} - {"😀", "漢"})  # some characters stay unknown
    frequent = [w for w, _ in words.most_common(150) if len(w) > 1]
    prefixes = sorted({w[:2] for w in words if len(w) > 2})[:60]
    suffixes = sorted({"##" + w[-2:] for w in words if len(w) > 2})[:60]
    vocab = list(specials) + frequent + prefixes + chars + ["##" + c for c in chars] + suffixes
    return list(dict.fromkeys(vocab))


def _sp_model(layout, vocab_size=400):
    """A unigram SentencePiece model: layout 'xlmr' (<unk> <s> </s> first) or 'bert' ([PAD] [UNK] [CLS] ...)."""
    if layout == "bert":
        return testing.train_sentencepiece(_corpus(), vocab_size=vocab_size)
    import io

    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()), model_writer=out, vocab_size=vocab_size, model_type="unigram",
        character_coverage=0.9995, num_threads=1, minloglevel=2, hard_vocab_limit=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    return out.getvalue()


def _save(model, path, safetensors=True):
    model.eval()
    model.save_pretrained(path)
    if not safetensors:  # an older Hub checkpoint: pytorch_model.bin (transformers 5 writes safetensors)
        os.remove(os.path.join(path, "model.safetensors"))
        torch.save(model.state_dict(), os.path.join(path, "pytorch_model.bin"))
    return model


def _saved_wordpiece_tokenizer(path, vocab, tokenizer_class):
    """`path` holding `tokenizer_class` (cased) over `vocab`, as its save_pretrained writes it
    (tokenizer.json + tokenizer_config.json, as on the Hub)."""
    os.makedirs(path)
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    tok = tokenizer_class.from_pretrained(path, do_lower_case=False)
    os.remove(os.path.join(path, "vocab.txt"))
    tok.save_pretrained(path)
    return path


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)


class HFModel:
    """A saved Hugging Face directory plus its in-memory PyTorch encoder and tokenizer."""

    def __init__(self, path, encoder, tokenizer, zero_type_ids=False, pooled=True, differs=None):
        self.path, self.encoder, self.tokenizer = path, encoder, tokenizer
        self.zero_type_ids, self.pooled = zero_type_ids, pooled
        self.differs = differs or (lambda text: False)  # texts with a documented difference

    def ids(self, texts):
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def pack(self, a, b=None, length=48):
        enc = self.tokenizer(a, b, padding="max_length", truncation=True, max_length=length)
        types = enc.get("token_type_ids", [[0] * length for _ in a])
        return (np.array(enc["input_ids"]), np.array(types), np.array(enc["attention_mask"]))

    def forward(self, ids, types, mask):
        kwargs = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
        if self.encoder.config.model_type != "distilbert":
            kwargs["token_type_ids"] = torch.tensor(np.zeros_like(types) if self.zero_type_ids else types)
        with torch.no_grad():
            out = self.encoder(**kwargs)
        pooled = out.pooler_output.numpy() if self.pooled else None
        return out.last_hidden_state.numpy(), pooled


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """The five tiny checkpoints, saved the way Hub repositories are laid out."""
    return _build_hf_models(tmp_path_factory.mktemp("hf"))


def _build_hf_models(root):
    torch.manual_seed(0)
    models = {}

    # BERT (klue/bert-base style): BertForPreTraining ("bert." prefix + heads), safetensors,
    # tokenizer saved by transformers (tokenizer.json + tokenizer_config.json).
    bert_specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = _wordpiece_vocab(bert_specials)
    path = _saved_wordpiece_tokenizer(str(root / "bert"), vocab, transformers.BertTokenizer)
    cfg = transformers.BertConfig(vocab_size=len(vocab), max_position_embeddings=64, **_model_kwargs())
    model = _save(transformers.BertForPreTraining(cfg), path)
    models["bert"] = HFModel(path, model.bert, transformers.AutoTokenizer.from_pretrained(path))

    # KoELECTRA style: ElectraForPreTraining (the discriminator: "electra." prefix + its
    # discriminator_predictions head, no pooler), ElectraTokenizer's WordPiece vocab.txt.
    path = _saved_wordpiece_tokenizer(str(root / "electra"), vocab, transformers.ElectraTokenizer)
    cfg = transformers.ElectraConfig(vocab_size=len(vocab), max_position_embeddings=64, embedding_size=32,
                                     **_model_kwargs())
    model = _save(transformers.ElectraForPreTraining(cfg), path)
    models["electra"] = HFModel(path, model.electra, transformers.AutoTokenizer.from_pretrained(path),
                                pooled=False)

    # KLUE-RoBERTa style: RobertaModel + BertTokenizer vocab.txt ([CLS]=0 [PAD]=1 [SEP]=2 [UNK]=3),
    # pytorch_model.bin, no tokenizer.json.
    klue_specials = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]
    vocab = _wordpiece_vocab(klue_specials)
    path = str(root / "klue_roberta")
    cfg = transformers.RobertaConfig(vocab_size=len(vocab), max_position_embeddings=66, pad_token_id=1,
                                     bos_token_id=0, eos_token_id=2, type_vocab_size=1, **_model_kwargs())
    model = _save(transformers.RobertaModel(cfg), path, safetensors=False)
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    _write_json(os.path.join(path, "tokenizer_config.json"),
                {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "model_max_length": 64})
    models["klue_roberta"] = HFModel(path, model, transformers.AutoTokenizer.from_pretrained(path),
                                     zero_type_ids=True)

    # XLM-R: sentencepiece.bpe.model (fairseq offset) + tokenizer.json, safetensors, with a
    # sentence-transformers mean-pooling config.
    path = str(root / "xlmr")
    os.makedirs(path)
    with open(os.path.join(path, "sentencepiece.bpe.model"), "wb") as f:
        f.write(_sp_model("xlmr"))
    tok = transformers.XLMRobertaTokenizer.from_pretrained(path)
    tok.save_pretrained(path)
    cfg = transformers.XLMRobertaConfig(vocab_size=len(tok), max_position_embeddings=66, pad_token_id=1,
                                        type_vocab_size=1, **_model_kwargs())
    model = _save(transformers.XLMRobertaModel(cfg, add_pooling_layer=False), path)
    os.makedirs(os.path.join(path, "1_Pooling"))
    _write_json(os.path.join(path, "1_Pooling", "config.json"),
                {"word_embedding_dimension": 32, "pooling_mode_cls_token": False,
                 "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False})
    _write_json(os.path.join(path, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    models["xlmr"] = HFModel(path, model, transformers.AutoTokenizer.from_pretrained(path), pooled=False)

    # DistilKoBERT style: DistilBertModel + SentencePiece model + vocab.txt re-numbering its pieces.
    path = str(root / "distilkobert")
    proto = _sp_model("bert")
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=proto)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    rest = [p for p in pieces if p not in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    random.Random(0).shuffle(rest)
    vocab = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"] + rest + ["[unused0]"]
    cfg = transformers.DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                        max_position_embeddings=64, pad_token_id=1, dropout=0.0,
                                        attention_dropout=0.0)
    model = _save(transformers.DistilBertModel(cfg), path)
    with open(os.path.join(path, "tokenizer_78b3253a26.model"), "wb") as f:
        f.write(proto)
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    _write_json(os.path.join(path, "tokenizer_config.json"), {"do_lower_case": False})
    models["distilkobert"] = HFModel(path, model, KoBertReference(proto, vocab), pooled=False,
                                     differs=KoBertReference.strips_accents)
    return models


class KoBertReference:
    """monologg's KoBertTokenizer (custom Hub code, not in transformers), re-implemented:
    XLNet-style preprocessing, SentencePiece pieces looked up in vocab.txt (unknown -> [UNK]),
    "[CLS] a [SEP] b [SEP]" with type ids 0/1."""

    def __init__(self, proto, vocab):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_proto=proto)
        self.index = {t: i for i, t in enumerate(vocab)}

    @staticmethod
    def preprocess(text):  # remove_space=True, keep_accents=False, do_lower_case=False
        import unicodedata

        text = " ".join(text.strip().split()).replace("``", '"').replace("''", '"')
        text = unicodedata.normalize("NFKD", text)
        return "".join(c for c in text if not unicodedata.combining(c))

    @classmethod
    def strips_accents(cls, text):
        """Known difference: keep_accents=False strips marks (ά -> α) before SentencePiece."""
        import unicodedata

        nfkc = lambda t: unicodedata.normalize("NFKC", " ".join(t.strip().split()))  # noqa: E731
        return nfkc(cls.preprocess(text)) != nfkc(text)

    def _ids(self, text):
        pieces = []
        for piece in self.sp.encode_as_pieces(self.preprocess(text)):
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():  # XLNet's "digit," rule
                cur = self.sp.encode_as_pieces(piece[:-1].replace("\u2581", ""))
                if piece[0] != "\u2581" and cur[0][0] == "\u2581":
                    cur = cur[1:] if len(cur[0]) == 1 else [cur[0][1:]] + cur[1:]
                pieces += cur + [piece[-1]]
            else:
                pieces.append(piece)
        return [self.index.get(p, self.index["[UNK]"]) for p in pieces]

    def __call__(self, a, b=None, add_special_tokens=True, padding=None, truncation=None, max_length=None):
        if isinstance(a, str):
            return {"input_ids": self._ids(a)}
        cls, sep, pad = self.index["[CLS]"], self.index["[SEP]"], self.index["[PAD]"]
        out = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        for i, text in enumerate(a):
            x, y = self._ids(text), self._ids(b[i]) if b is not None else None
            ids = [cls] + x + [sep] + (y + [sep] if y is not None else [])
            types = [0] * (len(x) + 2) + ([1] * (len(y) + 1) if y is not None else [])
            assert len(ids) <= max_length
            n = max_length - len(ids)
            out["input_ids"].append(ids + [pad] * n)
            out["token_type_ids"].append(types + [0] * n)
            out["attention_mask"].append([1] * len(ids) + [0] * n)
        return out


@pytest.fixture(scope="module")
def converted(hf_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    return {name: convert_hf(m.path, str(out / name)) for name, m in hf_models.items()}


def _tf_model(model_dir):
    files = load_model_dir(model_dir)
    pre = Preprocessor.from_config_and_vocab(files.config.preprocess, files.sentencepiece_proto,
                                             files.wordpiece_vocab)
    enc = TransformerEncoder(files.config.encoder)
    enc.build()
    enc.set_weight_dict(files.weights)
    return files.config, pre, enc


TEXTS = testing.korean_sentences(12, seed=7) + MIXED
ARCHS = ["bert", "electra", "klue_roberta", "xlmr", "distilkobert"]


@pytest.mark.parametrize("name", ARCHS)
def test_token_ids_match_hf_tokenizer(name, hf_models, converted):
    hf = hf_models[name]
    _, pre, _ = _tf_model(converted[name])
    texts = [t for t in TEXTS if not hf.differs(t)]
    assert len(texts) >= len(TEXTS) - 3
    ours = pre.tokenize(tf.constant(texts)).to_list()
    expected = hf.ids(texts)
    for text, got, want in zip(texts, ours, expected):
        assert got == want, f"{name}: {text!r}"
    assert sum(len(x) for x in expected) > 100
    # Pairs: packing pattern, type ids, mask and padding as the HF tokenizer builds them.
    a, b = [p[0] for p in PAIRS] + texts[:8], [p[1] for p in PAIRS] + texts[8:16]
    ids, types, mask = hf.pack(a, b)
    packed = pre.bert_pack_inputs([pre.tokenize(tf.constant(a)), pre.tokenize(tf.constant(b))],
                                  seq_length=48)
    np.testing.assert_array_equal(packed["input_word_ids"], ids)
    np.testing.assert_array_equal(packed["input_mask"], mask)
    np.testing.assert_array_equal(packed["input_type_ids"], types)


@pytest.mark.parametrize("name", ARCHS)
def test_encoder_outputs_match_pytorch(name, hf_models, converted):
    hf = hf_models[name]
    config, pre, enc = _tf_model(converted[name])
    a, b = TEXTS[:16], TEXTS[4:20]
    for ids, types, mask in (hf.pack(a), hf.pack(a, b)):
        want_seq, want_pooled = hf.forward(ids, types, mask)
        inputs = {"input_word_ids": tf.constant(ids, tf.int32), "input_mask": tf.constant(mask, tf.int32),
                  "input_type_ids": tf.constant(types, tf.int32)}
        got = enc(inputs, training=False)
        real = mask.astype(bool)
        diff = np.abs(got["sequence_output"].numpy() - want_seq)[real].max()
        assert diff <= MAX_DIFF, f"{name}: sequence_output differs by {diff:.2e}"
        pooled = got["pooled_output"].numpy()
        if config.encoder.pooling == "cls_dense_tanh":
            assert np.abs(pooled - want_pooled).max() <= MAX_DIFF
        elif config.encoder.pooling == "mean":
            m = mask[..., None].astype(np.float32)
            np.testing.assert_allclose(pooled, (want_seq * m).sum(1) / m.sum(1), atol=MAX_DIFF)
        else:
            np.testing.assert_allclose(pooled, want_seq[:, 0], atol=MAX_DIFF)


def test_converted_configs(converted):
    cfg = {name: load_model_dir(path).config for name, path in converted.items()}
    assert cfg["bert"].encoder.pooling == "cls_dense_tanh"
    assert cfg["electra"].encoder.pooling == "cls"          # the discriminator has no pooler
    assert cfg["electra"].preprocess.tokenizer_type == "wordpiece"
    assert cfg["bert"].preprocess.tokenizer_type == "wordpiece"
    assert cfg["bert"].encoder.position_offset == 0 and cfg["bert"].encoder.type_vocab_size == 2
    assert "cls.predictions.bias" in cfg["bert"].metadata["ignored_weights"]
    klue = cfg["klue_roberta"]
    assert klue.preprocess.packing == "bert" and klue.encoder.pooling == "cls"
    assert (klue.encoder.position_offset, klue.encoder.max_seq_length) == (2, 64)
    assert klue.encoder.type_vocab_size == 2 and "token_type_embeddings" in klue.metadata["notes"]
    assert (cfg["xlmr"].preprocess.packing, cfg["xlmr"].encoder.pooling) == ("roberta", "mean")
    assert cfg["xlmr"].metadata["pooling_source"].endswith(os.path.join("1_Pooling", "config.json"))
    assert (cfg["distilkobert"].encoder.type_vocab_size, cfg["distilkobert"].encoder.pooling) == (0, "cls")
    assert cfg["distilkobert"].preprocess.tokenizer_type == "sentencepiece"


@pytest.mark.parametrize("keep, source", [("tokenizer.json", "tokenizer.json"),
                                          ("sentencepiece.bpe.model", "(fairseq offset)")])
def test_xlmr_tokenizer_from_one_file(keep, source, hf_models, tmp_path):
    """transformers 5 saves tokenizer.json only; older Hub repositories have only the .model."""
    import shutil

    src = hf_models["xlmr"].path
    path = tmp_path / "xlmr_tok"
    drop = {"tokenizer.json", "sentencepiece.bpe.model"} - {keep}
    shutil.copytree(src, path, ignore=shutil.ignore_patterns("model.safetensors", *drop))
    tok = convert_tokenizer(str(path), "xlm-roberta")
    assert tok.source.endswith(source) and tok.preprocess.packing == "roberta"
    pre = Preprocessor.from_config_and_vocab(tok.preprocess, tok.sentencepiece_proto, None)
    assert pre.tokenize(tf.constant(TEXTS)).to_list() == hf_models["xlmr"].ids(TEXTS)


# Runs of one character and digit groups: segmentations of equal pieces tie ("0" + "00" vs
# "00" + "0"), and rounding the scores (right for `tokenizers`' Unigram) changed KoBERT's ids.
TIE_TEXTS = ([c * n for c in ("0", "ㅋ", "ㅎ", "!", "~", ".") for n in range(2, 10)]
             + [f"{a},{b:03d}원" for a, b in zip(range(1, 400, 7), range(0, 1000, 17))]
             + ["1,000,000원", "ㅋㅋㅋㅋㅋㅋㅋ 진짜", "10000 100000 1000000"])


def test_kobert_spiece_model_keeps_sentencepiece_ids(tmp_path):
    """skt/kobert-base-v1 (kobert_tokenizer.KoBERTTokenizer): spiece.model ids, [CLS] a [SEP] b [SEP]."""
    import sentencepiece as spm

    proto = _sp_model("bert")
    (tmp_path / "spiece.model").write_bytes(proto)
    _write_json(str(tmp_path / "tokenizer_config.json"),
                {"tokenizer_class": "XLNetTokenizer", "do_lower_case": False, "cls_token": "[CLS]",
                 "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"})
    tok = convert_tokenizer(str(tmp_path), "bert")
    assert tok.preprocess.packing == "bert" and tok.vocab_size == spm.SentencePieceProcessor(
        model_proto=proto).get_piece_size()
    pre = Preprocessor.from_config_and_vocab(tok.preprocess, tok.sentencepiece_proto, None)
    korean = TEXTS[:12] + ["2024년 3월 15일, 서울에서 만나요!", "KoBERT 모델"] + TIE_TEXTS
    want = KoBertReference(proto, [spm.SentencePieceProcessor(model_proto=proto).id_to_piece(i)
                                   for i in range(tok.vocab_size)])
    for text, got in zip(korean, pre.tokenize(tf.constant(korean)).to_list()):
        assert got == want(text)["input_ids"], text
    assert pre.get_special_tokens_dict()["start_of_sequence_id"] == 2


def test_pooling_override_and_no_pooler(hf_models, tmp_path):
    # RobertaModel saves a pooler, but RoBERTa never trained one: CLS unless asked
    files = load_model_dir(convert_hf(hf_models["klue_roberta"].path, str(tmp_path / "cls")))
    assert files.config.encoder.pooling == "cls" and "pooler/kernel" not in files.weights
    assert files.config.metadata["pooling_source"].startswith("roberta: no pre-trained pooler")
    files = load_model_dir(convert_hf(hf_models["klue_roberta"].path, str(tmp_path / "dense"),
                                      pooling="cls_dense_tanh"))
    assert files.config.encoder.pooling == "cls_dense_tanh" and "pooler/kernel" in files.weights
    with pytest.raises(HFConversionError, match="pooler"):
        convert_hf(hf_models["distilkobert"].path, str(tmp_path / "x"), pooling="cls_dense_tanh")
    assert not (tmp_path / "x").exists()


def test_embedding_table_larger_than_vocabulary(hf_models, tmp_path):
    """multilingual-e5-small has 250037 embedding rows for 250002 tokens: pad, ids unchanged."""
    hf = hf_models["xlmr"]
    path = _copy(hf.path, tmp_path / "padded", skip=("model.safetensors", "config.json"))
    cfg = transformers.XLMRobertaConfig(vocab_size=len(hf.tokenizer) + 5, max_position_embeddings=66,
                                        pad_token_id=1, type_vocab_size=1, **_model_kwargs())
    _save(transformers.XLMRobertaModel(cfg, add_pooling_layer=False), path)
    files = load_model_dir(convert_hf(path, str(tmp_path / "out")))
    assert "vocabulary" in files.config.metadata["notes"]
    pre = Preprocessor.from_config_and_vocab(files.config.preprocess, files.sentencepiece_proto, None)
    assert pre.get_special_tokens_dict()["vocab_size"] == len(hf.tokenizer) + 5
    assert pre.tokenize(tf.constant(TEXTS)).to_list() == hf.ids(TEXTS)


def _copy(src, dst, skip=()):
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*skip))
    return str(dst)


def _edit_json(path, **changes):
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    obj.update(changes)
    _write_json(path, obj)


def _assert_fails(model_dir, out, *fragments):
    with pytest.raises(HFConversionError) as info:
        convert_hf(model_dir, str(out))
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    assert not os.path.exists(out)
    assert not [p for p in os.listdir(os.path.dirname(out)) if ".tmp-" in p]


def test_bad_inputs_have_clear_errors(hf_models, tmp_path):
    bert, klue = hf_models["bert"].path, hf_models["klue_roberta"].path
    out = tmp_path / "out"
    # Missing and truncated weight files name the file.
    d = _copy(bert, tmp_path / "noweights", skip=("*.safetensors",))
    _assert_fails(d, out, "no weight file", "model.safetensors")
    d = _copy(bert, tmp_path / "truncated")
    path = os.path.join(d, "model.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])
    _assert_fails(d, out, path, "truncated")
    d = _copy(klue, tmp_path / "truncated_bin")
    path = os.path.join(d, "pytorch_model.bin")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 3])
    _assert_fails(d, out, path, "truncated")
    # Unsupported model_type / architectures name the field and the value.
    d = _copy(bert, tmp_path / "gpt2")
    _edit_json(os.path.join(d, "config.json"), model_type="gpt2")
    _assert_fails(d, out, "config.json", "model_type", "'gpt2'")
    d = _copy(hf_models["electra"].path, tmp_path / "electra_small")
    _edit_json(os.path.join(d, "config.json"), embedding_size=16)
    _assert_fails(d, out, "config.json", "embedding_size 16 differs from hidden_size 32", "ELECTRA-small")
    d = _copy(bert, tmp_path / "untyped")
    _edit_json(os.path.join(d, "config.json"), model_type=None, architectures=["GPT2Model"])
    _assert_fails(d, out, "config.json", "no model_type", "'GPT2Model'", '"model_type": one of')
    d = _copy(bert, tmp_path / "decoder")
    _edit_json(os.path.join(d, "config.json"), architectures=["BertLMHeadModel"])
    _assert_fails(d, out, "config.json", "architectures", "'BertLMHeadModel'")
    d = _copy(bert, tmp_path / "act")
    _edit_json(os.path.join(d, "config.json"), hidden_act="silu")
    _assert_fails(d, out, "hidden_act", "'silu'")
    # Vocabulary size vs embedding rows names both sides.
    d = _copy(klue, tmp_path / "vocab")
    with open(os.path.join(d, "vocab.txt"), "a", encoding="utf-8") as f:
        f.write("추가토큰\n")
    _assert_fails(d, out, "vocab.txt", "pytorch_model.bin", "vocab_size")
    # Byte-level BPE (English RoBERTa) is refused by name.
    d = _copy(klue, tmp_path / "bpe")
    _edit_json(os.path.join(d, "tokenizer_config.json"), tokenizer_class="RobertaTokenizer")
    _assert_fails(d, out, "tokenizer_config.json", "byte-level BPE")
    # DistilBERT with sinusoidal positions.
    d = _copy(hf_models["distilkobert"].path, tmp_path / "sinus")
    _edit_json(os.path.join(d, "config.json"), sinusoidal_pos_embds=True)
    _assert_fails(d, out, "sinusoidal_pos_embds")
    # An existing output is not overwritten by default.
    out.mkdir()
    with pytest.raises(FileExistsError):
        convert_hf(klue, str(out))


def test_uncased_wordpiece_lower_cases_and_strips_accents_like_hf(hf_models, tmp_path):
    """do_lower_case=True: HF lower-cases and strips accents (NFD, marks removed)."""
    import transformers

    d = _copy(hf_models["klue_roberta"].path, tmp_path / "uncased")
    _edit_json(os.path.join(d, "tokenizer_config.json"), do_lower_case=True)
    model_dir = convert_hf(d, str(tmp_path / "out"))
    config, pre, _ = _tf_model(model_dir)
    assert config.preprocess.lower_case and config.preprocess.strip_accents
    hf = transformers.BertTokenizer.from_pretrained(d)
    texts = ["Café RÉSUMÉ naïve", "ÀÉÎÕÜ àéîõü", "한국어 ABC 문장", "Ἑλλάς 漢字 😀"] + TEXTS[:6]
    ours = pre.tokenize(tf.constant(texts)).to_list()
    for text, got in zip(texts, ours):
        assert got == hf(text, add_special_tokens=False)["input_ids"], text


def test_wordpiece_splitting_matches_hf_on_every_bmp_character():
    """WordpieceTokenizer's normalizer + pre-tokenizer == HF BertNormalizer + BertPreTokenizer."""
    from tokenizers import normalizers, pre_tokenizers

    from tfkosent.layers.tokenizer import WordpieceTokenizer

    texts = ["Ab" + chr(cp) + "Cd" for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF]
    texts += ["😀x🥰 " + chr(0x20000) + chr(0x2B820) + chr(0xE0001) + "끝", "Ab\x0b\x0cCd\x85ef"]
    pre = pre_tokenizers.BertPreTokenizer()
    for lower, strip in ((False, False), (True, True)):
        norm = normalizers.BertNormalizer(lowercase=lower, strip_accents=strip)
        want = [[w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t))] for t in texts]
        got = WordpieceTokenizer(["[UNK]"], lower_case=lower, strip_accents=strip).split_words(
            tf.constant(texts)).to_list()
        got = [[w.decode() for w in row] for row in got]
        bad = [t for t, g, w in zip(texts, got, want) if g != w]
        # Lower-casing differs only on 13 capitals added in Unicode 14+ (U+2C2F, U+A7C0, ...):
        # TF's ICU tables are older than the tokenizers library's.
        assert len(bad) <= (13 if lower else 0), bad[:5]


def test_cli_convert_hf_exports_a_loadable_model(hf_models, tmp_path):
    from tfkosent import SentenceEncoder
    from tfkosent.cli import main

    hf = hf_models["klue_roberta"]
    out = str(tmp_path / "klue_tf")
    assert main(["convert", "hf", hf.path, "--out", out]) == 0
    for sub in ("model", "preprocess", "encoder", os.path.join("sentence_encoder", "1")):
        assert os.path.isdir(os.path.join(out, sub))
    sentences = TEXTS[:6]
    got = SentenceEncoder.load(out).encode(sentences)
    ids, types, mask = hf.pack(sentences, length=64)
    sequence, _ = hf.forward(ids, types, mask)
    cls = sequence[:, 0]                # RoBERTa's default pooling: the CLS vector
    want = cls / np.linalg.norm(cls, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=MAX_DIFF)
    # the API's options on the command line: a shorter maximum and float16 weights
    small = str(tmp_path / "klue_tf16")
    assert main(["convert", "hf", hf.path, "--out", small, "--seq-length", "32", "--dtype", "float16"]) == 0
    files = load_model_dir(os.path.join(small, "model"))
    assert files.config.preprocess.seq_length == 32
    assert {w.dtype for w in files.weights.values()} == {np.dtype("float16")}
    np.testing.assert_allclose(SentenceEncoder.load(small).encode(sentences[:2]), got[:2], atol=2e-2)


def test_generic_tokenizer_classes_and_sentence_transformers_lower_case(hf_models, tmp_path):
    """tokenizer_class PreTrainedTokenizerFast (transformers 4) or TokenizersBackend (5) names no
    model: the files decide. sentence_bert_config.json's do_lower_case lower-cases the text."""
    for generic in ("PreTrainedTokenizerFast", "TokenizersBackend"):
        d = _copy(hf_models["xlmr"].path, tmp_path / generic)
        _edit_json(os.path.join(d, "tokenizer_config.json"), tokenizer_class=generic)
        _, pre, _ = _tf_model(convert_hf(d, str(tmp_path / f"{generic}_out")))
        assert pre.tokenize(tf.constant(TEXTS[:6])).to_list() == hf_models["xlmr"].ids(TEXTS[:6])
    d = _copy(hf_models["xlmr"].path, tmp_path / "unknown")
    _edit_json(os.path.join(d, "tokenizer_config.json"), tokenizer_class="MadeUpTokenizerFast")
    with pytest.raises(HFConversionError, match="tokenizer_class 'MadeUpTokenizerFast' is not supported"):
        convert_hf(d, str(tmp_path / "unknown_out"))
    d = _copy(hf_models["xlmr"].path, tmp_path / "lower")
    _write_json(os.path.join(d, "sentence_bert_config.json"), {"max_seq_length": 48, "do_lower_case": True})
    files = load_model_dir(convert_hf(d, str(tmp_path / "lower_out")))
    assert files.config.preprocess.lower_case and files.config.preprocess.seq_length == 48
    _, pre, _ = _tf_model(str(tmp_path / "lower_out"))
    assert pre.tokenize(tf.constant(["Hello World 한국어"])).to_list() == \
        hf_models["xlmr"].ids(["hello world 한국어"])
