"""How much the order of the selected texts moves the test loss at demo scale, after `make demo`.

Fine-tunes the demo model on the seed-0 selections of ZIP-FIT and random twice: in the order the method ranked
the texts (ZIP-FIT's best first, as this pipeline trained before it shuffled), and in the pipeline's seeded
shuffle. Same texts, same token budget, same seed; only the order differs. Prints the test cross-entropy of each.

    .venv/bin/python bench/training_order.py [--config zipfit.yaml] [--methods zipfit random]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch

from zipfit_pipeline.config import load_project
from zipfit_pipeline.engine.core.models import load_model_and_tokenizer
from zipfit_pipeline.engine.core.runs import RunKey
from zipfit_pipeline.engine.core.store import Store
from zipfit_pipeline.engine.ingest import IngestTables
from zipfit_pipeline.engine.train import loop as training
from zipfit_pipeline.engine.train.heldout import heldout_loss
from zipfit_pipeline.engine.train.stage import selected_texts


@contextmanager
def ranked_order() -> Iterator[None]:
    """Train on the texts in the order given (the method's ranking) instead of the pipeline's seeded shuffle."""
    shuffled = training.shuffled
    training.shuffled = lambda texts, seed: list(texts)
    try:
        yield
    finally:
        training.shuffled = shuffled


def test_loss(config_file: str, method: str, ranked: bool) -> float:
    config = load_project(config_file)
    model_spec, target = config.models[0], config.targets[0].name
    store = Store(config.resolve(config.store))
    budget = config.selection.budgets[-1]
    texts = selected_texts(store, RunKey(model_spec.name, target, method, budget, 0))
    model, tokenizer = load_model_and_tokenizer(config.model_path(model_spec))
    with ranked_order() if ranked else nullcontext():
        training.finetune(model, tokenizer, texts, budget, config.training, 0, torch.device("cpu"), log=lambda _: None)
    return heldout_loss(
        model,
        tokenizer,
        IngestTables(store).target_texts(target, "test"),
        config.training.eval_max_length,
        config.training.eval_batch_size,
    )[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="zipfit.yaml")
    parser.add_argument("--methods", nargs="+", default=["zipfit", "random"])
    args = parser.parse_args()
    print("| method | order | test CE |\n|---|---|---:|")
    for method in args.methods:
        for ranked in (True, False):
            order = "the method's ranking" if ranked else "seeded shuffle (the pipeline's)"
            print(f"| {method} | {order} | {test_loss(args.config, method, ranked):.4f} |", flush=True)


if __name__ == "__main__":
    main()
