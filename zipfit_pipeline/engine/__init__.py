"""The Dagster-free engine: everything the assets do, usable from plain Python and the `zipfit` CLI.

One package per stage, in the order data flows through them: `ingest`, `score`, `select`, `train`, `evaluate`,
`report`; each owns its settings section, its stage function, its algorithms and its tables. `core` is what they
share: the store, content hashes, progress lines, run keys, models and devices. A stage uses another only through
that stage's package, and only an earlier one.
"""

# Bumped whenever a change to the engine can change a stored score; part of every score's key.
ENGINE_VERSION = "1"
