"""Evaluate: the test cross-entropy of the base model and of every fine-tune's current checkpoint on the target's
held-out split, and (when enabled) pass@k of the code each one writes, executed in a sandbox. Each result records
the training run whose checkpoint it measured.

Settings: `settings.py` (`pass_at_k`). The test loss: `stage.py` (measured with the train stage's `heldout_loss`).
Pass@k: `pass_at_k.py`, `sandbox.py`, `sandbox_launcher.py`. Tables: `tables.py`.
"""

from zipfit_pipeline.engine.evaluate.pass_at_k import PassAtK, measure_run, read_problems
from zipfit_pipeline.engine.evaluate.sandbox import sandbox_interpreter
from zipfit_pipeline.engine.evaluate.settings import PassAtKSettings
from zipfit_pipeline.engine.evaluate.stage import EvalResult, evaluate_run
from zipfit_pipeline.engine.evaluate.tables import EvalTables, Measured

__all__ = [
    "EvalResult",
    "EvalTables",
    "Measured",
    "PassAtK",
    "PassAtKSettings",
    "evaluate_run",
    "measure_run",
    "read_problems",
    "sandbox_interpreter",
]
