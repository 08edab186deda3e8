"""The training loop and test loss on a tiny GPT-2 with GPT-2's real vocabulary."""

import math

import torch

from zipfit_pipeline.engine.core.models import count_tokens, document_start_id, load_model_and_tokenizer
from zipfit_pipeline.engine.train.heldout import heldout_loss
from zipfit_pipeline.engine.train.loop import finetune, learning_rate, make_batches, pack_tokens, shuffled
from zipfit_pipeline.engine.train.settings import TrainingSettings

TEXTS = [f"def double_{i}(x):\n    return 2 * x + {i}\n" for i in range(40)]
HELDOUT = ["def triple(x):\n    return 3 * x\n", "The quick brown fox.", "for i in range(10):\n    print(i * i)\n" * 3]


def test_pack_tokens_starts_every_document_and_cuts_at_budget(tiny_model) -> None:
    _, tokenizer = load_model_and_tokenizer(str(tiny_model))
    counts = count_tokens(tokenizer, TEXTS[:2])
    ids = pack_tokens(tokenizer, TEXTS, budget=counts[0] + 3)
    start = document_start_id(tokenizer)
    assert len(ids) == counts[0] + 3
    assert ids[0] == ids[counts[0]] == start == tokenizer.bos_token_id  # GPT-2's BOS (which is also its EOS)
    assert (ids == start).sum() == 2


def test_documents_start_with_bos_where_the_tokenizer_has_one_else_eos(tiny_model) -> None:
    _, tokenizer = load_model_and_tokenizer(str(tiny_model))
    tokenizer.add_special_tokens({"bos_token": "<|bos|>"})
    assert document_start_id(tokenizer) == tokenizer.convert_tokens_to_ids("<|bos|>") != tokenizer.eos_token_id
    tokenizer.bos_token = None
    assert document_start_id(tokenizer) == tokenizer.eos_token_id


def test_make_batches_pads_last_block_and_ignores_padding() -> None:
    batches = list(make_batches(list(range(10)), block_size=4, batch_size=2, pad_id=0))
    assert [tuple(b[0].shape) for b in batches] == [(2, 4), (1, 4)]
    assert batches[1][1].tolist() == [[8, 9, -100, -100]]


def test_a_last_block_with_nothing_to_predict_is_dropped(tiny_model) -> None:
    """9 tokens in blocks of 4 leave one token: alone, it has no next token to predict and its loss would be NaN."""
    assert [b[1].tolist() for b in make_batches(list(range(9)), block_size=4, batch_size=1, pad_id=0)] == [
        [[0, 1, 2, 3]],
        [[4, 5, 6, 7]],
    ]
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    settings = TrainingSettings(block_size=16, batch_size=1, learning_rate=1e-3, curve_points=0)
    result = finetune(model, tokenizer, TEXTS, 16 * 5 + 1, settings, 0, torch.device("cpu"), log=lambda _: None)
    assert all(math.isfinite(loss) for _, loss in result.train_curve)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_warmup_then_decay() -> None:
    settings = TrainingSettings(learning_rate=1.0, warmup_fraction=0.2, min_lr_ratio=0.1)
    rates = [learning_rate(step, 10, settings) for step in range(10)]
    assert rates[0] < rates[1] == 1.0
    assert all(a >= b for a, b in zip(rates[1:], rates[2:]))
    assert rates[-1] >= 0.1


def test_training_order_depends_on_the_texts_and_seed_not_on_the_ranking() -> None:
    ranked, reversed_ranking = TEXTS, TEXTS[::-1]
    assert shuffled(ranked, 3) == shuffled(reversed_ranking, 3)
    assert shuffled(ranked, 3) != shuffled(ranked, 4)
    assert sorted(shuffled(ranked, 3)) == sorted(TEXTS) and shuffled(ranked, 3) != ranked


def _trained_weights(tiny_model, texts: list[str], seed: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    settings = TrainingSettings(block_size=32, batch_size=2, learning_rate=3e-3, curve_points=0)
    result = finetune(model, tokenizer, texts, 300, settings, seed, torch.device("cpu"), log=lambda _: None)
    return [loss for _, loss in result.train_curve], model.state_dict()


def test_two_methods_that_select_the_same_texts_train_the_same_model(tiny_model) -> None:
    """Shuffling is seeded and the same for every method: the ranking order of a selection never reaches training."""
    losses, weights = _trained_weights(tiny_model, TEXTS, seed=1)
    other_losses, other_weights = _trained_weights(tiny_model, TEXTS[::-1], seed=1)
    assert losses == other_losses
    assert all(torch.equal(weights[name], other_weights[name]) for name in weights)
    assert _trained_weights(tiny_model, TEXTS, seed=2)[0] != losses


def test_heldout_loss_is_transformers_own_loss_per_text(tiny_model) -> None:
    """Each text after the document-start token, every token predicted: what `labels=` computes, averaged per token."""
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    start = document_start_id(tokenizer)
    total, count = 0.0, 0
    for text in HELDOUT:
        ids = torch.tensor([[start, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()  # mean over the text's len(ids) - 1 predictions
        total, count = total + loss * (ids.shape[1] - 1), count + ids.shape[1] - 1
    ours, tokens = heldout_loss(model, tokenizer, HELDOUT, max_length=128, batch_size=1)
    assert tokens == count
    assert abs(ours - total / count) < 1e-5


def test_heldout_loss_does_not_depend_on_the_batch_size(tiny_model) -> None:
    """Shorter texts are padded next to longer ones; padding must change nothing."""
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    losses = {
        size: heldout_loss(model, tokenizer, HELDOUT + TEXTS[:5], max_length=128, batch_size=size) for size in (1, 3, 8)
    }
    assert len({tokens for _, tokens in losses.values()}) == 1
    assert max(loss for loss, _ in losses.values()) - min(loss for loss, _ in losses.values()) < 1e-5


def test_weights_held_in_bf16_are_measured_in_float32_and_kept_in_bf16(tiny_model) -> None:
    """A LoRA base frozen in bf16 during training: its curve points are the measurement the final eval makes (the
    same weights, loaded in float32), and training goes on with the bf16 weights untouched."""
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    low = model.to(torch.bfloat16)
    before = {name: p.detach().clone() for name, p in low.named_parameters()}
    during = heldout_loss(low, tokenizer, HELDOUT, max_length=128)
    assert all(p.dtype == torch.bfloat16 and torch.equal(p, before[name]) for name, p in low.named_parameters())
    final = heldout_loss(low.float(), tokenizer, HELDOUT, max_length=128)  # the bf16 values, loaded as float32
    assert during == final


def test_finetune_lowers_test_loss_and_records_curves(tiny_model) -> None:
    model, tokenizer = load_model_and_tokenizer(str(tiny_model))
    before, n_tokens = heldout_loss(model, tokenizer, TEXTS[:5], max_length=64)
    settings = TrainingSettings(block_size=64, batch_size=2, learning_rate=3e-3, curve_points=2)
    result = finetune(
        model,
        tokenizer,
        TEXTS,
        700,
        settings,
        0,
        torch.device("cpu"),
        evaluate=lambda m: heldout_loss(m, tokenizer, TEXTS[:5], max_length=64)[0],
        log=lambda _: None,
    )
    after, _ = heldout_loss(model, tokenizer, TEXTS[:5], max_length=64)
    assert result.train_tokens == 700
    assert result.train_curve[-1][0] == 700
    assert len(result.test_curve) == 2
    assert after < before - 1.0
    assert n_tokens == sum(count_tokens(tokenizer, TEXTS[:5])) - 5  # every text token predicted, after the start token
