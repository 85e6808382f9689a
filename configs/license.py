"""Whose weights an artifact holds, and on what terms: the licence every artifact carries (ONNX
``metadata_props``, the sidecar, the Triton repository, the release manifest and its model card).

The weights decide it, not the code: InsightFace's pretrained SCRFD and ArcFace weights (its model
packs, its checkpoints) are for non-commercial research only; seeded weights are facebatch's own
(random numbers, under facebatch's licence). A file is recognised by the licence facebatch stamped
into it, by the sha256 or the name of the weights it was made from, or by its own; anything else is
``unknown``, which a release refuses until the caller says what the licence is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facebatch.configs.model_file import ModelFile
from facebatch.core.errors import SpecError
from facebatch.core.trusted_paths import printable

LICENSE_PROP, LINK_PROP, SOURCE_PROP = "license", "license_link", "license_source"  # metadata_props keys
UNKNOWN_NAME = "unknown"
INSIGHTFACE_LINK = "https://github.com/deepinsight/insightface#license"
FACEBATCH_LICENSE_NAME = "MIT"  # pyproject.toml's license
FACEBATCH_LICENSE_LINK = "https://opensource.org/licenses/MIT"
# Licences the Hugging Face hub knows by their SPDX id (its card's `license:`); any other is `other` + license_name.
HUB_LICENSES = {
    "mit",
    "apache-2.0",
    "bsd-2-clause",
    "bsd-3-clause",
    "cc0-1.0",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nc-nd-4.0",
    "gpl-3.0",
    "lgpl-3.0",
    "agpl-3.0",
    "mpl-2.0",
    "openrail",
}
# InsightFace's model-pack files (buffalo_l/s/m, antelopev2) and the SCRFD checkpoints of its detection repo.
INSIGHTFACE_PACK_FILES = {
    "det_10g.onnx",
    "det_2.5g.onnx",
    "det_500m.onnx",
    "w600k_r50.onnx",
    "w600k_mbf.onnx",
    "glintr100.onnx",
    "scrfd_10g_bnkps.onnx",
    "2d106det.onnx",
    "1k3d68.onnx",
    "genderage.onnx",
}
INSIGHTFACE_CHECKPOINT = re.compile(
    r"^scrfd_(500m|1g|2\.5g|10g|34g)(_bnkps|_kps)?(_shape\d+x\d+)?\.pth$", re.IGNORECASE
)
# Copies of InsightFace's SCRFD weights known by their sha256 (the test fixtures: ../shared/fixtures/SHA256SUMS)
INSIGHTFACE_SHA256 = {
    "bc24bb349491481c3ca793cf89306723162c280cb284c5a5e49df3760bf5c2ce": "det_2.5g.onnx (SCRFD-2.5G-KPS)",
    "77a721d93bf18b12e0ca60c654895a3bfd1cc6bd8960ead1d802e2b95e5454fc": "det_500m.onnx (SCRFD-500M-KPS)",
    "517cb1980c72422e676738fc45431700fb7cbee56d0f825b623ee427b3e5ce58": "scrfd_500m_kps.onnx (SCRFD-500M-KPS)",
}
GIVEN_MAX = 100  # characters of a licence given by the caller


@dataclass(frozen=True)
class License:
    """A licence as a model card states it: its name (an SPDX id or a name), a link to its text, and how
    facebatch knows it (in words)."""

    name: str
    link: str = ""
    source: str = ""

    @property
    def known(self) -> bool:
        return self.name != UNKNOWN_NAME

    @property
    def hub_license(self) -> str:
        """The card's ``license:`` field: the SPDX id the hub knows, else ``other`` (with ``license_name``)."""
        return self.name.lower() if self.name.lower() in HUB_LICENSES else "other"

    def line(self) -> str:
        return f"{self.name} ({self.link})" if self.link else self.name

    def props(self) -> dict[str, str]:
        """Its ``metadata_props`` (flat strings)."""
        return {LICENSE_PROP: self.name, LINK_PROP: self.link, SOURCE_PROP: self.source}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "link": self.link, "source": self.source, "hub_license": self.hub_license}


UNKNOWN = License(UNKNOWN_NAME, "", "not recognised: not a file facebatch knows the weights of")
SEEDED = License(FACEBATCH_LICENSE_NAME, FACEBATCH_LICENSE_LINK, "seeded weights: facebatch's own random numbers")


def insightface(why: str) -> License:
    return License(
        "insightface-non-commercial",
        INSIGHTFACE_LINK,
        f"InsightFace's pretrained weights ({why}): non-commercial research use only",
    )


def license_of_weights(kind: str, name: str | None, sha256: str | None) -> License:
    """The licence of weights an export read: ``kind`` seeded, checkpoint or onnx; ``name`` the file's name."""
    if kind == "seeded":
        return SEEDED
    if sha256 and sha256 in INSIGHTFACE_SHA256:
        return insightface(f"a copy of {INSIGHTFACE_SHA256[sha256]}, by its sha256")
    base = Path(name or "").name
    if base in INSIGHTFACE_PACK_FILES:
        return insightface(f"{base}, a file of its model packs")
    if INSIGHTFACE_CHECKPOINT.match(base):
        return insightface(f"{base}, an SCRFD checkpoint of its detection repository")
    return UNKNOWN


def license_of(model: ModelFile) -> License:
    """An ONNX file's licence: the one facebatch stamped into it; else that of the weights it was exported
    from, of the file it was made from (fix, convert, quantize), or of the file itself; else unknown."""
    props = model.props
    if props.get(LICENSE_PROP):
        return License(props[LICENSE_PROP], props.get(LINK_PROP, ""), props.get(SOURCE_PROP, ""))
    if props.get("weights_source") in ("seeded", "checkpoint", "onnx"):
        weights = model.recorded_weights
        found = license_of_weights(
            props["weights_source"], weights.get("path"), props.get("weights_sha256") or weights.get("sha256")
        )
        if found.known:
            return found
    recorded = model.recorded_source
    if recorded is not None:
        found = license_of_weights("onnx", recorded.name, recorded.sha256)
        if found.known:
            return found
    return license_of_weights("onnx", model.path.name, model.sha256)


def given_license(text: str) -> License:
    """A licence the caller states (an SPDX id such as Apache-2.0, or a name): one printable line."""
    name = text.strip()
    if not name or len(name) > GIVEN_MAX or not name.isprintable() or name.lower() == UNKNOWN_NAME:
        raise SpecError(
            f"license must be an SPDX id (e.g. Apache-2.0) or a licence's name, one line of at most {GIVEN_MAX} "
            f"characters, got {printable(text)}",
            field="license",
        )
    return License(name, "", "stated by the releaser")
