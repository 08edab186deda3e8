"""Software-defined assets, one module per stage: ingest → score → select → train → evaluate → report. Each asset's
code version comes from what it declares it reads (`versions.py`)."""
