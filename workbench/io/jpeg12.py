"""A pydicom decoder plugin for JPEG Extended 12-bit through imagecodecs (libjpeg-turbo 3).

pydicom's own plugins call NEMA's 12-bit lossy DICOMs (WG04 ``MR1_JPLY``, pydicom's
``JPEG-lossy.dcm``) undecodable: pylibjpeg's libjpeg rejects their scan header, and its GDCM and
Pillow plugins refuse 12-bit precision. libjpeg-turbo decodes them. :func:`register` adds this
plugin after the others, so it is only tried when they fail.
"""

from __future__ import annotations

import contextlib

from pydicom.pixels.decoders import JPEGExtended12BitDecoder
from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.uid import JPEGExtended12Bit

LABEL = "imagecodecs"
DECODER_DEPENDENCIES = {JPEGExtended12Bit: ("numpy", "imagecodecs")}


def is_available(uid: str) -> bool:
    """Whether imagecodecs is installed with its libjpeg-turbo codec."""
    try:
        import imagecodecs
    except ImportError:
        return False
    return uid == JPEGExtended12Bit and bool(imagecodecs.JPEG8.available)


def decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One frame's samples, native byte order, as pydicom's decoders hand them back."""
    import imagecodecs

    return imagecodecs.jpeg8_decode(src).tobytes()


def register() -> None:
    """Add the plugin; without imagecodecs pydicom lists it among the missing dependencies."""
    with contextlib.suppress(ValueError):  # already added
        JPEGExtended12BitDecoder.add_plugin(LABEL, (__name__, "decode_frame"))
