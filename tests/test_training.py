"""The training loop and test loss on a tiny GPT-2 with GPT-2's real vocabulary."""

import torch

from zipfit_pipeline.engine.evaluation import heldout_loss
from zipfit_pipeline.engine.models import count_tokens, load_model_and_tokenizer
from zipfit_pipeline.engine.training import TrainSettings, finetune, learning_rate, make_batches, pack_tokens

TEXTS = [f"def double_{i}(x):\n    return 2 * x + {i}\n" for i in range(40)]


def test_pack_tokens_cuts_at_budget_with_eos_between_documents(tiny_model) -> None:
    _, tokenizer = load_model_and_tokenizer(str(tiny_model))
    counts = count_tokens(tokenizer, TEXTS[:2])
    ids = pack_tokens(tokenizer, TEXTS, budget=counts[0] + 3)
    assert len(ids) == counts[0] + 3
    assert ids[counts[0] - 1] == tokenizer.eos_token_id


def test_make_batches_pads_last_block_and_ignores_padding() -> None:
    batches = make_batches(list(range(10)), block_size=4, batch_size=2, pad_id=0)
    assert [tuple(b[0].shape) for b in batches] == [(2, 4), (1, 4)]
    assert batches[1][1].tolist() == [[8, 9, -100, -100]]


def test_warmup_then_decay() -> None:
    settings = TrainSettings(learning_rate=1.0, warmup_fraction=0.2, min_lr_ratio=0.1)
    rates = [learning_rate(step, 10, settings) for step in range(10)]
    assert rates[0] < rates[1] == 1.0
    assert all(a >= b for a, b in zip(rates[1:], rates[2:]))
    assert rates[-1] >= 0.1


def test_finetune_lowers_test_loss_and_records_curves(tiny_model) -> None:
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    before, n_tokens = heldout_loss(model, tokenizer, TEXTS[:5], max_length=64)
    settings = TrainSettings(block_size=64, batch_size=2, learning_rate=3e-3, curve_points=2)
    result = finetune(model, tokenizer, TEXTS, 700, settings, torch.device("cpu"),
                      evaluate=lambda m: heldout_loss(m, tokenizer, TEXTS[:5], max_length=64)[0], log=lambda _: None)
    after, _ = heldout_loss(model, tokenizer, TEXTS[:5], max_length=64)
    assert result.train_tokens == 700
    assert result.train_curve[-1][0] == 700
    assert len(result.test_curve) == 2
    assert after < before - 1.0
    assert n_tokens == sum(count_tokens(tokenizer, TEXTS[:5])) - 5  # every text token predicted, after a leading EOS
