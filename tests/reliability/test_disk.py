"""A store path on a read-only or full disk: a clear error that names the file, and what was stored is kept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.ingest.records import Record


def _records(n: int, repeat: int = 1) -> list[Record]:
    return [Record(i, f"doc-{i}", f"text number {i} " * repeat) for i in range(n)]


def _run(script: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300
    )


def _without_root_privileges() -> list[str]:
    """Root ignores file permissions; `setpriv` drops the capabilities that let it, keeping everything else."""
    if os.geteuid() != 0:
        return []
    probe = subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"running as root and setpriv cannot drop file-permission capabilities: {probe.stderr!r}")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def test_a_store_in_a_read_only_folder_fails_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        done = _run(
            f"""
            from zipfit_pipeline.engine.core.store import Store
            from zipfit_pipeline.engine.ingest import IngestTables, Record
            store = IngestTables(Store({str(folder / "zipfit.duckdb")!r}))
            store.replace_documents("a", [Record(0, "x", "text")], {{}})
        """,
            _without_root_privileges(),
        )
    finally:
        folder.chmod(0o755)
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("zipfit_pipeline.engine.core.store.StoreError: cannot open the store"), done.stderr[
        -2000:
    ]
    assert str(folder / "zipfit.duckdb") in last_line and "Permission denied" in last_line
    assert not list(folder.iterdir())


def test_a_full_disk_fails_the_write_naming_the_file_and_keeps_what_was_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "zipfit.duckdb")
    IngestTables(store).replace_documents("kept", _records(100), {})
    before = store.query("SELECT * FROM documents ORDER BY row_index").to_pylist()
    # The child may not grow any file past 100 kB more than the store is now: a disk that is about to fill.
    done = _run(f"""
        import resource, signal
        from zipfit_pipeline.engine.core.store import Store
        from zipfit_pipeline.engine.ingest import IngestTables, Record
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = {store.path.stat().st_size + 100_000}
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        records = [Record(i, str(i), ("a long text %d " % i) * 2000) for i in range(500)]
        IngestTables(Store({str(store.path)!r})).replace_documents("big", records, {{}})
    """)
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        f"zipfit_pipeline.engine.core.store.StoreError: cannot write to the store {store.path} "
        "(is the disk full or read-only?)"
    ), done.stderr[-2000:]
    assert "File too large" in last_line and last_line.endswith("Nothing of this write was kept")
    assert store.query("SELECT * FROM documents ORDER BY row_index").to_pylist() == before
    IngestTables(store).replace_documents("after", _records(3), {})  # the store still takes writes once there is room
    assert store.query("SELECT count(*) AS n FROM documents").to_pylist()[0]["n"] == 103
