"""The Dagster side: thin assets over the engine's stages (`assets/`), their definitions, partitions, automation
(sensors, schedules, declarative conditions), lineage and recovery, the store's state against the instance's
history, the instance's settings, and Dagster's private API behind one module (`dagster_internals.py`)."""
