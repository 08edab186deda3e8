"""ZIP-FIT data selection as a Dagster pipeline.

`zipfit_pipeline.engine` is the Dagster-free core (scoring, storage, selection, training, evaluation);
`zipfit_pipeline.assets` wires it into software-defined assets, one module per stage.
"""
