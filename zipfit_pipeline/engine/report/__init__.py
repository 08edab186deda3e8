"""Report: the comparison a user decides on, from current results only. Reading results through each stage's
tables: `results.py`; means, intervals and paired differences: `statistics.py`; Markdown: `markdown.py`; PNG
plots: `plots.py`; the stage: `stage.py`."""

from zipfit_pipeline.engine.report.markdown import render_markdown
from zipfit_pipeline.engine.report.results import CurrentInputs, headline
from zipfit_pipeline.engine.report.stage import build_report
from zipfit_pipeline.engine.report.statistics import Report

__all__ = ["CurrentInputs", "Report", "build_report", "headline", "render_markdown"]
