"""configs/license.py: whose weights an artifact holds. InsightFace's files are known by sha256 or name, seeded weights
are facebatch's, anything else unknown; our export stamps the licence into the ONNX file and its sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facebatch.configs.license import (
    FACEBATCH_LICENSE_NAME,
    INSIGHTFACE_LINK,
    UNKNOWN,
    given_license,
    license_of,
    license_of_weights,
)
from facebatch.configs.model_file import read_model_file
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError


def test_insightface_weights_are_known_by_sha256_or_by_name(models_dir: Path):
    for name in ("det_500m.onnx", "det_2.5g.onnx", "scrfd_500m_bnkps_640_keepbatch.onnx"):
        found = license_of_weights("onnx", f"/elsewhere/renamed_{name}", file_sha256(models_dir / name))
        assert found.name == "insightface-non-commercial" and found.link == INSIGHTFACE_LINK, name
        assert found.hub_license == "other" and "non-commercial research use only" in found.source
    assert license_of_weights("onnx", "/packs/buffalo_l/w600k_r50.onnx", None).name == "insightface-non-commercial"
    assert license_of_weights("checkpoint", "scrfd_10g_bnkps.pth", None).name == "insightface-non-commercial"
    seeded = license_of_weights("seeded", None, None)
    assert seeded.name == FACEBATCH_LICENSE_NAME == "MIT" and seeded.hub_license == "mit"
    # mobilefacenet_128d is not InsightFace's (darzhz/pixamatch): its licence is not known, and not guessed
    embedder = models_dir / "mobilefacenet_128d.onnx"
    assert license_of_weights("onnx", str(embedder), file_sha256(embedder)) == UNKNOWN
    assert not license_of(read_model_file(embedder)).known


def test_our_export_carries_the_licence_in_its_metadata_and_sidecar(small_detector: Path, batch_embedder: Path):
    model = read_model_file(small_detector)
    assert model.props["license"] == "insightface-non-commercial" and model.props["license_link"] == INSIGHTFACE_LINK
    sidecar = json.loads(small_detector.with_suffix(".json").read_text())
    assert sidecar["license"]["name"] == "insightface-non-commercial"
    assert license_of(model).name == "insightface-non-commercial"
    assert not license_of(read_model_file(batch_embedder)).known  # fix's record names a file of unknown licence


@pytest.mark.parametrize("text", ["", "   ", "unknown", "a\nb", "x" * 101])
def test_a_stated_licence_is_one_line_and_not_unknown(text: str):
    with pytest.raises(SpecError, match="license must be an SPDX id") as error:
        given_license(text)
    assert error.value.field == "license"
    assert (
        given_license(" Apache-2.0 ").hub_license == "apache-2.0" and given_license("my-terms").hub_license == "other"
    )
