"""Score: ZIP-FIT's alignment of every stored text with a target set (mean over targets of 1 - NCD), exact to the
reference, in chunks committed as they finish; only texts without a stored score are computed.

Settings: `settings.py` (`scoring`). Score sets: `score_set.py`. Algorithms: `compression.py`, `scorer.py` (one
text), `native.py` (the C extension), `alignment.py` and `ray_backend.py` (streams of texts on threads, processes
or Ray). Tables: `tables.py`.
"""

from zipfit_pipeline.engine.score.alignment import BACKENDS, alignment_scores, golden_mismatches
from zipfit_pipeline.engine.score.compression import check_compressor, compressor_build
from zipfit_pipeline.engine.score.native import code_path, score_build
from zipfit_pipeline.engine.score.score_set import (
    ZIPFIT,
    ScoreSet,
    is_zipfit,
    score_sets,
    subset_method,
    target_set_hash,
    variant_method,
    zipfit_methods,
)
from zipfit_pipeline.engine.score.settings import ScoringSettings
from zipfit_pipeline.engine.score.stage import ScoringReport, pool_scores, score_dataset, summarize_scores
from zipfit_pipeline.engine.score.tables import ScoreTables

__all__ = [
    "BACKENDS",
    "ZIPFIT",
    "alignment_scores",
    "check_compressor",
    "code_path",
    "score_build",
    "compressor_build",
    "golden_mismatches",
    "ScoreSet",
    "ScoreTables",
    "ScoringReport",
    "ScoringSettings",
    "is_zipfit",
    "pool_scores",
    "score_dataset",
    "summarize_scores",
    "score_sets",
    "subset_method",
    "target_set_hash",
    "variant_method",
    "zipfit_methods",
]
