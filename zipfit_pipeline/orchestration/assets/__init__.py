"""Software-defined assets, one module per stage: ingest → scoring → selection → training → evaluation."""
