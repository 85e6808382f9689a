"""``facebatch release --check``: a release folder re-verified later: the whole folder, every hash, every artifact.

A release folder may come from elsewhere (a CI artifact, a download, a shared disk), so the check
trusts nothing in it. It walks every entry of the folder, not only those its MANIFEST.json lists:
a file the manifest does not list (a planted ``triton/*/1/model.py`` is code ``serve`` would run)
fails, and so does a symlink or a special file, a listed name that is absolute, holds ``..`` or is
not a plain relative name, and an artifact or reference the file list does not hold. Names are
validated before they are joined to the folder, links are never followed, and no file outside the
folder is read (an artifact's recorded source is looked for in the release only). The folder's own
word can be anchored outside it: ``manifest_sha256``, the sha256 ``facebatch release`` printed,
fails any other MANIFEST.json before anything in it is believed.
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import stat_result
from pathlib import Path, PurePosixPath
from typing import Any

from facebatch.configs.model_file import ModelFile, RecordedSource, read_model_file
from facebatch.configs.precision import Precision
from facebatch.core.environment import file_sha256, int8_cpu_class
from facebatch.core.errors import FacebatchError, SpecError
from facebatch.core.progress import step
from facebatch.core.trusted_paths import UntrustedNameError, printable, safe_relative, walk_files
from facebatch.exporter.torch_reference import TORCH, torch_reference
from facebatch.verify.reference import ReferenceFactory, onnx_reference
from facebatch.verify.verify_job import VerifyOptions, verify_model
from facebatch.workflows.quantize import recheck_int8
from facebatch.workflows.release.gates import reference_for
from facebatch.workflows.release.manifest import MANIFEST
from facebatch.workflows.release.settings import SHA256_HEX

SOURCE_FOLDERS = ("onnx", "references")  # where a release keeps the files its artifacts were made from


@dataclass
class CheckResult:
    path: Path
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)  # artifacts that no longer pass verify
    verified: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # files in the folder that its MANIFEST.json does not list
    unsafe: list[str] = field(default_factory=list)  # what the check would not follow or read, each saying why
    manifest_sha256: str = ""  # of the MANIFEST.json checked
    expected_sha256: str | None = None  # the anchor it was given (None: not anchored)

    @property
    def anchored(self) -> bool:
        """The manifest is the one the caller named (or none was named)."""
        return self.expected_sha256 is None or self.manifest_sha256 == self.expected_sha256

    def intact(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` that are there with the size and sha256 the manifest lists."""
        return [name for name in names if name not in self.missing and name not in self.changed]

    @property
    def passed(self) -> bool:
        return self.anchored and not (self.missing or self.changed or self.failing or self.unlisted or self.unsafe)

    def problems(self) -> list[str]:
        mismatch = (
            []
            if self.anchored
            else [
                f"{MANIFEST} has sha256 {self.manifest_sha256}, not the one expected ({self.expected_sha256}): "
                "not the release that was anchored, nothing in it was checked"
            ]
        )
        return (
            mismatch
            + [f"unsafe: {u}" for u in self.unsafe]
            + [f"not listed in {MANIFEST}: {printable(u)}" for u in self.unlisted]
            + [f"missing: {m}" for m in self.missing]
            + [f"changed (sha256 or size): {c}" for c in self.changed]
            + [f"fails verify: {f}" for f in self.failing]
        )


def manifest_anchor(text: str | None) -> str | None:
    """``--manifest-sha256``: 64 hexadecimal digits (any case), as ``release`` printed them; None: no anchor."""
    if text is None:
        return None
    if not SHA256_HEX.fullmatch(text.strip()):
        raise SpecError(
            f"--manifest-sha256 must be 64 hexadecimal digits (the sha256 'facebatch release' printed for its "
            f"{MANIFEST}), got {printable(text)}"
        )
    return text.strip().lower()


def check_release(folder: Path, photos: Sequence[Path] = (), *, manifest_sha256: str | None = None) -> CheckResult:
    """The whole folder against its manifest (every entry listed, plain and unchanged), then every
    artifact through verify --strict (FP32 against torch, FP16 against the FP32 source beside it).
    ``manifest_sha256`` anchors the check outside the folder: any other MANIFEST.json fails."""
    folder = Path(folder)
    result = CheckResult(folder, expected_sha256=manifest_anchor(manifest_sha256))
    raw = _manifest_bytes(folder, result)
    if raw is None:
        return result
    result.manifest_sha256 = hashlib.sha256(raw).hexdigest()
    if not result.anchored:  # another manifest's word is worth nothing: nothing in it is read or believed
        return result
    manifest = _parse_manifest(folder, raw)
    entries = dict(sorted(walk_files(folder)))
    listed = _listed_files(manifest["files"], result)
    _walk(entries, listed, result)
    _compare_hashes(folder, entries, listed, result)
    artifacts, references = _artifacts_and_references(manifest, listed, result)
    if result.unsafe:  # the folder is not what a release writes: nothing more of it is read
        return result
    _verify_artifacts(folder, artifacts, references, listed, photos, result)
    return result


# -- the folder and its manifest -------------------------------------------------------------------
def _manifest_bytes(folder: Path, result: CheckResult) -> bytes | None:
    """MANIFEST.json's bytes: the file itself, never through a link (None, and why in ``result``)."""
    path = folder / MANIFEST
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise SpecError(f"{folder} holds no {MANIFEST}; is it a facebatch release folder?") from None
    if not stat.S_ISREG(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
        result.unsafe.append(f"{MANIFEST} is {kind}; the check reads the folder's own file only, not followed")
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path} cannot be read ({exc.strerror}); the release cannot be checked") from None


def _parse_manifest(folder: Path, raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
        if not (
            isinstance(manifest, dict)
            and isinstance(manifest["files"], dict)
            and isinstance(manifest.get("artifacts", []), list)
            and isinstance(manifest.get("references", {}), dict)
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: JSON nested past Python's stack
        raise SpecError(f"{folder / MANIFEST} is unreadable; the release cannot be checked") from None
    return manifest


def _listed_files(files: Mapping[Any, Any], result: CheckResult) -> dict[str, dict[str, Any]]:
    """The manifest's file list, each name a plain relative path with a {sha256, size} record; the
    rest goes to ``result.unsafe`` (and is never joined to the folder)."""
    listed = {}
    for name, record in files.items():
        try:
            safe_relative(name, f"{MANIFEST}'s file list")
        except UntrustedNameError as exc:
            result.unsafe.append(str(exc))
            continue
        if not (
            isinstance(record, dict) and isinstance(record.get("sha256"), str) and isinstance(record.get("size"), int)
        ):
            result.unsafe.append(f"{MANIFEST}'s record of {printable(name)} is not {{sha256, size}}; not read")
            continue
        listed[name] = record
    return listed


def _walk(entries: Mapping[str, stat_result], listed: Mapping[str, Any], result: CheckResult) -> None:
    """Every entry of the folder: links and special files are unsafe, files the list lacks unlisted."""
    for name, info in entries.items():
        if name == MANIFEST:
            continue
        if stat.S_ISLNK(info.st_mode):
            result.unsafe.append(f"{printable(name)} is a symlink; a release holds files only, links are not followed")
        elif not stat.S_ISREG(info.st_mode):
            result.unsafe.append(f"{printable(name)} is not a regular file (a FIFO, socket or device); not read")
        elif name not in listed:
            result.unlisted.append(name)


def _compare_hashes(
    folder: Path, entries: Mapping[str, stat_result], listed: Mapping[str, dict[str, Any]], result: CheckResult
) -> None:
    """Each listed file's size and sha256; only regular files the walk found (no link on the way) are read."""
    for name, record in listed.items():
        info = entries.get(name)
        if info is None:
            result.missing.append(name)
        elif not stat.S_ISREG(info.st_mode):
            continue  # a link or special file: already unsafe, not read
        elif info.st_size != record["size"] or file_sha256(folder / name) != record["sha256"]:
            result.changed.append(name)


def _artifacts_and_references(
    manifest: Mapping[str, Any], listed: Mapping[str, Any], result: CheckResult
) -> tuple[list[str], dict[str, str]]:
    """The artifacts and check 4's references the manifest names: each must be in its file list."""
    artifacts = []
    for name in manifest.get("artifacts", []):
        if isinstance(name, str) and name in listed:
            artifacts.append(name)
        else:
            result.unsafe.append(
                f"artifact {printable(str(name))} is not in its file list (no sha256 to check it by); not read"
            )
    references = {}
    for artifact, reference in manifest.get("references", {}).items():
        if artifact in artifacts and isinstance(reference, str) and (reference == TORCH or reference in listed):
            references[artifact] = reference
        else:
            result.unsafe.append(
                f"the reference of {printable(artifact)}, {printable(str(reference))}, is not in its file list "
                "(or not an artifact's); not read"
            )
    return artifacts, references


# -- the artifacts -------------------------------------------------------------------------------
def _verify_artifacts(
    folder: Path,
    artifacts: Sequence[str],
    references: Mapping[str, str],
    listed: Mapping[str, dict[str, Any]],
    photos: Sequence[Path],
    result: CheckResult,
) -> None:
    intact = result.intact(artifacts)
    for name in intact:
        path = folder / name
        try:
            target = read_model_file(path)
            unjudged = _made_on_another_cpu(target)
            if unjudged and not photos:  # its verify would fail for want of faces; say what is needed
                result.failing.append(f"{name} ({unjudged}: pass --images to re-check its accuracy here)")
                continue
            with step(f"verify {name}"):
                reference = _reference(folder, name, target, references.get(name), listed, result)
                report = verify_model(path, VerifyOptions(photos=list(photos), reference=reference, strict=True))
        except FacebatchError as exc:  # e.g. its FP32 reference was tampered with
            result.failing.append(f"{name} ({exc})")
            continue
        if not report.passed:
            result.failing.append(f"{name} ({report.failure_line()})")
            continue
        problem = _recheck_int8_here(folder, name, intact, target, photos, listed, result)
        (result.failing if problem else result.verified).append(f"{name} ({problem})" if problem else name)


def _reference(
    folder: Path,
    name: str,
    target: ModelFile,
    given: str | None,
    listed: Mapping[str, dict[str, Any]],
    result: CheckResult,
) -> ReferenceFactory | None:
    """Check 4's reference, from inside the release only: the one the manifest names, else the file the
    artifact records it was made from (found in the release by its sha256), else torch for ours."""
    if given == TORCH or (given is None and target.recorded_source is None and target.is_ours):
        return _torch_inside(folder, target, listed, result)
    if given is not None:
        return reference_for(target, folder / given)
    recorded = target.recorded_source
    if recorded is None:
        return reference_for(target)
    source = _recorded_source_inside(folder, name, recorded, listed, result)
    return onnx_reference(source, one_frame_at_a_time=recorded.how == "fixed")


def _torch_inside(
    folder: Path, target: ModelFile, listed: Mapping[str, dict[str, Any]], result: CheckResult
) -> ReferenceFactory:
    """The torch reference of one of our artifacts, rebuilt from the weights the release holds in
    references/ (found by the sha256 the artifact records), never from the path its sidecar names: that
    path is the release's word, and may point anywhere."""
    if target.props.get("weights_source") == "seeded":
        return torch_reference()
    expected = target.props.get("weights_sha256") or target.recorded_weights.get("sha256")
    unchanged = result.intact(listed)
    for candidate in unchanged:
        if PurePosixPath(candidate).parts[0] == "references" and listed[candidate]["sha256"] == expected:
            return torch_reference(weights=folder / candidate)
    raise SpecError(
        f"it was exported from weights (sha256 {str(expected)[:12]}…) that this release does not hold unchanged in "
        "references/; --check reads nothing outside the folder"
    )


def _recorded_source_inside(
    folder: Path,
    name: str,
    recorded: RecordedSource,
    listed: Mapping[str, dict[str, Any]],
    result: CheckResult,
    places: Sequence[str] = SOURCE_FOLDERS,
) -> Path:
    """The file an artifact records it was made from, as the release holds it: beside the artifact or
    in ``places``, listed, unchanged, with the recorded sha256. Never where the artifact says it was
    when made (a path outside the folder)."""
    source = recorded.name
    if not isinstance(source, str) or "/" in source or source in ("", ".", ".."):
        raise SpecError(f"it records its source as {printable(str(source))}, not a plain file name")
    unchanged = result.intact(listed)
    for place in dict.fromkeys([str(PurePosixPath(name).parent), *places]):
        candidate = str(PurePosixPath(place) / source)
        if candidate in unchanged and listed[candidate]["sha256"] == recorded.sha256:
            return folder / candidate
    where = " or ".join(["beside it", *(f"in {place}/" for place in places)])
    raise SpecError(
        f"it was {recorded.how} from {printable(source)} (sha256 {recorded.sha256[:12]}…), which this release does not "
        f"hold unchanged {where}; --check reads nothing outside the folder"
    )


def _made_on_another_cpu(target: ModelFile) -> str | None:
    """'quantised on a vnni CPU, this one is avx2' for an INT8 file gated on another CPU class, else None."""
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    return None if made_on is None or made_on == here else f"quantised on a {made_on} CPU, this one is {here}"


def _recheck_int8_here(
    folder: Path,
    name: str,
    artifacts: Sequence[str],
    target: ModelFile,
    photos: Sequence[Path],
    listed: Mapping[str, dict[str, Any]],
    result: CheckResult,
) -> str | None:
    """An INT8 file made on another CPU class gets its accuracy gate again, here; what failed, or None."""
    if _made_on_another_cpu(target) is None:
        return None
    try:  # recheck_int8 takes the FP32 source from beside the file: it must be the release's own, unchanged
        recorded = target.recorded_source
        if recorded is None:
            raise SpecError("it records no FP32 source")
        _recorded_source_inside(folder, name, recorded, listed, result, places=())
    except SpecError as exc:
        return f"its INT8 accuracy cannot be re-checked: {exc}"
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    models = [read_model_file(folder / rel) for rel in artifacts if rel.endswith(".onnx")]  # each loaded once
    detectors = [m.path for m in models if m.spec.head is not None and m.spec.precision is Precision.FP32]
    with step(f"re-check {target.path.name}'s INT8 accuracy on this {here} CPU (made on {made_on})"):
        _, failures = recheck_int8(target.path, photos, detectors[0] if detectors else None)
    return f"its INT8 accuracy gate fails on this {here} CPU: {'; '.join(failures)}" if failures else None
