"""Bounds on what one sensor message may cost an encoder (defaults from ``aecf_ros.graph``).

A hostile or broken publisher must not be able to buy seconds of CPU or gigabytes of memory
with one small message: a compressed image's declared size is checked before decoding, a string
is cut before tokenizing. The encoder nodes set these from their parameters (``max_pixels``,
``max_text_chars``); ``aecf-ros evaluate-bag`` uses the defaults.
"""
from __future__ import annotations

from dataclasses import dataclass

from aecf_ros.graph import DEFAULT_MAX_PIXELS, DEFAULT_MAX_TEXT_CHARS

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_TEXT_CHARS", "InputLimits"]

# The defaults live in the graph's parameter table (the bottom layer, which imports nothing):
# DEFAULT_MAX_PIXELS = 4096 x 4096 (a 4K UHD frame and a 12 MP camera fit); DEFAULT_MAX_TEXT_CHARS
# = 4096, far beyond the 256 tokens MiniLM reads (a 1 MB string took ~945 ms to tokenize whole).


@dataclass(frozen=True)
class InputLimits:
    max_pixels: int = DEFAULT_MAX_PIXELS  # width x height; 0 = no bound
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS  # characters kept before tokenizing
