"""search against a gallery's recorded precisions both ways — the command line and ``facebatch.search``: a gallery
whose manifest records its detector computing in BF16 is refused in the same one line when the search asks for
fp32, and an ``embed`` .npz computed in FP32 is refused in it the same way (embeddings of two precisions never
mix). Nothing here computes in BF16: the record is written into the manifest, as index writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facebatch import api
from facebatch.engines.gallery.defaults import MANIFEST
from facebatch.engines.pipeline.options import PipelineOptions
from tests.facebatch.parity.both_ways import assert_same_refusal

FAST = ["--threads", "1", "--lanes", "1"]


@pytest.fixture(scope="module")
def bf16_gallery(models_dir: Path, batch_embedder: Path, photos: list[Path], tmp_path_factory) -> Path:
    """Two fixture photos indexed (auto: fp32 here), then recorded as if the detector had computed in BF16."""
    out = tmp_path_factory.mktemp("bf16_gallery") / "gallery"
    one_lane = PipelineOptions(lanes=1)
    api.index(photos[:2], out, detector=models_dir / "det_500m.onnx", embedder=batch_embedder, settings=one_lane)
    data = json.loads((out / MANIFEST).read_text())
    assert data["models"]["detector"]["precision"] == "fp32"
    data["models"]["detector"]["precision"] = "bf16"
    (out / MANIFEST).write_text(json.dumps(data))
    return out


def test_search_in_another_precision_than_the_gallerys_is_refused_both_ways(
    bf16_gallery: Path, photos: list[Path], capsys
):
    query = str(photos[0])
    argv = ["search", query, "--gallery", str(bf16_gallery), "--precision", "fp32", *FAST]
    refused = assert_same_refusal(argv, lambda: api.search([query], bf16_gallery, precision="fp32", threads=1), capsys)
    assert refused.field == "precision" and "embeddings of two precisions must not mix" in str(refused)


def test_an_npz_of_another_precision_is_refused_both_ways(
    bf16_gallery: Path, models_dir: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, capsys
):
    npz = tmp_path / "query.npz"
    api.embed([photos[0]], npz, detector=models_dir / "det_500m.onnx", embedder=batch_embedder, threads=1)
    argv = ["search", str(npz), "--gallery", str(bf16_gallery), *FAST]
    refused = assert_same_refusal(argv, lambda: api.search([npz], bf16_gallery, threads=1), capsys)
    assert f"query {npz} computed it in fp32" in str(refused)
