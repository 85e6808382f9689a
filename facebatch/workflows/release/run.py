"""``facebatch release``: what a release pipeline runs, gate by gate, into one folder.

    export (or the artifacts given) → verify --strict (check 4 against torch) → FP16 ONNX, proven
    → with --int8, the INT8 ONNX gated by its accuracy → TensorRT engines where TensorRT is
    → bench (→ the performance gate against an earlier bench) → Triton repository

Everything is written into a staging folder beside the release; only when every gate passes is
it renamed to ``<name>-<version>``. A failed release is renamed ``<name>-<version>.failed`` (its
reports are what the team reads), a name that does not look like a release. The folder holds
the artifacts, every report (JSON, Markdown, JUnit XML, and ``junit.xml`` merging them all with
the gates), ``MANIFEST.json`` (sha256 and size of every file, versions, environment, gates) and
``SUMMARY.md``. ``check_release`` re-verifies a release folder later."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path

from facebatch.configs.license import License
from facebatch.core.atomic import dir_mode, durable_replace, ensure_writable_dir, fsync_path
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError
from facebatch.core.junit import gates_suite, merge_junit
from facebatch.core.leftovers import private_folder
from facebatch.core.trusted_paths import walk_files
from facebatch.workflows.release.accuracy import accuracy_gate
from facebatch.workflows.release.card_text import CARD, model_card
from facebatch.workflows.release.facts import artifact_facts, facts_record, write_facts
from facebatch.workflows.release.gates import (
    ReleaseStaging,
    bench_gate,
    copy_artifact_gate,
    engines_gate,
    export_gate,
    fp16_gate,
    int8_gate,
    required_gates,
    triton_gate,
    verify_gate,
)
from facebatch.workflows.release.licenses import check_licenses, released_licenses
from facebatch.workflows.release.manifest import (
    FAILED_SUFFIX,
    JUNIT,
    MANIFEST,
    SUMMARY,
    ReleaseResult,
    manifest_record,
    summary_markdown,
)
from facebatch.workflows.release.options import ReleaseOptions, default_version

STAGING_MARK = ".staging-"  # .<release>.staging-<pid>-…: where a release is made before its one rename


def run_release(options: ReleaseOptions) -> ReleaseResult:
    began = time.perf_counter()
    version = options.version or default_version()
    out = ensure_writable_dir(options.out)
    final = out / f"{options.name}-{version}"
    if final.exists():
        raise SpecError(
            f"version {version}: release {final} exists; a release is never overwritten: pass another version or "
            "move it away",
            field="version",
        )
    given = check_licenses(options)  # before any work: every artifact's licence known, or stated
    staging = private_folder(out, f".{final.name}{STAGING_MARK}")  # removes those killed releases left
    os.chmod(staging, dir_mode())  # the release folder others read: not mkdtemp's 0700
    try:
        release = ReleaseStaging(options, staging)
        for request in options.models:
            export_gate(release, request)
        for path in options.artifacts:
            copy_artifact_gate(release, path)
        for path in release.exported:
            verify_gate(release, path)
        fp32 = list(release.artifacts)
        if options.fp16:
            for path in fp32:
                fp16_gate(release, path)
        if options.int8:
            for path in fp32:
                int8_gate(release, path)
        engines_gate(release)
        accuracy_gate(release)  # every twin against FP32, held to the accuracy floor
        bench_gate(release)
        triton_gate(release)
        release.gates = required_gates(release.gates, options.require)
        result = ReleaseResult(options.name, version, final, release.gates)
        result.seconds = time.perf_counter() - began
        (staging / JUNIT).write_text(
            merge_junit(
                [
                    *release.junit,
                    gates_suite(
                        f"facebatch release {final.name}",
                        [(g.name, g.status, g.summary) for g in release.gates],
                        result.seconds,
                    ),
                ]
            )
        )
        (staging / SUMMARY).write_text(summary_markdown(result, release))
        licenses = _write_card(release, result, given)
        manifest = manifest_record(result, staging, options, release.references, licenses)
        data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
        (staging / MANIFEST).write_bytes(data)
        result.manifest_sha256 = hashlib.sha256(data).hexdigest()
        if not result.passed:
            result.path = failed_folder(final)
        _sync_tree(staging)  # a power cut after the rename cannot publish a manifest naming unflushed data
        durable_replace(staging, result.path)
        return result
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_card(release: ReleaseStaging, result: ReleaseResult, given: License | None) -> dict[str, License]:
    """reports/release.json (what the card needs beyond the other reports), then README.md, the model card
    generated from the reports alone; returns each released file's licence."""
    models = [release.model(p) for p in release.artifacts + release.fp16 + release.int8]
    licenses = released_licenses(models, release.staging, given)
    names = {m.path.name: str(m.path.relative_to(release.staging)) for m in models}
    facts = []
    for model in models:
        relative = str(model.path.relative_to(release.staging))
        source = model.recorded_source
        made_from = names.get(source.name) if source is not None and model.spec.precision.value != "fp32" else None
        facts.append(artifact_facts(model, relative, licenses[relative], made_from))
    gates = [g.to_dict() for g in result.gates]
    write_facts(
        release.staging, facts_record(result.name, result.version, gates, facts, release.bench, release.options)
    )
    (release.staging / CARD).write_text(model_card(release.staging))
    return licenses


def failed_folder(final: Path) -> Path:
    """Where a failed release goes: ``<release>.failed``, replacing an earlier failed attempt only when that
    is provably one of ours, untouched (a real folder holding exactly what its MANIFEST.json lists, each file
    with its recorded sha256); else the next free ``<release>.failed-N``, so nothing facebatch did not
    write is ever removed."""
    failed = final.with_name(final.name + FAILED_SUFFIX)
    if _untouched_release(failed):
        shutil.rmtree(failed)
    number = 2
    while os.path.lexists(failed):
        failed = final.with_name(f"{final.name}{FAILED_SUFFIX}-{number}")
        number += 1
    return failed


def _untouched_release(folder: Path) -> bool:
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        listed = json.loads((folder / MANIFEST).read_bytes())["files"]
        found = dict(walk_files(folder))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return False
    if not isinstance(listed, dict) or set(found) != set(listed) | {MANIFEST}:
        return False
    for name, info in found.items():
        if not stat.S_ISREG(info.st_mode):
            return False
        record = listed.get(name)
        if name != MANIFEST and not (
            isinstance(record, dict)
            and record.get("size") == info.st_size
            and record.get("sha256") == file_sha256(folder / name)
        ):
            return False
    return True


def _sync_tree(folder: Path) -> None:
    """Every file's data and every folder's entries under ``folder`` on disk, deepest first, ``folder`` last."""
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_path(Path(root) / name)
        fsync_path(Path(root))
