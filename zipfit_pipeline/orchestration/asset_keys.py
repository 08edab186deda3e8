"""The pipeline's asset names, one constant each, in the order of the flow: assets, jobs, sensors, the CLI and the
tests name an asset only through these."""

from __future__ import annotations

SOURCE_DOCUMENTS = "source_documents"
TARGET_DOCUMENTS = "target_documents"
ALIGNMENT_SCORES = "alignment_scores"
SELECTIONS = "selections"
FINETUNED_MODEL = "finetuned_model"
EVAL_LOSS = "eval_loss"
PASS_AT_K = "pass_at_k"  # only where the project enables it
COMPARISON_REPORT = "comparison_report"

STAGES = (
    SOURCE_DOCUMENTS,
    TARGET_DOCUMENTS,
    ALIGNMENT_SCORES,
    SELECTIONS,
    FINETUNED_MODEL,
    EVAL_LOSS,
    PASS_AT_K,
    COMPARISON_REPORT,
)
