"""The bundled offline demo: its inputs and models, and the tiny model the tests train (not the engine)."""
