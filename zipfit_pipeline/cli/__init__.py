"""`zipfit`: the engine without Dagster (score, select, train, eval), the demo (prepare-demo), and the pipeline's
runs (materialize, register-sources, recover). An error is one line on stderr and a non-zero exit; `--debug`
shows the traceback."""

from __future__ import annotations

import sys

from zipfit_pipeline.cli.parser import parser

# What a user can act on from its message alone; anything else is a bug, and says how to see its traceback.
EXPECTED_ERRORS = (ValueError, OSError, LookupError, RuntimeError)


def error_line(error: BaseException) -> str:
    """An error as one line: the message, or for an unexpected error its type and how to see more."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, EXPECTED_ERRORS) and not isinstance(error, KeyError):
        return text
    return f"{type(error).__name__}: {text} (unexpected: run again with --debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(f"zipfit {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"zipfit {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 1


__all__ = ["error_line", "main"]
