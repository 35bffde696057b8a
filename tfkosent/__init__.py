"""tfkosent: Korean sentence embeddings, done the TensorFlow way.

    >>> from tfkosent import SentenceEncoder
    >>> model = SentenceEncoder.load()
    >>> model.similarity(["오늘 날씨가 좋다"], ["날씨가 맑다"])
"""

from tfkosent.cross_encoder import CrossEncoder
from tfkosent.sentence_encoder import SentenceEncoder

__version__ = "0.1.0"
__all__ = ["CrossEncoder", "SentenceEncoder", "__version__"]
