"""``release --check``, its second half: the artifacts of a release folder re-verified from inside it only.

Each intact artifact goes through verify --strict against its check-4 reference as the release holds it:
the one its manifest names, else the file it records it was made from (found in the release by its
sha256), else torch rebuilt from the weights the release keeps in references/. Never where an artifact
or its sidecar says a file was when it was made: that is the folder's word, and may point anywhere. An
INT8 file quantised on another CPU class gets its accuracy gate again, here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from facebatch.configs.model_file import ModelFile, RecordedSource, read_model_file
from facebatch.configs.precision import Precision
from facebatch.core.environment import int8_cpu_class
from facebatch.core.errors import FacebatchError, SpecError
from facebatch.core.progress import step
from facebatch.core.trusted_paths import printable
from facebatch.exporter.torch_reference import TORCH, torch_reference
from facebatch.verify.reference import ReferenceFactory, onnx_reference
from facebatch.verify.verify_job import VerifyOptions
from facebatch.verify.verify_job import run_checks as verify_model
from facebatch.workflows.quantize_gate import recheck_int8
from facebatch.workflows.release.gates import reference_for

SOURCE_FOLDERS = ("onnx", "references")  # where a release keeps the files its artifacts were made from


@dataclass
class Verdicts:
    verified: list[str] = field(default_factory=list)  # artifacts that pass
    failing: list[str] = field(default_factory=list)  # artifacts that do not, each with why


def verify_artifacts(
    folder: Path,
    artifacts: Sequence[str],
    references: Mapping[str, str],
    listed: Mapping[str, dict[str, Any]],
    unchanged: Collection[str],
    photos: Sequence[Path],
) -> Verdicts:
    """Each intact artifact (listed, there, unchanged: ``unchanged``) through verify --strict against its reference
    from inside the folder, and an INT8 file made on another CPU class through its accuracy gate again."""
    verdicts = Verdicts()
    intact = [name for name in artifacts if name in unchanged]
    for name in intact:
        path = folder / name
        try:
            target = read_model_file(path)
            with step(f"verify {name}"):
                reference = _reference(folder, name, target, references.get(name), listed, unchanged)
                report = verify_model(path, VerifyOptions(photos=list(photos), reference=reference, strict=True))
        except FacebatchError as exc:  # e.g. its FP32 reference was tampered with
            verdicts.failing.append(f"{name} ({exc})")
            continue
        if not report.passed:
            verdicts.failing.append(f"{name} ({report.failure_line()})")
            continue
        problem = _recheck_int8_here(folder, name, intact, target, photos, listed, unchanged)
        (verdicts.failing if problem else verdicts.verified).append(f"{name} ({problem})" if problem else name)
    return verdicts


def photos_needed(folder: Path, artifacts: Sequence[str], unchanged: Collection[str]) -> str | None:
    """Why checking these artifacts needs photos (the first that does), or None: a detector with trained weights
    finds no face in noise frames (its decoded-independence check would skip, which strict fails), and an INT8
    file made on another CPU class has its accuracy gate again here."""
    read: dict[str, ModelFile] = {}
    for name in (name for name in artifacts if name in unchanged):
        with contextlib.suppress(FacebatchError):  # one that cannot be read: verify_artifacts says why
            read[name] = read_model_file(folder / name)
    for name, target in read.items():  # the accuracy gate first: it is what photos are for
        elsewhere = _made_on_another_cpu(target)
        if elsewhere:
            return f"{name} was {elsewhere}, so its accuracy gate runs again here, on photos"
    for name, target in read.items():
        if target.spec.head is not None and not target.seeded:
            return (
                f"{name} is a face detector with trained weights, which finds no face in noise frames: its strict "
                "verify compares the faces it decodes alone and in a batch"
            )
    return None


def _reference(
    folder: Path,
    name: str,
    target: ModelFile,
    given: str | None,
    listed: Mapping[str, dict[str, Any]],
    unchanged: Collection[str],
) -> ReferenceFactory | None:
    """Check 4's reference, from inside the release only: the one the manifest names, else the file the
    artifact records it was made from (found in the release by its sha256), else torch for ours."""
    if given == TORCH or (given is None and target.recorded_source is None and target.is_ours):
        return _torch_inside(folder, target, listed, unchanged)
    if given is not None:
        return reference_for(target, folder / given)
    recorded = target.recorded_source
    if recorded is None:
        return reference_for(target)
    source = _recorded_source_inside(folder, name, recorded, listed, unchanged)
    return onnx_reference(source, one_frame_at_a_time=recorded.how == "fixed")


def _torch_inside(
    folder: Path, target: ModelFile, listed: Mapping[str, dict[str, Any]], unchanged: Collection[str]
) -> ReferenceFactory:
    """The torch reference of one of our artifacts, rebuilt from the weights the release holds in
    references/ (found by the sha256 the artifact records), never from the path its sidecar names: that
    path is the release's word, and may point anywhere."""
    if target.props.get("weights_source") == "seeded":
        return torch_reference()
    expected = target.props.get("weights_sha256") or target.recorded_weights.get("sha256")
    for candidate in listed:
        if (
            candidate in unchanged
            and PurePosixPath(candidate).parts[0] == "references"
            and listed[candidate]["sha256"] == expected
        ):
            return torch_reference(weights=folder / candidate)
    raise SpecError(
        f"it was exported from weights (sha256 {str(expected)[:12]}…) that this release does not hold unchanged in "
        "references/; the check reads nothing outside the folder"
    )


def _recorded_source_inside(
    folder: Path,
    name: str,
    recorded: RecordedSource,
    listed: Mapping[str, dict[str, Any]],
    unchanged: Collection[str],
    places: Sequence[str] = SOURCE_FOLDERS,
) -> Path:
    """The file an artifact records it was made from, as the release holds it: beside the artifact or
    in ``places``, listed, unchanged, with the recorded sha256. Never where the artifact says it was
    when made (a path outside the folder)."""
    source = recorded.name
    if not isinstance(source, str) or "/" in source or source in ("", ".", ".."):
        raise SpecError(f"it records its source as {printable(str(source))}, not a plain file name")
    for place in dict.fromkeys([str(PurePosixPath(name).parent), *places]):
        candidate = str(PurePosixPath(place) / source)
        if candidate in unchanged and listed[candidate]["sha256"] == recorded.sha256:
            return folder / candidate
    where = " or ".join(["beside it", *(f"in {place}/" for place in places)])
    raise SpecError(
        f"it was {recorded.how} from {printable(source)} (sha256 {recorded.sha256[:12]}…), which this release does not "
        f"hold unchanged {where}; the check reads nothing outside the folder"
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
    unchanged: Collection[str],
) -> str | None:
    """An INT8 file made on another CPU class gets its accuracy gate again, here; what failed, or None."""
    if _made_on_another_cpu(target) is None:
        return None
    try:  # recheck_int8 takes the FP32 source from beside the file: it must be the release's own, unchanged
        recorded = target.recorded_source
        if recorded is None:
            raise SpecError("it records no FP32 source")
        _recorded_source_inside(folder, name, recorded, listed, unchanged, places=())
    except SpecError as exc:
        return f"its INT8 accuracy cannot be re-checked: {exc}"
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    models = [read_model_file(folder / rel) for rel in artifacts if rel.endswith(".onnx")]  # each loaded once
    detectors = [m.path for m in models if m.spec.head is not None and m.spec.precision is Precision.FP32]
    with step(f"re-check {target.path.name}'s INT8 accuracy on this {here} CPU (made on {made_on})"):
        _, failures = recheck_int8(target.path, photos, detectors[0] if detectors else None)
    return f"its INT8 accuracy gate fails on this {here} CPU: {'; '.join(failures)}" if failures else None
