"""The native joint sizes (`native/joint_sizes.c`), used only once they have proved equal to the interpreter's.

The extension deflates a source once per target set and sizes each joint stream's last block instead of encoding
it (gzip levels 1-9), and runs lz4 frames in one C loop (levels 0-16). It carries its own zlib 1.2.13 and lz4 1.9.4,
so before a process uses it for one compressor and level, it sizes probe pairs both ways: with the extension and with
the interpreter's `zlib` / python-lz4, which define the scores (`compression.py`). Any difference, or no extension
(an install without a C compiler), and that process scores on the pure-Python path, logs why once, and says so in
every scoring run's record (`code_path`). `ZIPFIT_NATIVE=0` forces the pure-Python path.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from functools import cache
from types import ModuleType

from zipfit_pipeline.engine.score.compression import GZIP_FRAMING_BYTES, compressor_build, joint_sizes_function

NATIVE, PURE_PYTHON = "native", "python"
NATIVE_LEVELS = {"gzip": range(1, 10), "lz4": range(0, 17)}
WINDOW = 32 * 1024
JointSizes = Callable[[bytes, Sequence[bytes]], list[int]]
log = logging.getLogger(__name__)


def _extension() -> tuple[ModuleType | None, str]:
    if os.environ.get("ZIPFIT_NATIVE", "1") == "0":
        return None, "ZIPFIT_NATIVE=0"
    try:
        from zipfit_pipeline import _joint_sizes
    except ImportError as error:
        return None, f"the extension is not built ({error}); reinstall with a C compiler present"
    return _joint_sizes, ""


def probe_pairs() -> list[tuple[bytes, list[bytes]]]:
    """Sources, each with targets, that reach every branch of the extension and fail if any of its restores is
    left out: empty and one-byte texts, text, random bytes and long runs; targets that fill zlib's symbol buffer
    and flush a compressed block midway (then the next one does too); targets whose positions pass 32 KiB and
    alias prev[] entries of the source that the next target's matches follow; a short target after a long one,
    with bytes past the data that zlib must ignore; pairs long enough to slide the window."""
    rng = random.Random(20241018)
    words = b"def return for in if else while import class self value index count total the of and ".split()
    text = b" ".join(rng.choices(words, k=8000))
    noise = rng.randbytes(20_000)
    printable = rng.randbytes(18_000).translate(bytes(32 + i % 95 for i in range(256)))
    near, far = b"0123456789xyz", b"0123456789abc"
    targets = [b"", b"x", b"def add(a, b):\n    return a + b\n", text[:700], noise[:300], b"a" * 500]
    return [
        (b"", targets),
        (b"def sub(a, b):\n    return a - b\n", targets),
        (text[:1500], targets),
        (noise, targets),
        (printable[:16_200], [printable[-2_000:], b"x", printable[-1_000:]]),
        (text[: WINDOW - 100], [text[:2_000], text[:1_000], text[500:1_500]]),
        (far + noise[:30_000] + near + b"." * 5, [far + b"." * 300, b"0123456789"]),
        (b"b" * (2 * WINDOW - 300), [b"", text[:600]]),
    ]


def _mismatch(compressor: str, level: int, native: JointSizes) -> str:
    """The first probe where the extension and the interpreter disagree, or ''."""
    python = joint_sizes_function(compressor, level)
    for x, targets in probe_pairs():
        try:
            ours = native(x, targets)
        except (RuntimeError, MemoryError) as error:
            return f"{compressor}-{level}: {error} on a {len(x)}-byte source"
        theirs = python(x, targets)
        for t, a, b in zip(targets, ours, theirs):
            if a != b:
                return (
                    f"{compressor}-{level}: {a} bytes for a {len(x)}+{len(t)}-byte pair where the interpreter gives {b}"
                )
    return ""


@cache
def joint_sizes(compressor: str, level: int) -> tuple[JointSizes | None, str]:
    """The extension's `C(x + t)` for every target, and NATIVE; or None and why the pure-Python path must score."""
    if level not in NATIVE_LEVELS.get(compressor, ()):
        return None, f"{compressor}-{level} has no native path"
    extension, why = _extension()
    if extension is None:
        return _fallback(compressor, level, why)
    if compressor == "gzip":
        deflate = extension.deflate_joint_sizes

        def native(x: bytes, targets: Sequence[bytes]) -> list[int]:
            return [size + GZIP_FRAMING_BYTES for size in deflate(x, targets, level)]
    else:
        lz4_joint = extension.lz4_joint_sizes

        def native(x: bytes, targets: Sequence[bytes]) -> list[int]:
            return lz4_joint(x, targets, level)

    mismatch = _mismatch(compressor, level, native)
    if mismatch:
        return _fallback(compressor, level, f"its sizes differ from the interpreter's ({mismatch})")
    return native, NATIVE


def _fallback(compressor: str, level: int, why: str) -> tuple[None, str]:
    log.warning("%s-%s scores on the pure-Python path: %s", compressor, level, why)
    return None, why


def code_path(compressor: str, level: int) -> str:
    """NATIVE or PURE_PYTHON: which path this process scores with."""
    return NATIVE if joint_sizes(compressor, level)[0] is not None else PURE_PYTHON


def score_build(compressor: str, level: int) -> str:
    """What a stored score is keyed by: the library build that defines the sizes and, where the extension computed
    them, its own vendored library too (it proved equal on the probes, not on every text), so that scores of the
    two paths are never mixed."""
    build = compressor_build(compressor)
    extension, _ = _extension()
    if extension is None or code_path(compressor, level) != NATIVE:
        return build
    return f"{build}+native-{extension.ZLIB_VERSION if compressor == 'gzip' else extension.LZ4_VERSION}"
