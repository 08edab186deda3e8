"""Train: fine-tune each model on each selection once per seed (one epoch, the exact token budget, texts by content
hash in seeded order), on a GPU of its own when there is one, and record the run and its checkpoint.

Settings: `settings.py` (`training`). The stage: `stage.py`. The loop: `loop.py`. What trains (full, LoRA, QLoRA)
and how it is saved and loaded back: `trainable.py`. Checkpoints on disk: `checkpoints.py`. The test loss, measured
during training and by the evaluate stage alike: `heldout.py`. Tables: `tables.py`.

`load_trained` and `heldout_loss` load torch: they are imported on first use, so that importing this package (the
definitions, ingestion, scoring) never pays for it.
"""

from importlib import import_module
from typing import Any

from zipfit_pipeline.engine.train.checkpoints import release_checkpoint
from zipfit_pipeline.engine.train.settings import LoraSettings, TrainingSettings
from zipfit_pipeline.engine.train.stage import FinetuneResult, finetune_selection, training_version
from zipfit_pipeline.engine.train.tables import TrainTables

__all__ = [
    "FinetuneResult",
    "LoraSettings",
    "TrainTables",
    "TrainingSettings",
    "finetune_selection",
    "heldout_loss",
    "load_trained",
    "release_checkpoint",
    "training_version",
]
_WITH_TORCH = {"load_trained": "trainable", "heldout_loss": "heldout"}


def __getattr__(name: str) -> Any:
    if name in _WITH_TORCH:
        return getattr(import_module(f"{__name__}.{_WITH_TORCH[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
