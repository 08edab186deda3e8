"""The files `zipfit score` and `zipfit select` write and read back: format by extension, never over an input."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from zipfit_pipeline.engine.core.input_files import check_input_file, column_names

TABLE_FORMATS = (".jsonl", ".parquet", ".csv")


class UsageError(ValueError):
    """A command line that cannot work (an option's value, an output over an input); one line, no traceback."""


def output_file(path: str, inputs: Sequence[str | None]) -> Path:
    """The output a command may write: a known extension (any case), a file, and none of its inputs."""
    out = Path(path)
    if out.suffix.lower() not in TABLE_FORMATS:
        raise UsageError(
            f"--output {path}: the extension must be one of {', '.join(TABLE_FORMATS)} (any case), "
            f"got {out.suffix or 'none'}"
        )
    if out.is_dir():
        raise UsageError(f"--output {path} is a folder; give a file name")
    refuse_overwriting_inputs(out, inputs)
    return out


def refuse_overwriting_inputs(out: Path, inputs: Sequence[str | None]) -> None:
    for given in filter(None, inputs):
        if (
            out.resolve() == Path(given).resolve()
            or out.exists()
            and Path(given).exists()
            and os.path.samefile(out, given)
        ):
            raise UsageError(f"--output {out} is the input {given}: it would be overwritten; write to another file")


def write_table(table: pa.Table | dict[str, list], out: Path) -> None:
    """Parquet, CSV or JSON lines by extension; written to a temporary name, then renamed.

    A table may come as columns of Python values: JSON lines are then written without building Arrow arrays,
    whose first use imports pandas (a sixth of a second, most of a small `zipfit score`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        pq.write_table(table if isinstance(table, pa.Table) else pa.table(table), partial)
    elif suffix == ".csv":
        pa_csv.write_csv(table if isinstance(table, pa.Table) else pa.table(table), partial)
    else:
        rows = (
            table.to_pylist()
            if isinstance(table, pa.Table)
            else (dict(zip(table, row)) for row in zip(*table.values()))
        )
        with partial.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(out)


def read_scores(path: str) -> pa.Table:
    """A scores file that `zipfit score` wrote: `row_index` and a finite `score` on every row (and maybe `id`)."""
    file = Path(path)
    suffix = file.suffix.lower()
    check_input_file(file)
    if suffix not in TABLE_FORMATS:
        raise UsageError(
            f"{path}: the extension must be one of {', '.join(TABLE_FORMATS)} (a file `zipfit score` wrote)"
        )
    if file.stat().st_size == 0:
        raise UsageError(f"{path}: the file is empty")
    try:
        read = {".parquet": pq.read_table, ".csv": pa_csv.read_csv, ".jsonl": pa_json.read_json}[suffix]
        table = read(file)
    except (pa.ArrowException, OSError) as error:
        raise UsageError(f"{path}: cannot be read as {suffix[1:]}: {_without_content(error)}") from error
    numeric = {"row_index": pa.types.is_integer, "score": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t)}
    for name, check in numeric.items():
        if name not in table.column_names:
            raise UsageError(
                f"{path}: field {name!r} not found (columns: {column_names(table.column_names)}); "
                "give the file `zipfit score` wrote"
            )
        if not check(table.schema.field(name).type):
            raise UsageError(f"{path}: field {name!r} is {table.schema.field(name).type}, not a number")
    for row, (index, score) in enumerate(zip(table.column("row_index").to_pylist(), table.column("score").to_pylist())):
        if index is None or score is None or not math.isfinite(score):
            field = "row_index" if index is None else "score"
            raise UsageError(
                f"{path} row {row}: field {field!r} is {'empty' if score is None or index is None else score}"
            )
    return table


def _without_content(error: Exception) -> str:
    """Arrow's reason in one line, without the row it quotes (`Expected 2 columns, got 1: <the row>`)."""
    return re.sub(r"(got \d+)\s*:.*", r"\1", " ".join(str(error).split()))[:300]
