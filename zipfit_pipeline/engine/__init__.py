"""The Dagster-free core: everything the assets do, usable from plain Python and the `zipfit` CLI."""

# Bumped whenever a change to the engine can change a stored score; part of every score's key.
ENGINE_VERSION = "1"
