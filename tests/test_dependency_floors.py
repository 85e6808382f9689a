"""pyproject's floors sit past the advisories that touch what facebatch reads from elsewhere (issue 34): a floor
lowered below one of these would let pip pick a version that runs code from a checkpoint, a Parquet file or a photo."""

from __future__ import annotations

import re

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import PROJECT

# package → (first fixed version, the advisory)
ADVISORIES = {
    "torch": ("2.6", "CVE-2025-32434: torch.load(weights_only=True) runs code"),
    "onnx": ("1.17", "CVE-2024-27318 / CVE-2024-5187: path traversal in external data and downloads"),
    "opencv-python-headless": ("4.8.1.78", "CVE-2023-4863: libwebp heap overflow in bundled wheels"),
    "pyarrow": ("14.0.1", "CVE-2023-47248: code execution reading a crafted IPC/Parquet file"),
    "requests": ("2.32", "CVE-2024-35195: certificate checks off for a session after one verify=False"),
}


def floors() -> dict[str, list[Version]]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    found: dict[str, list[Version | None]] = {}
    lists = [project["dependencies"], *project["optional-dependencies"].values()]
    for line in (item for group in lists for item in group):
        requirement = Requirement(line)
        minimum = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=", ">")]
        found.setdefault(requirement.name.lower(), []).append(max(minimum) if minimum else None)
    return found


def test_every_floor_is_past_its_advisory():
    found = floors()
    for package, (fixed, advisory) in ADVISORIES.items():
        assert package in found, f"{package} is no longer a dependency: drop it from ADVISORIES"
        for floor in found[package]:
            assert floor is not None and floor >= Version(fixed), f"{package} floor {floor} < {fixed} ({advisory})"


def test_the_makefile_installs_no_version_below_a_floor():
    makefile = (PROJECT / "Makefile").read_text()
    for package, (fixed, _) in ADVISORIES.items():
        for pinned in re.findall(rf"'?{re.escape(package)}==([0-9.]+)", makefile):
            assert Version(pinned) >= Version(fixed), (package, pinned)
