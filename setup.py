"""The native joint-size extension: everything else about the package is in pyproject.toml.

`optional=True`: an install without a C compiler still works and scores on the pure-Python path (the engine says
so once and records it). `make test` fails when a compiler is present and the extension did not build.
"""

import platform
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ZLIB = "native/vendor/zlib-1.2.13"
LZ4 = "native/vendor/lz4-1.9.4"
# zlib's own build option: longest_match compares two bytes at a time (the same matches, 7% faster at level 9), on
# CPUs that load unaligned 16-bit words natively.
UNALIGNED_LOADS = platform.machine().lower() in {"x86_64", "amd64", "aarch64", "arm64"}


class BuildPyWithInstanceSettings(build_py):
    """A built wheel carries the repository's top-level dagster.yaml beside `orchestration/instance.py`, which gives
    it to a new DAGSTER_HOME; an editable install reads the top-level file itself, so there is no copy to keep."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.copy_file(
                "dagster.yaml", str(Path(self.build_lib) / "zipfit_pipeline" / "orchestration" / "dagster.yaml")
            )


setup(
    cmdclass={"build_py": BuildPyWithInstanceSettings},
    ext_modules=[
        Extension(
            "zipfit_pipeline._joint_sizes",
            sources=["native/joint_sizes.c"],
            depends=[
                f"{ZLIB}/{name}"
                for name in (
                    "deflate.c",
                    "deflate.h",
                    "trees.c",
                    "trees.h",
                    "zutil.c",
                    "zutil.h",
                    "adler32.c",
                    "crc32.c",
                    "crc32.h",
                    "zlib.h",
                    "zconf.h",
                )
            ]
            + [
                f"{LZ4}/{name}"
                for name in (
                    "lz4.c",
                    "lz4.h",
                    "lz4hc.c",
                    "lz4hc.h",
                    "lz4frame.c",
                    "lz4frame.h",
                    "lz4frame_static.h",
                    "xxhash.c",
                    "xxhash.h",
                )
            ],
            include_dirs=[ZLIB, LZ4],
            # Hidden symbols: the vendored zlib and lz4 never answer for the interpreter's libz or python-lz4.
            # Z_SOLO: zlib without its gz* file functions (the extension passes its own allocator).
            define_macros=[
                ("HAVE_HIDDEN", "1"),
                ("Z_SOLO", None),
                ("LZ4LIB_VISIBILITY", ""),
                ("LZ4FLIB_VISIBILITY", ""),
            ]
            + ([("UNALIGNED_OK", None)] if UNALIGNED_LOADS else []),
            extra_compile_args=["-O3", "-fvisibility=hidden", "-w"],
            optional=True,
        )
    ],
)
