"""Bad input, case by case: a bad row is skipped and counted by reason; an unusable input fails naming the file
and field, and leaves what is stored exactly as it was."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from projects import SmallProject, failure_message, write_jsonl

from zipfit_pipeline.config import DatasetSpec, load_project
from zipfit_pipeline.engine.ingest.records import InputError, RecordReader
from zipfit_pipeline.orchestration.asset_keys import SOURCE_DOCUMENTS

GOOD = {"id": "good", "text": "def f():\n    return 1\n"}


def _read(path: Path, **options: Any) -> tuple[list[tuple[int, str | None, str]], RecordReader]:
    reader = RecordReader(str(path), id_field="id", **options)
    return [(r.row_index, r.doc_id, r.text) for r in reader], reader


# One bad row among good ones: (file name, the file's bytes, the reason it is skipped for).
BAD_ROWS = {
    "malformed JSON line": ("d.jsonl", b'{"id": "bad", "text": "unclosed\n', "malformed_json"),
    "JSON line that is not an object": ("d.jsonl", b'["id", "text"]\n', "not_an_object"),
    "bytes that are not UTF-8 (JSONL)": ("d.jsonl", b'{"id": "bad", "text": "caf\xe9 cr\xe8me"}\n', "invalid_utf8"),
    "bytes that are not UTF-8 (CSV)": ("d.csv", b'bad,"caf\xe9 cr\xe8me"\n', "invalid_utf8"),
    "lone surrogate": ("d.jsonl", b'{"id": "bad", "text": "half a pair: \\ud800"}\n', "lone_surrogate"),
    "empty text": ("d.jsonl", b'{"id": "bad", "text": ""}\n', "empty_text"),
    "whitespace text": ("d.jsonl", b'{"id": "bad", "text": " \\n\\t "}\n', "empty_text"),
    "missing text field": ("d.jsonl", b'{"id": "bad", "body": "elsewhere"}\n', "missing_text"),
    "null text": ("d.jsonl", b'{"id": "bad", "text": null}\n', "missing_text"),
    "number as text": ("d.jsonl", b'{"id": "bad", "text": 42}\n', "non_string_text"),
    "list as text": ("d.jsonl", b'{"id": "bad", "text": ["a", "b"]}\n', "non_string_text"),
    "missing id": ("d.jsonl", b'{"text": "no id here"}\n', "missing_id"),
    "duplicate id": ("d.jsonl", b'{"id": "good", "text": "same id, other text"}\n', "duplicate_id"),
}


def _with_good_rows(name: str, bad: bytes) -> bytes:
    """The bad row second, between two good ones."""
    if name.endswith(".csv"):
        return b'id,text\ngood,"def f():\n    return 1\n"\n' + bad + b"last,the last row\n"
    last = {"id": "last", "text": "the last row"}
    return (json.dumps(GOOD) + "\n").encode() + bad + (json.dumps(last) + "\n").encode()


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_a_bad_row_is_skipped_and_counted_by_reason(case: str, tmp_path: Path) -> None:
    name, bad, reason = BAD_ROWS[case]
    path = tmp_path / name
    path.write_bytes(_with_good_rows(name, bad))
    records, reader = _read(path)
    assert records == [(0, "good", GOOD["text"]), (2, "last", "the last row")]
    assert dict(reader.skipped) == {reason: 1}
    assert reader.first_skipped == {reason: 1}
    assert reader.skip_summary() == f"1 {reason} (first at row 1)"


def test_a_10_mb_document_is_skipped_by_default_and_kept_whole_on_request(tmp_path: Path) -> None:
    huge = "".join(f"line {i}: {'x' * 40}\n" for i in range(220_000))
    assert len(huge) > 10_000_000
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "huge", "text": huge}])
    records, reader = _read(path, max_chars=DatasetSpec.model_fields["max_chars"].default)
    assert [r[1] for r in records] == ["good"] and dict(reader.skipped) == {"too_long": 1}
    records, reader = _read(path, max_chars=None)
    assert records[1] == (1, "huge", huge) and not reader.skipped


# Inputs that cannot be used at all, and the words the error must contain (besides the file's name).
UNUSABLE = {
    "missing file": (None, {}, ["file not found"]),
    "text field in no row": (
        b'{"id": "a", "body": "x"}\n{"id": "b", "body": "y"}\n',
        {},
        ["'text'", "none of the 2 rows"],
    ),
    "template naming an absent field": (b'{"id": "a", "text": "x"}\n', {"template": "{title}: {text}"}, ["'title'"]),
    "JSON array cut short": (b'[{"id": "a", "text": "x"},\n {"id": "b", "te', {}, ["not valid JSON", "line 2"]),
}


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_an_unusable_input_fails_naming_file_and_field(case: str, tmp_path: Path) -> None:
    content, options, words = UNUSABLE[case]
    path = tmp_path / ("d.json" if case.startswith("JSON array") else "d.jsonl")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as error:
        _read(path, **options)
    for word in [str(path), *words]:
        assert word in str(error.value)


def test_parquet_with_an_unexpected_schema_fails_naming_the_field(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["a", "b"], "text": [1, 2]}), tmp_path / "numbers.parquet")
    with pytest.raises(InputError, match=r"numbers\.parquet: field 'text' is int64, not a string column"):
        _read(tmp_path / "numbers.parquet")
    pq.write_table(pa.table({"id": ["a"], "content": ["x"]}), tmp_path / "renamed.parquet")
    with pytest.raises(InputError, match=r"renamed\.parquet: field 'text' not found \(columns: 'content', 'id'\)"):
        _read(tmp_path / "renamed.parquet")
    (tmp_path / "fake.parquet").write_text('{"id": "a", "text": "not parquet"}\n')
    with pytest.raises(InputError, match=r"fake\.parquet: cannot be read as parquet"):
        _read(tmp_path / "fake.parquet")


def test_a_template_that_reaches_into_values_is_refused_when_the_project_loads(tmp_path: Path) -> None:
    config = tmp_path / "zipfit.yaml"
    config.write_text(
        "sources: [{name: s, path: s.jsonl, template: '{text.__class__}'}]\n"
        "targets: [{name: t, path: t.jsonl, alignment_rows: [0, 1], test_rows: [1, 2]}]\n"
        "models: [{name: m, pretrained: m}]\n"
    )
    with pytest.raises(ValueError, match=r"(?s)zipfit\.yaml.*\{text\.__class__\} is not a field name"):
        load_project(config)


# Through Dagster: metadata and log for skipped rows; failed runs leave the store as it was.


def test_skipped_rows_are_in_the_materialization_metadata_and_the_log(small_project: SmallProject) -> None:
    good_rows = small_project.source_file.read_bytes()
    bad = b'{"id": "x1", "text": "cut\n' + b'{"id": "x2", "text": ""}\n' + b'{"id": "x3", "text": "caf\xe9"}\n'
    small_project.source_file.write_bytes(good_rows + bad)
    result = small_project.ingest_source()
    assert result.success
    metadata = result.asset_materializations_for_node(SOURCE_DOCUMENTS)[0].metadata
    assert metadata["skipped"].value == {"malformed_json": 1, "empty_text": 1, "invalid_utf8": 1}
    assert metadata["first_skipped_row"].value == {"malformed_json": 40, "empty_text": 41, "invalid_utf8": 42}
    assert metadata["documents"].value == 40
    warnings = [e.user_message for e in small_project.instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert any("1 empty_text (first at row 41)" in w for w in warnings), warnings
    stored_skips = {r["reason"]: r["n"] for r in small_project.stored("ingest_skips")}
    assert stored_skips == {"malformed_json": 1, "empty_text": 1, "invalid_utf8": 1}


def _break_source(project: SmallProject, case: str) -> list[str]:
    """Break the source in one way; the words the run's error must contain."""
    path = project.source_file
    if case == "missing file":
        path.unlink()
        return [str(path), "file not found"]
    if case == "empty file":
        path.write_bytes(b"")
        return [str(path), "no usable rows", "skipped: none"]
    if case == "every row bad":
        path.write_bytes(b'{"id": "a", "text": ""}\n{"id": "b", "text": 7}\n')
        return [str(path), "no usable rows", "1 empty_text (first at row 0)", "1 non_string_text (first at row 1)"]
    if case == "template naming an absent field":
        project.edit_source(template="{title}\n{text}")
        return [str(path), "'title'"]
    if case == "parquet with an unexpected schema":
        table = pa.table({"id": ["a"], "text": [[1, 2]]})
        pq.write_table(table, path.with_suffix(".parquet"))
        project.edit_source(path="inputs/src.parquet")
        return [str(path.with_suffix(".parquet")), "field 'text' is list<element: int64>"]
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "empty file",
        "every row bad",
        "template naming an absent field",
        "parquet with an unexpected schema",
    ],
)
def test_an_unusable_source_fails_the_run_and_keeps_the_stored_documents(
    small_project: SmallProject, case: str
) -> None:
    assert small_project.ingest_source().success
    before = small_project.stored("documents"), small_project.stored("ingest_skips")
    words = _break_source(small_project, case)
    message = failure_message(small_project.ingest_source())
    for word in words:
        assert word in message, message
    assert (small_project.stored("documents"), small_project.stored("ingest_skips")) == before


def test_an_empty_target_set_fails_the_run_and_keeps_the_stored_target(small_project: SmallProject) -> None:
    assert small_project.ingest_target().success
    before = small_project.stored("targets")
    rows = [json.loads(line) for line in small_project.target_file.read_text().splitlines()[:12]]
    for row in rows[:8]:
        row["prompt"] = "   "  # the template still has text: blank the whole row instead
        row["canonical_solution"] = None
    write_jsonl(small_project.target_file, rows)
    message = failure_message(small_project.ingest_target())
    assert (
        str(small_project.target_file) in message and "the alignment split (rows (0, 8)) has no usable rows" in message
    )
    assert "8 missing_text (first at row 0)" in message
    assert small_project.stored("targets") == before
