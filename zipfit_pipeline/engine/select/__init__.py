"""Select: rank the decontaminated pool of every source per model and target with ZIP-FIT and the baselines, and
keep each method's selections per token budget and seed, by content hash.

Settings: `settings.py` (`selection`; its `method_names` is the one list of a project's methods). Method names:
`methods.py`. Ranking and budgets: `ranking.py`. Baselines: `dsir.py`, `d4.py`, `bm25.py`, `embeddings.py`.
Decontamination: `decontamination.py`. Work stored once per text: `per_text.py`. Tables: `tables.py`.
"""

from zipfit_pipeline.engine.select.decontamination import contaminated_selections
from zipfit_pipeline.engine.select.dsir import dsir_metadata
from zipfit_pipeline.engine.select.embeddings import embedder_identity, model_name
from zipfit_pipeline.engine.select.methods import EMBEDDING_METHODS, METHODS, is_budgeted
from zipfit_pipeline.engine.select.settings import (
    NGRAM_WORDS,
    Bm25Settings,
    D4Settings,
    DecontaminationSettings,
    DsirSettings,
    EmbeddingSettings,
    SelectionSettings,
)
from zipfit_pipeline.engine.select.stage import RemovedText, SelectionResult, SelectionSet, select_for_model
from zipfit_pipeline.engine.select.tables import SelectTables

__all__ = [
    "EMBEDDING_METHODS",
    "embedder_identity",
    "METHODS",
    "NGRAM_WORDS",
    "Bm25Settings",
    "D4Settings",
    "DecontaminationSettings",
    "DsirSettings",
    "EmbeddingSettings",
    "RemovedText",
    "SelectTables",
    "SelectionResult",
    "SelectionSet",
    "SelectionSettings",
    "contaminated_selections",
    "dsir_metadata",
    "is_budgeted",
    "model_name",
    "select_for_model",
]
