"""Pass@k: the estimator, the sandbox that runs generated code, generation, and the asset in a real Dagster run."""

import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml
from projects import ingest, write_project

from zipfit_pipeline.engine.core.models import load_model_and_tokenizer
from zipfit_pipeline.engine.evaluate import sandbox
from zipfit_pipeline.engine.evaluate.pass_at_k import (
    cut_at_stop,
    estimate_pass_at_k,
    generate_completions,
    read_problems,
    score_completions,
)
from zipfit_pipeline.engine.evaluate.sandbox import Limits, SandboxUnavailable, run_program
from zipfit_pipeline.engine.evaluate.settings import PassAtKSettings
from zipfit_pipeline.engine.ingest.records import RecordReader
from zipfit_pipeline.orchestration.asset_keys import COMPARISON_REPORT, PASS_AT_K
from zipfit_pipeline.orchestration.lineage import out_of_date

needs_sandbox = pytest.mark.skipif(
    sandbox.sandbox_python() is None, reason=f"no sandbox here: {sandbox.sandbox_problem()}"
)


def test_the_estimator_matches_hand_computed_values() -> None:
    assert estimate_pass_at_k(10, 3, 1) == pytest.approx(0.3)  # c / n
    assert estimate_pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)  # 1 - C(7,5) / C(10,5)
    assert estimate_pass_at_k(10, 0, 5) == 0.0
    assert estimate_pass_at_k(10, 6, 5) == 1.0  # fewer than k failures: some k-subset always passes
    for n, c, k in ((200, 37, 10), (20, 1, 10), (7, 2, 3)):  # the definition, in exact integers
        assert estimate_pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_completions_stop_at_the_next_top_level_statement() -> None:
    assert cut_at_stop("    return x + 1\n\ndef other():\n    pass") == "    return x + 1\n"
    assert cut_at_stop("    return 1\nif __name__ == '__main__':\n    main()") == "    return 1"
    assert cut_at_stop("    if x:\n        return 1\n    return 2") == "    if x:\n        return 1\n    return 2"


def _problems(demo_files: dict[str, Path], rows: tuple[int, int] = (0, 164)) -> list:
    return read_problems(RecordReader(str(demo_files["humaneval"]), id_field="task_id"), rows, PassAtKSettings())


@needs_sandbox
def test_canonical_solutions_pass_every_problem(demo_files: dict[str, Path]) -> None:
    from zipfit_pipeline.demo.inputs import humaneval_rows

    problems = _problems(demo_files)
    solutions = {i: row["canonical_solution"] for i, row in enumerate(humaneval_rows())}
    result = score_completions(problems, [[solutions[p.row_index]] for p in problems], PassAtKSettings())
    assert len(problems) == 164 and result.values == {1: 1.0}
    wrong = score_completions(problems[:5], [["    return None\n"]] * 5, PassAtKSettings())
    assert wrong.values == {1: 0.0}


@pytest.mark.parametrize(
    "exit_early",
    ["    import sys; sys.exit(0)\n", "    import os; os._exit(0)\n", "    raise SystemExit\n", "    exit()\n"],
)
def test_a_completion_that_exits_before_the_tests_finish_fails(demo_files: dict[str, Path], exit_early: str) -> None:
    """Status 0 is not a pass: the tests must run to the end (a completion that exits during `check`, where the
    call to the function happens, would otherwise count as correct)."""
    from zipfit_pipeline.demo.inputs import humaneval_rows

    problem = _problems(demo_files, (0, 1))[0]
    solution = humaneval_rows()[0]["canonical_solution"]
    settings = PassAtKSettings(samples=2, ks=[1])
    assert score_completions([problem], [[solution, exit_early + solution]], settings).passed == [1]


HARMFUL = {
    "wrong": "assert 1 + 1 == 3\n",
    "crashing": "raise SystemExit(3)\n",
    "infinite loop": "while True:\n    pass\n",
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "network": "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=2)\n",
    "disk filling": "import os\nfor i in range(10**6):\n    open(f'/tmp/fill{i}', 'wb').write(os.urandom(1 << 20))\n",
    "big file": "open('big', 'wb').write(b'x' * (64 << 20))\n",
    "memory": "x = bytearray(8 << 30)\n",
    "stderr flood": "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)\n",
    "host files": "open(MARKER, 'w').write('reached the host')\n",
}


@needs_sandbox
@pytest.mark.parametrize("name", HARMFUL)
def test_harmful_completions_fail_without_harming_the_host(name: str, tmp_path: Path, listener: int) -> None:
    marker = tmp_path / "marker"
    os.chmod(tmp_path, 0o777)  # even a folder anyone may write to stays out of reach
    free_before = shutil.disk_usage("/tmp").free
    rss_before = psutil.Process().memory_info().rss
    started = time.monotonic()
    program = HARMFUL[name].replace("MARKER", repr(str(marker))).replace("PORT", str(listener))
    outcome = run_program(program, Limits(wall_seconds=2, cpu_seconds=2))
    assert not outcome.passed
    assert time.monotonic() - started < 10
    assert not marker.exists()
    assert shutil.disk_usage("/tmp").free > free_before - (32 << 20)
    assert psutil.Process().memory_info().rss < rss_before + (64 << 20)  # its output never piles up here
    assert not any(
        p.read_text() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists() and _sandboxed(p)
    )  # nothing it started outlives it


def _writable_by_nobody() -> list[str]:
    """Every folder and file on this machine's file systems that `nobody` may write to, found now (not a list of
    known places): world-writable, or owned by `nobody`."""
    found = subprocess.run(
        ["find", "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")", "-prune", "-o", "(", "-type", "d", "-o",
         "-type", "f", ")", "(", "-perm", "-0002", "-o", "-user", "65534", ")", "-print"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return [path for path in found.stdout.splitlines() if path]


@needs_sandbox
def test_the_program_can_write_nowhere_on_the_host(tmp_path: Path) -> None:
    """Its root is read-only but for its own tmpfs folders: a write to each host path `nobody` could write to
    either fails or lands in the sandbox's own /tmp, /var/tmp or /dev/shm, and nothing on the host changes."""
    (tmp_path / "open").mkdir(mode=0o777)
    (tmp_path / "open").chmod(0o777)
    targets = _writable_by_nobody()
    assert str(tmp_path / "open") in targets and "/tmp" in targets
    before = {path: os.stat(path).st_mtime_ns for path in targets if os.path.exists(path)}
    name = f"zipfit-escape-{os.getpid()}"
    program = (
        f"import os\nwritten = []\nfor path in {targets!r}:\n"
        f"    try:\n"
        f"        target = os.path.join(path, {name!r}) if os.path.isdir(path) else path\n"
        f"        with open(target, 'a') as file:\n            file.write('x')\n        written.append(path)\n"
        f"    except OSError:\n        pass\n"
        "inside = lambda p: any(p == s or p.startswith(s + '/') for s in ('/tmp', '/var/tmp', '/dev/shm'))\n"
        "assert all(map(inside, written)), written\nprint('done')\n"
    )
    outcome = run_program(program, Limits(wall_seconds=30, cpu_seconds=30), finished_line="done")
    assert outcome.passed, outcome.reason
    assert not [path for path in targets if os.path.isdir(path) and os.path.exists(os.path.join(path, name))]
    assert all(os.stat(path).st_mtime_ns == mtime for path, mtime in before.items() if os.path.isfile(path))


@needs_sandbox
def test_the_program_sees_its_own_processes_and_no_host_files(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("project data")
    (tmp_path / "secret").chmod(0o644)
    program = (
        "import os, subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(5)'])\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "assert pids == [1, child.pid], pids\n"
        "assert os.getpid() == 1\n"
        f"assert not os.path.exists({str(tmp_path / 'secret')!r})\n"
        "assert not any(os.path.exists(p) for p in ('/home', '/root/.ssh', '/etc/passwd', '/run', '/sys'))\n"
        "assert set(os.listdir('/dev')) == {'null', 'zero', 'random', 'urandom', 'shm'}\n"
        "child.kill()\nprint('done')\n"
    )
    outcome = run_program(program, finished_line="done")
    assert outcome.passed, outcome.reason


@pytest.fixture
def listener() -> Iterator[int]:
    """A port listening on this machine's loopback: reachable from any process here, but not from the sandbox."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def _sandboxed(cmdline: Path) -> bool:
    try:
        return "program.py" in cmdline.read_text()
    except OSError:
        return False


def test_without_a_sandbox_generated_code_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, listener: int
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `unshare`: as on a machine without util-linux
    sandbox._probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="`unshare` command .* is not installed.*allow_unsandboxed: true"):
            run_program("print(1)")
        assert run_program("print(1)", allow_unsandboxed=True).passed
        assert not run_program("assert False", allow_unsandboxed=True).passed
        # What the sandbox's network namespace prevents (the harmful-completion test): reaching this machine's ports
        assert run_program(HARMFUL["network"].replace("PORT", str(listener)), allow_unsandboxed=True).passed
    finally:
        sandbox._probe.cache_clear()


def test_generation_gives_n_samples_per_problem_greedy_is_repeatable(
    tiny_model: Path, demo_files: dict[str, Path]
) -> None:
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    prompts = [p.prompt for p in _problems(demo_files, (82, 85))]
    greedy = PassAtKSettings(max_new_tokens=12, batch_size=2)
    first = generate_completions(model, tokenizer, prompts, greedy, seed=0)
    assert [len(c) for c in first] == [1, 1, 1]
    assert generate_completions(model, tokenizer, prompts, greedy, seed=5) == first
    single = generate_completions(model, tokenizer, prompts[1:2], greedy, seed=0)
    assert single == first[1:2]  # left padding next to other prompts changes nothing
    sampled = generate_completions(
        model, tokenizer, prompts, PassAtKSettings(samples=3, ks=[1, 3], max_new_tokens=12), 0
    )
    assert [len(c) for c in sampled] == [3, 3, 3] and len({c for s in sampled for c in s}) > 3


@needs_sandbox
@pytest.mark.slow
def test_pass_at_k_asset_reports_and_drops_checkpoints_once_measured(
    tmp_path: Path, demo_files: dict[str, Path], tiny_model: Path
) -> None:
    from zipfit_pipeline.engine.core.store import Store
    from zipfit_pipeline.orchestration.definitions import build_definitions
    from zipfit_pipeline.orchestration.materialize_all import materialize_all
    from zipfit_pipeline.orchestration.store_state import lost_partitions

    project = write_project(
        tmp_path / "project",
        demo_files,
        tiny_model,
        selection={"methods": ["zipfit", "random"], "budgets": [300]},
        training={
            "block_size": 64,
            "batch_size": 2,
            "learning_rate": 1e-3,
            "curve_points": 0,
            "seeds": [0, 1],
            "eval_max_length": 128,
            "keep_checkpoints": False,
        },
        pass_at_k={"enabled": True, "samples": 2, "ks": [1, 2], "max_new_tokens": 16, "max_problems": 3},
    )
    defs = build_definitions(str(project))
    with dg.DagsterInstance.ephemeral() as instance:
        done = materialize_all(defs, instance, log=lambda _: None)
        assert len(done[PASS_AT_K]) == 5  # base and two seeds of two methods
        store = Store(str(project.parent / "data" / "zipfit.duckdb"))
        rows = store.query("SELECT method, k, pass_at_k, samples, problems FROM pass_at_k").to_pylist()
        assert len(rows) == 10 and all(
            0 <= r["pass_at_k"] <= 1 and r["samples"] == 2 and r["problems"] == 3 for r in rows
        )
        runs = store.query("SELECT method, checkpoint, released FROM training_runs WHERE method <> 'base'").to_pylist()
        assert len(runs) == 4 and all(r["released"] and not Path(r["checkpoint"]).exists() for r in runs)
        assert lost_partitions(defs.resources["store"].path, defs.assets, instance) == []  # dropped on purpose
        report = project.parent / "data" / "artifacts" / "reports" / "tiny-gpt2" / "humaneval" / "report.md"
        markdown = report.read_text()
        assert "Pass@k on the held-out problems" in markdown and "| zipfit | 300 | 2 | 2 |" in markdown

        # Other sampling settings: every Pass@k is out of date (and nothing else but the report), and a report
        # rebuilt before they are measured again leaves the old rows out instead of mixing them in.
        config = yaml.safe_load(project.read_text())
        config["pass_at_k"]["temperature"] = 0.5
        project.write_text(yaml.safe_dump(config))
        defs = build_definitions(str(project))
        stale = out_of_date(defs, instance)
        assert set(stale) == {PASS_AT_K, COMPARISON_REPORT} and len(stale[PASS_AT_K]) == 5
        ingest(defs, instance, COMPARISON_REPORT, "tiny-gpt2|humaneval")
        assert "Pass@k on the held-out problems" not in report.read_text()
        assert (
            "- pass@k of zipfit.300.s0: measured with other evaluation settings than the project's now: "
            "materialize pass_at_k" in report.read_text()
        )
