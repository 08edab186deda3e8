"""Compressed sizes, exactly as the reference `zip-fit==1.0.9` measures them.

gzip sizes are computed as raw deflate + 18 bytes (the gzip header and trailer), which equals
`len(gzip.compress(b, compresslevel=L))` for every input and is cheaper. Sizes depend on the library build
(only stock zlib reproduces the reference's gzip sizes), so the build is part of every stored score's key.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable
from typing import Literal, get_args

import lz4.frame
import zstandard

Compressor = Literal["gzip", "lz4", "zstd"]
COMPRESSORS: tuple[str, ...] = get_args(Compressor)
GZIP_FRAMING_BYTES = 18
LEVEL_RANGES: dict[str, tuple[int, int]] = {"gzip": (0, 9), "lz4": (0, 16), "zstd": (-7, 22)}

SizeFn = Callable[[bytes], int]


def check_compressor(compressor: str, level: int) -> None:
    """Reject unknown compressors and levels; warn about gzip level 0, which does not compress."""
    if compressor not in LEVEL_RANGES:
        raise ValueError(f"unknown compressor {compressor!r}; choose one of {', '.join(COMPRESSORS)}")
    low, high = LEVEL_RANGES[compressor]
    if not low <= level <= high:
        raise ValueError(f"{compressor} level must be in [{low}, {high}], got {level}")
    if compressor == "gzip" and level == 0:
        warnings.warn(
            "gzip level 0 stores without compressing: scores then depend only on text lengths "
            "(this is zip-fit's default; ours is level 9)",
            stacklevel=2,
        )


def size_function(compressor: str, level: int) -> SizeFn:
    """Return `C`: bytes -> compressed size in bytes, for one compressor and level."""
    if compressor == "gzip":
        return lambda data: len(zlib.compress(data, level, wbits=-15)) + GZIP_FRAMING_BYTES
    if compressor == "lz4":
        return lambda data: len(lz4.frame.compress(data, compression_level=level))
    if compressor == "zstd":
        cctx = zstandard.ZstdCompressor(level=level)
        return lambda data: len(cctx.compress(data))
    raise ValueError(f"unknown compressor {compressor!r}; choose one of {', '.join(COMPRESSORS)}")


def joint_sizes_function(compressor: str, level: int) -> Callable[[bytes, list[bytes]], list[int]]:
    """`C(x + t)` for every target t, with the compressor bound once: the innermost loop of scoring."""
    if compressor == "gzip":
        deflate = zlib.compress
        return lambda x, targets: [len(deflate(x + t, level, -15)) + GZIP_FRAMING_BYTES for t in targets]
    if compressor == "lz4":
        frame = lz4.frame.compress
        return lambda x, targets: [len(frame(x + t, level)) for t in targets]
    size = size_function(compressor, level)
    return lambda x, targets: [size(x + t) for t in targets]


def compressor_build(compressor: str) -> str:
    """The library build that computes a compressor's sizes: part of every stored score's key."""
    if compressor == "gzip":
        return f"zlib-{zlib.ZLIB_RUNTIME_VERSION}"
    if compressor == "lz4":
        return f"lz4-{lz4.library_version_string()}"
    if compressor == "zstd":
        return f"zstd-{zstandard.ZSTD_VERSION[0]}.{zstandard.ZSTD_VERSION[1]}.{zstandard.ZSTD_VERSION[2]}"
    raise ValueError(f"unknown compressor {compressor!r}; choose one of {', '.join(COMPRESSORS)}")
