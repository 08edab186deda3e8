"""Dagster APIs this project uses knowingly while Dagster marks them beta or preview, built without the warning.

Dagster 1.13 warns each time one of these is constructed, that is on every load of the definitions (the CLI, the
tests, the UI's code server): `MultiPartitionMapping` and `MultiToSingleDimensionPartitionMapping` (beta; how
fine-tunes read their selection and the report reads every fine-tune) and partitioned asset checks (preview;
a check result per partition). The warning is silenced where they are built and nowhere else, so any other
beta or preview API still warns.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg


@contextmanager
def known_beta_apis() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield
