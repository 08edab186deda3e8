"""`python -m zipfit_pipeline.cli`: the same as the `zipfit` command."""

import sys

from zipfit_pipeline.cli import main

sys.exit(main())
