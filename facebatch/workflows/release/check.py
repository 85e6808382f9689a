"""``facebatch release --check``: a release folder re-verified later: the whole folder, every hash, every artifact.

A release folder may come from elsewhere (a CI artifact, a download, a shared disk), so the check
trusts nothing in it. It walks every entry of the folder, not only those its MANIFEST.json lists:
a file the manifest does not list (a planted ``triton/*/1/model.py`` is code ``serve`` would run)
fails, and so does a symlink or a special file, a listed name that is absolute, holds ``..`` or is
not a plain relative name, and an artifact or reference the file list does not hold. Names are
validated before they are joined to the folder, links are never followed, and no file outside the
folder is read (an artifact's recorded source is looked for in the release only). The folder's own
word can be anchored outside it: ``manifest_sha256``, the sha256 ``facebatch release`` printed,
fails any other MANIFEST.json before anything in it is believed. The artifacts are ``check_artifacts``'.
"""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import stat_result
from pathlib import Path
from typing import Any

from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError
from facebatch.core.trusted_paths import UntrustedNameError, printable, safe_relative, walk_files
from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.exporter.torch_reference import TORCH
from facebatch.workflows.release.check_artifacts import photos_needed, verify_artifacts
from facebatch.workflows.release.defaults import SHA256_HEX
from facebatch.workflows.release.manifest import MANIFEST


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

    def counts(self) -> str:
        return (
            f"{len(self.verified)} artifacts pass verify; {len(self.missing)} files missing, {len(self.changed)} "
            f"changed, {len(self.unlisted)} not listed, {len(self.unsafe)} unsafe"
        )

    def last_line(self, problems: Sequence[str] | None = None) -> str:
        """The verdict on one line that starts with it; ``problems``: the problems as the caller shows them
        (the command escapes the folder's own words), by default as they are."""
        shown = self.problems() if problems is None else problems
        return "RELEASE CHECK PASS" if self.passed else f"RELEASE CHECK FAIL: {'; '.join(shown)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "passed": self.passed,
            "manifest_sha256": self.manifest_sha256,
            "expected_sha256": self.expected_sha256,
            "verified": self.verified,
            "problems": self.problems(),
            **{k: getattr(self, k) for k in ("missing", "changed", "failing", "unlisted", "unsafe")},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# release check: {self.path.name}", "", f"**{'PASS' if self.passed else 'FAIL'}**", ""]
        lines += [f"- {self.counts()}", f"- {MANIFEST} sha256 {self.manifest_sha256 or '(not read)'}"]
        lines += [f"- {printable(problem)}" for problem in self.problems()]
        return "\n".join(lines) + "\n"


def manifest_anchor(text: str | None) -> str | None:
    """``--manifest-sha256``: 64 hexadecimal digits (any case), as ``release`` printed them; None: no anchor."""
    if text is None:
        return None
    if not SHA256_HEX.fullmatch(text.strip()):
        raise SpecError(
            f"manifest_sha256 must be 64 hexadecimal digits (the sha256 a release printed for its {MANIFEST}), "
            f"got {printable(text)}",
            field="manifest_sha256",
        )
    return text.strip().lower()


def check_release(folder: Path, photos: Sequence[Path] = (), *, manifest_sha256: str | None = None) -> CheckResult:
    """The whole folder against its manifest (every entry listed, plain and unchanged), then every
    artifact through verify --strict (FP32 against torch, FP16 against the FP32 source beside it).
    ``manifest_sha256`` anchors the check outside the folder: any other MANIFEST.json fails."""
    folder = Path(folder)
    photos = proof_photos(photos)  # photos or folders of them, as every command takes them
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
    unchanged = set(result.intact(listed))
    reason = None if photos else photos_needed(folder, artifacts, unchanged)
    if reason:  # before the slow work: the verdict would be a failure for want of faces
        raise SpecError(f"photos are needed: {reason}; {_recorded_photos(manifest)}", field="photos")
    verdicts = verify_artifacts(folder, artifacts, references, listed, unchanged, photos)
    result.verified, result.failing = verdicts.verified, verdicts.failing
    return result


def _recorded_photos(manifest: Mapping[str, Any]) -> str:
    """Where the release's photos were when it was made, as its manifest says (the folder's word: shown, not read)."""
    options = manifest.get("options")
    recorded = options.get("photos") if isinstance(options, dict) else None
    named = recorded if isinstance(recorded, list) else []
    folders = sorted({str(Path(p).parent) for p in named if isinstance(p, str)})
    if not folders:
        return "give photos that show faces"
    return f"give the photos it was made with (its manifest records them in {', '.join(map(printable, folders))})"


# -- the folder and its manifest -------------------------------------------------------------------
def _manifest_bytes(folder: Path, result: CheckResult) -> bytes | None:
    """MANIFEST.json's bytes: the file itself, never through a link (None, and why in ``result``)."""
    path = folder / MANIFEST
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise SpecError(f"{folder} holds no {MANIFEST}; is it a release folder facebatch made?") from None
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
