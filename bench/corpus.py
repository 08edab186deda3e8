"""The benchmark corpus: real text that ships with Python (no downloads), scored against HumanEval.

Sources mix standard-library functions (all packages), C header blocks and English prose; targets are
HumanEval problems 0-81 with the paper's template. `scaled(n)` reaches any size by appending a numbered
comment line to repeated documents, so every text stays distinct and is really scored. `real_pool(n)` is the
paper-scale pool of `scale.py`: distinct blocks of Python, C, JavaScript and prose from files on the machine.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from zipfit_pipeline.demo.inputs import c_headers, english_prose, humaneval_rows, paragraphs_of, python_functions


def sources(n_python: int = 3600, n_c: int = 1000, n_prose: int = 1000) -> list[str]:
    texts = [d["text"] for d in python_functions(n_python, "**/*.py")]
    texts += [d["text"] for d in c_headers(n_c)] + [d["text"] for d in english_prose(n_prose)]
    return list(dict.fromkeys(texts))


def targets(n: int = 82) -> list[str]:
    return [
        f"Problem description: {p['prompt']} \nCanonical solution: {p['canonical_solution']}"
        for p in humaneval_rows()[:n]
    ]


def scaled(base: list[str], n: int) -> list[str]:
    return [base[i % len(base)] + ("" if i < len(base) else f"\n# copy {i // len(base)}") for i in range(n)]


# The paper-scale pool: four kinds of text found on the machine, cut into blank-line blocks of 200-2000 characters.
POOL_KINDS = {  # source -> (share of the pool, file suffixes)
    "python": (0.5, (".py",)),
    "c": (0.3, (".h", ".c")),
    "javascript": (0.1, (".js", ".ts")),
    "prose": (0.1, (".md", ".rst", ".txt")),
}
POOL_ROOTS = (
    sysconfig.get_paths()["stdlib"],
    sysconfig.get_paths()["purelib"],
    "/usr/include",
    "/usr/share",
    "/usr/lib",
)


def real_pool(n: int) -> dict[str, list[dict[str, str]]]:
    """About `n` distinct documents, split between the kinds by share (what a kind short of text lacks goes to Python,
    filled last), each kind's documents in sorted file order: the same pool on the same machine."""
    files: dict[str, list[Path]] = {kind: [] for kind in POOL_KINDS}
    for root in dict.fromkeys(POOL_ROOTS):
        for path in sorted(Path(root).rglob("*")):
            for kind, (_, suffixes) in POOL_KINDS.items():
                if path.suffix in suffixes and path.is_file() and not path.is_symlink():
                    files[kind].append(path)
    seen: set[str] = set()
    pool: dict[str, list[dict[str, str]]] = {}
    left = n
    for kind, (share, _) in sorted(POOL_KINDS.items(), key=lambda item: item[1][0]):  # smallest share first
        want = left if kind == "python" else round(n * share)
        blocks = paragraphs_of(((str(p), p.read_text(encoding="utf-8", errors="replace")) for p in files[kind]), 10 * n)
        pool[kind] = []
        for block in blocks:
            if block["text"] not in seen:
                seen.add(block["text"])
                pool[kind].append(block)
                if len(pool[kind]) >= want:
                    break
        left -= len(pool[kind])
    return pool
