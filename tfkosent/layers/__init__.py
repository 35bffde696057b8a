"""Keras 3 layers (TensorFlow backend), each with `get_config`."""

from tfkosent.layers.dropout import ReplicaDropout
from tfkosent.layers.packing import BertPackInputs
from tfkosent.layers.preprocessor import Preprocessor
from tfkosent.layers.saved_model_layer import FineTunableTFSMLayer
from tfkosent.layers.tokenizer import SentencepieceTokenizer, WordpieceTokenizer
from tfkosent.layers.transformer import TransformerEncoder

__all__ = ["BertPackInputs", "FineTunableTFSMLayer", "Preprocessor", "ReplicaDropout", "SentencepieceTokenizer",
           "TransformerEncoder", "WordpieceTokenizer"]
