"""The Ray backend, on a local Ray cluster, gives exactly the local backend's scores."""

import json
import os

import numpy as np
import pytest

from zipfit_pipeline.engine.score.alignment import alignment_scores, score_chunks
from zipfit_pipeline.engine.score.ray_backend import LOOPBACK_ONLY

os.environ.setdefault(LOOPBACK_ONLY, "0")  # before ray is imported here (the backend sets it when it imports ray)
ray = pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")


def test_ray_backend_scores_equal_local(demo_files: dict) -> None:
    texts = [
        json.loads(line)["text"] for line in demo_files["english_prose"].read_text(encoding="utf-8").splitlines()[:120]
    ]
    targets = [
        json.loads(line)["prompt"] for line in demo_files["humaneval"].read_text(encoding="utf-8").splitlines()[:10]
    ]
    chunks = [texts[i : i + 25] for i in range(0, len(texts), 25)]
    try:
        on_ray = np.concatenate(list(score_chunks(chunks, targets, "gzip", 9, workers=2, backend="ray")))
        # The local cluster's node is 127.0.0.1, so none of its servers listens on the machine's address.
        assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(on_ray, alignment_scores(texts, targets, "gzip", 9))
