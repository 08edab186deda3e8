"""A fine-tune trains on exactly the texts its selection chose, whatever happened to the source rows since."""

from __future__ import annotations

import json

from projects import SmallProject, failure_message

from zipfit_pipeline.engine.core.hashing import content_hash, set_hash
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.select import SelectTables
from zipfit_pipeline.engine.train import TrainTables
from zipfit_pipeline.engine.train.stage import selected_texts
from zipfit_pipeline.orchestration.asset_keys import (
    ALIGNMENT_SCORES,
    FINETUNED_MODEL,
    SELECTIONS,
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
)

KEY = RunKey("tiny-gpt2", "task", "zipfit", 200, 0)
PARTITION = "tiny-gpt2.zipfit.200.s0|task"


def _selected_rows(project: SmallProject) -> list[dict]:
    """The selected documents, with the row each sat at when it was selected."""
    return (
        project.store()
        .query(
            "SELECT s.content_hash, d.row_index, d.text FROM selections s "
            "JOIN documents d USING (dataset, content_hash) WHERE s.method = 'zipfit' ORDER BY s.rank"
        )
        .to_pylist()
    )


def test_a_reordering_reingest_changes_no_fine_tunes_texts(small_project: SmallProject) -> None:
    for asset, partition in [
        (SOURCE_DOCUMENTS, "src"),
        (TARGET_DOCUMENTS, "task"),
        (ALIGNMENT_SCORES, "src|task"),
        (SELECTIONS, "tiny-gpt2|task"),
    ]:
        assert small_project.materialize(asset, partition).success
    chosen = _selected_rows(small_project)
    chosen_texts = [r["text"] for r in chosen]

    # The source is re-exported in another order (and grows a row); it is re-ingested, selections are not re-run.
    lines = small_project.source_file.read_text(encoding="utf-8").splitlines()
    lines = [json.dumps({"id": "new", "text": "def brand_new():\n    return 0\n"}), *reversed(lines)]
    small_project.source_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert small_project.ingest_source().success
    now_at = {
        r["row_index"]: r["text"]
        for r in small_project.store().query("SELECT row_index, text FROM documents").to_pylist()
    }
    assert [now_at[r["row_index"]] for r in chosen] != chosen_texts  # what a join on row positions would train on

    assert small_project.materialize(FINETUNED_MODEL, PARTITION).success
    run = TrainTables(small_project.store()).training_run(KEY)
    assert run["selection_version"] == set_hash([content_hash(t) for t in chosen_texts])
    assert run["selection_version"] == SelectTables(small_project.store()).selection_set(KEY)["version"]
    assert selected_texts(small_project.store(), KEY) == chosen_texts


def test_a_selection_whose_texts_are_gone_fails_and_says_what_to_do(small_project: SmallProject) -> None:
    for asset, partition in [
        (SOURCE_DOCUMENTS, "src"),
        (TARGET_DOCUMENTS, "task"),
        (ALIGNMENT_SCORES, "src|task"),
        (SELECTIONS, "tiny-gpt2|task"),
    ]:
        assert small_project.materialize(asset, partition).success
    first = _selected_rows(small_project)[0]
    rows = [json.loads(line) for line in small_project.source_file.read_text(encoding="utf-8").splitlines()]
    rows[first["row_index"]]["text"] += "\n# edited since it was selected\n"
    small_project.source_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert small_project.ingest_source().success

    message = failure_message(small_project.materialize(FINETUNED_MODEL, PARTITION))
    assert (
        f"the selection {KEY} chose 1 texts that no stored document holds any more (a source was re-ingested or "
        f"removed since, e.g. text {first['content_hash']}): materialize selections again"
    ) in message
    assert TrainTables(small_project.store()).training_run(KEY) is None
