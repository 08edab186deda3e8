"""How well decontamination sees through disguised copies of test problems, and what else it removes.

Recall: each of HumanEval's 164 problems (its prompt and canonical solution, as code, without the project's
template) is disguised five ways: identifiers renamed (function, arguments, locals, and those names where the
docstring mentions them), re-indented (two spaces), re-wrapped (lines over 40 columns other than `def`, `return`,
`for`, `if` and `while` lines wrapped at 40, docstrings included, and a line break after every comma inside
brackets), comments and docstrings stripped, and all four at once. Each disguised copy is checked
against a test split of all 164 problems (as the project's template writes them), by the 13-word rule, by the
code-shape rule at several lengths, and by both together, which is what the pipeline runs.

False positives: every document of the real-text pool of `scale.py` (`corpus.real_pool`, Python, C, JavaScript
and prose found on this machine) checked against the same 164 problems: what each rule would remove. Examples of
what the code-shape rule matched are printed, so that a reader can judge them.

Run: .venv/bin/python bench/decontamination.py [--docs 185000] [--code-tokens 20 25 30 40]
"""

from __future__ import annotations

import argparse
import builtins
import io
import keyword
import re
import textwrap
import time
import tokenize
from collections.abc import Callable

from corpus import real_pool, targets

from zipfit_pipeline.demo.inputs import humaneval_rows
from zipfit_pipeline.engine.select.decontamination import HeldoutIndex
from zipfit_pipeline.engine.select.settings import NGRAM_WORDS

KEPT = set(keyword.kwlist) | set(dir(builtins))


def renamed(code: str) -> str:
    """Every name the program defines renamed (consistently, docstrings and comments too); keywords, builtins,
    attributes and imported names stay, so the program still runs."""
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    imported = {t.string for line in code.splitlines() if "import" in line for t in _names(line)}
    names: dict[str, str] = {}
    for previous, token in zip([None, *tokens], tokens):
        if token.type == tokenize.NAME and token.string not in KEPT | imported:
            if previous is None or previous.string != ".":
                names.setdefault(token.string, f"q{len(names)}z")
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b") if names else None
    out = []
    for previous, token in zip([None, *tokens], tokens):
        text = token.string
        if token.type == tokenize.NAME and text in names and (previous is None or previous.string != "."):
            text = names[text]
        elif token.type in (tokenize.STRING, tokenize.COMMENT) and pattern is not None:
            text = pattern.sub(lambda m: names[m.group(1)], text)
        out.append(token._replace(string=text))
    return tokenize.untokenize(out)


def _names(line: str) -> list[tokenize.TokenInfo]:
    try:
        return [t for t in tokenize.generate_tokens(io.StringIO(line).readline) if t.type == tokenize.NAME]
    except (tokenize.TokenError, SyntaxError):
        return []


def reindented(code: str) -> str:
    """Two spaces per level instead of four."""
    return "\n".join(" " * ((len(line) - len(line.lstrip(" "))) // 2) + line.lstrip(" ") for line in code.split("\n"))


def rewrapped(code: str) -> str:
    """Long lines wrapped at 40 columns (not `def`, `return`, `for`, `if` or `while` lines), and a line break after
    every comma inside brackets."""
    lines = []
    for line in code.split("\n"):
        indent = line[: len(line) - len(line.lstrip())]
        if len(line) > 40 and not line.lstrip().startswith(("def ", "return", "for ", "if ", "while ")):
            lines.extend(textwrap.wrap(line, 40, initial_indent="", subsequent_indent=indent) or [line])
        else:
            lines.append(line)
    out, depth = [], 0
    for char in "\n".join(lines):
        depth += char in "([{"
        depth -= char in ")]}"
        out.append(",\n        " if char == "," and depth > 0 else char)
    return "".join(out)


def stripped(code: str) -> str:
    """Comments and docstrings removed."""
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    kept = []
    for i, token in enumerate(tokens):
        if token.type == tokenize.COMMENT:
            continue
        before = tokens[i - 1].type if i else tokenize.NEWLINE
        if token.type == tokenize.STRING and before in (
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.NL,
            tokenize.DEDENT,
        ):
            kept.append(token._replace(string="pass"))  # a function whose body was only a docstring stays valid
            continue
        kept.append(token)
    return tokenize.untokenize(kept)


def everything(code: str) -> str:
    return stripped(rewrapped(reindented(renamed(code))))


DISGUISES: dict[str, Callable[[str], str]] = {
    "none": lambda code: code,
    "renamed": renamed,
    "re-indented": reindented,
    "re-wrapped": rewrapped,
    "stripped": stripped,
    "all four": everything,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=185_000)
    parser.add_argument("--code-tokens", type=int, nargs="+", default=[20, 25, 30, 40])
    args = parser.parse_args()
    problems = humaneval_rows()
    test = targets(len(problems))
    rows = list(range(len(problems)))
    words_only = HeldoutIndex(test, rows, NGRAM_WORDS, code_tokens=None)
    indexes = {n: HeldoutIndex(test, rows, NGRAM_WORDS, code_tokens=n) for n in args.code_tokens}
    code = [p["prompt"] + p["canonical_solution"] for p in problems]

    print(f"recall: of HumanEval's {len(problems)} problems, each disguised, how many copies each rule removes")
    print(f"{'disguise':<12} {'13 words':>9} " + " ".join(f"{f'code {n}':>8} {f'both {n}':>8}" for n in indexes))
    for name, disguise in DISGUISES.items():
        copies = [disguise(c) for c in code]
        by_words = [words_only.word_match(t) is not None for t in copies]
        cells = []
        for index in indexes.values():
            by_code = [index.code_match(t) is not None for t in copies]
            cells.append(f"{sum(by_code):>8} {sum(w or c for w, c in zip(by_words, by_code)):>8}")
        print(f"{name:<12} {sum(by_words):>9} " + " ".join(cells))

    started = time.perf_counter()
    pool = [d["text"] for documents in real_pool(args.docs).values() for d in documents]
    print(
        f"\nfalse positives: {len(pool):,} real-text pool documents ({time.perf_counter() - started:.0f} s to gather)"
    )
    started = time.perf_counter()
    by_words = [t for t in pool if words_only.first_overlap(t) is not None]
    print(
        f"13 words: {len(by_words):,} removed ({len(by_words) / len(pool):.4%}), {time.perf_counter() - started:.1f} s"
    )
    for n, index in indexes.items():
        started = time.perf_counter()
        hits = [(t, f) for t in pool if index.word_match(t) is None and (f := index.code_match(t)) is not None]
        seconds = time.perf_counter() - started
        print(
            f"code {n}: {len(hits):,} more removed ({len(hits) / len(pool):.4%}), both rules {seconds:.1f} s "
            f"({len(pool) / seconds:,.0f} documents/s)"
        )
        for text, found in hits[:5]:
            print(f"    test row {found.test_row}: {found.ngram[:150]!r}  in: {' '.join(text.split())[:100]!r}")


if __name__ == "__main__":
    main()
