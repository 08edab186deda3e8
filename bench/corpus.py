"""The benchmark corpus: real text that ships with Python (no downloads), scored against HumanEval.

Sources mix standard-library functions (all packages), C header blocks and English prose; targets are
HumanEval problems 0-81 with the paper's template. `scaled(n)` reaches any size by appending a numbered
comment line to repeated documents, so every text stays distinct and is really scored.
"""

from __future__ import annotations

from zipfit_pipeline.engine.demo_data import c_headers, english_prose, humaneval_rows, python_functions


def sources(n_python: int = 3600, n_c: int = 1000, n_prose: int = 1000) -> list[str]:
    texts = [d["text"] for d in python_functions(n_python, "**/*.py")]
    texts += [d["text"] for d in c_headers(n_c)] + [d["text"] for d in english_prose(n_prose)]
    return list(dict.fromkeys(texts))


def targets(n: int = 82) -> list[str]:
    return [f"Problem description: {p['prompt']} \nCanonical solution: {p['canonical_solution']}" for p in humaneval_rows()[:n]]


def scaled(base: list[str], n: int) -> list[str]:
    return [base[i % len(base)] + ("" if i < len(base) else f"\n# copy {i // len(base)}") for i in range(n)]
