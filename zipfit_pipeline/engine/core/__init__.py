"""What every stage shares: the store's connection and schema (`store.py`), content hashes, progress lines, the key
of a fine-tune, loading models and tokenizers, devices, and the folders the pipeline owns."""
