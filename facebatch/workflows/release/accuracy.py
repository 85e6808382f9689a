"""The accuracy floor of a release, per format: each FP32 artifact's released twins (FP16, INT8, the TensorRT engine
where one was built) against it on the release's photos, in the figures a user sees, and held to ``AccuracyFloor``
(twins of seeded weights are shown, not held: random weights find nothing a floor could judge).

Detectors: recall on the hand-labelled faces of the photos (``faces_ground_truth.json``), the FP32 faces a twin
misses, the mean landmark error against FP32 in pixels. Embedders: every aligned face's cosine to its FP32 embedding
(min, mean) and the accuracy on the same/different-person pairs of photos named ``NAME_1``/``NAME_2`` at the match
threshold. FP32's results are measured once (``quantize_gate.fp32_evidence``) and only where a twin has to be run; an
INT8 twin's figures are its quantize report's (measured on the same photos), never measured again. The FP32 row is the
reference every twin is held to: the floor's recall and pairs are shares of FP32's own figure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.core.errors import FacebatchError
from facebatch.core.status import FAIL, PASS, SKIP
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.pipeline.options import PipelineSettings
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner
from facebatch.verify.accuracy import detector_accuracy, embedder_accuracy
from facebatch.workflows.quantize_gate import Evidence, fp32_evidence
from facebatch.workflows.release.gates import Gate, ReleaseStaging
from facebatch.workflows.release.options import AccuracyFloor

ACCURACY = "reports/accuracy.json"
ACCURACY_FORMAT = "facebatch-release-accuracy/1"
Json = dict[str, Any]


@dataclass
class Twin:
    """A format of an FP32 artifact: a file to run (on ``backend``), or the accuracy record its quantize report holds;
    or why it has no figures (``skipped``). One not ``released`` (refused by quantize) is shown, never held to the floor."""

    label: str  # FP16, INT8, TensorRT engine (fp16)
    file: str  # its path inside the release
    model: ModelFile | None = None
    backend: str = "ort-cpu"
    report: Json | None = None  # the "accuracy" record of its quantize report
    source: str = "measured here"
    released: bool = True
    skipped: str | None = None


def judge_artifact(
    fp32: ModelFile,
    file: str,
    twins: Sequence[Twin],
    photos: Sequence[Path],
    detector: Path | None,
    floor: AccuracyFloor,
) -> Json:
    """One FP32 artifact and its twins: its record for reports/accuracy.json, with ``status`` and ``failures`` (one
    line each, naming the twin and the figure below the floor)."""
    embedder = fp32.spec.family.is_embedder
    measured: list[tuple[Twin, Json]] = [(t, t.report) for t in twins if t.report is not None]
    to_run = [t for t in twins if t.model is not None and t.report is None and t.skipped is None]
    evidence = None
    if to_run or not measured:  # FP32 is run only where a twin must be, or nothing else says what it finds
        try:
            evidence = fp32_evidence(fp32, photos, detector)
        except FacebatchError as exc:
            return _record(file, embedder, SKIP, [], [], why=f"not measured: {exc}")
    rows = [_reference_row(file, evidence, measured, embedder)]
    for twin in twins:
        if twin.skipped is not None:
            rows.append({"twin": twin.label, "file": twin.file, "skipped": twin.skipped})
            continue
        try:
            accuracy = twin.report if twin.report is not None else measure(evidence, twin)  # type: ignore[arg-type]
        except FacebatchError as exc:
            rows.append({"twin": twin.label, "file": twin.file, "skipped": f"not measured: {exc}"})
            continue
        row = (embedder_row if embedder else detector_row)(twin.label, twin.file, accuracy, "candidate")
        held = twin.released and not fp32.seeded  # random weights: their figures say nothing a floor could hold
        failures = floor_failures(row, rows[0], floor) if held else []
        verdict = (
            ("fail" if failures else "pass") if held else "not released" if not twin.released else "seeded, not held"
        )
        rows.append(row | {"source": twin.source, "released": twin.released, "floor": verdict, "failures": failures})
    failures = [line for row in rows[1:] for line in row.get("failures", [])]
    return _record(file, embedder, FAIL if failures else PASS, rows, failures)


def _record(file: str, embedder: bool, status: str, rows: list[Json], failures: list[str], why: str = "") -> Json:
    return {
        "artifact": file,
        "role": "embedder" if embedder else "detector",
        "status": status,
        "why": why or None,
        "rows": rows,
        "failures": failures,
    }


def measure(evidence: Evidence, twin: Twin) -> Json:
    """A twin run on the photos and judged against FP32's evidence: ONNX files through quantize's own judgement,
    an engine through the same pipeline on TensorRT."""
    assert twin.model is not None
    if twin.backend == "ort-cpu":
        return evidence.judge(twin.model, None).accuracy.to_dict()
    settings = PipelineSettings(read_workers=0, lanes=1)
    if evidence.faces is None or evidence.frames is None:
        with open_pipeline(twin.model, None, backend=twin.backend, settings=settings) as pipeline:
            found = list(pipeline.run(list(evidence.photos)))
        return detector_accuracy(evidence.reference, found, evidence.photos).to_dict()  # type: ignore[arg-type]
    spec, frames = twin.model.spec, evidence.frames
    with make_onnx_runner(twin.backend, twin.model, spec.input_size, RunnerOptions()) as runner:
        rows = [
            next(iter(runner.infer({spec.input.name: frames[i : i + 8]}).values())) for i in range(0, len(frames), 8)
        ]
    embedded = np.concatenate(rows).reshape(len(frames), -1)
    reference = evidence.reference
    assert isinstance(reference, np.ndarray)
    best = {name: (reference[row], embedded[row]) for name, row in evidence.faces.best.items()}
    return embedder_accuracy(reference, embedded, best).to_dict()


def _reference_row(file: str, evidence: Evidence | None, measured: list[tuple[Twin, Json]], embedder: bool) -> Json:
    """FP32's own row: from the evidence (against itself), else from the reference side of a quantize report."""
    if evidence is not None:
        if embedder:
            reference = evidence.reference
            assert isinstance(reference, np.ndarray) and evidence.faces is not None
            best = {name: (reference[row], reference[row]) for name, row in evidence.faces.best.items()}
            accuracy = embedder_accuracy(reference, reference, best).to_dict()
        else:
            accuracy = detector_accuracy(evidence.reference, evidence.reference, evidence.photos).to_dict()  # type: ignore[arg-type]
        side = "candidate"
    else:
        accuracy, side = measured[0][1], "reference"
    row = (embedder_row if embedder else detector_row)("FP32", file, accuracy, side)
    return row | {"source": "measured here" if evidence is not None else measured[0][0].source, "released": True}


def detector_row(label: str, file: str, accuracy: Json, side: str) -> Json:
    """A detector's figures from an accuracy record (verify/accuracy.py); ``side``: "reference" reads FP32's."""
    labelled = accuracy["labelled"]
    own = side == "reference" or label == "FP32"
    return {
        "twin": label,
        "file": file,
        "faces": accuracy[f"{side}_faces"],
        "labelled": labelled,
        "recall": accuracy[f"recall_{side}"] if labelled else None,
        "missed": 0 if own else len(accuracy["missed"]),
        "extra": 0 if own else len(accuracy["extra"]),
        "landmark_px": None if own else (accuracy["landmark_error_px"] or None),
    }


def embedder_row(label: str, file: str, accuracy: Json, side: str) -> Json:
    """An embedder's figures: cosine to FP32 per face, and the NAME_1/NAME_2 pairs judged at the match threshold."""
    pairs = accuracy["pairs"]
    correct = sum((p[side] >= DEFAULT_MATCH_THRESHOLD) == p["same_person"] for p in pairs)
    own = side == "reference" or label == "FP32"
    return {
        "twin": label,
        "file": file,
        "faces": accuracy["faces"],
        "cosine": None if own else accuracy["cosine"],
        "pairs": {
            "pairs": len(pairs),
            "same": sum(p["same_person"] for p in pairs),
            "different": sum(not p["same_person"] for p in pairs),
            "correct": correct,
            "accuracy": correct / len(pairs) if pairs else None,
            "threshold": DEFAULT_MATCH_THRESHOLD,
        },
    }


def floor_failures(row: Json, fp32: Json, floor: AccuracyFloor) -> list[str]:
    """The figures of one released twin below the floor, each a line naming the twin, its file and the figure."""
    who, failures = f"{row['twin']} {Path(row['file']).name}", []
    if "cosine" in row:
        if row["cosine"]["min"] < floor.cosine:
            failures.append(f"{who}: min cosine to FP32 {row['cosine']['min']:.4f}, below the floor {floor.cosine:g}")
        mine, theirs = row["pairs"], fp32["pairs"]
        if mine["accuracy"] is not None and theirs["accuracy"] and mine["accuracy"] < floor.pairs * theirs["accuracy"]:
            failures.append(
                f"{who}: pair accuracy {mine['correct']}/{mine['pairs']}, FP32 {theirs['correct']}/{theirs['pairs']}: "
                f"below the floor of {floor.pairs:g} × FP32's"
            )
        return failures
    if row["recall"] is not None and fp32["recall"] and row["recall"] < floor.recall * fp32["recall"] - 1e-9:
        n = row["labelled"]
        failures.append(
            f"{who}: recall {row['recall']}/{n} of the hand-labelled faces, FP32 {fp32['recall']}/{n}: below the floor "
            f"of {floor.recall:g} × FP32's"
        )
    if fp32["faces"] and row["missed"] / fp32["faces"] > floor.missed:
        failures.append(
            f"{who}: misses {row['missed']} of FP32's {fp32['faces']} faces, above the floor of {floor.missed:g} of them"
        )
    landmarks = row["landmark_px"]
    if landmarks and landmarks["mean"] > floor.landmark_px:
        failures.append(
            f"{who}: mean landmark error {landmarks['mean']:.2f} px against FP32, above the floor {floor.landmark_px:g} px"
        )
    return failures


def artifact_line(record: Json) -> str:
    """A gate's summary: each row's figures, or why nothing was measured, or the failures."""
    if record["failures"]:
        return "; ".join(record["failures"])
    if record["why"]:
        return record["why"]
    return "; ".join(_row_text(row) for row in record["rows"])


def _row_text(row: Json) -> str:
    if "skipped" in row:
        return f"{row['twin']} {row['skipped']}"
    tail = "" if row.get("released", True) else " (not released)"
    if "pairs" in row:
        pairs = row["pairs"]
        text = f"{row['twin']}{tail}: pairs {pairs['correct']}/{pairs['pairs']}"
        return text + (f", min cosine {row['cosine']['min']:.4f}" if row["cosine"] else "")
    text = f"{row['twin']}{tail}: {row['faces']} faces"
    text += f", recall {row['recall']}/{row['labelled']}" if row["recall"] is not None else ", no hand-labelled faces"
    return text + (f", landmarks {row['landmark_px']['mean']:.2f} px mean" if row["landmark_px"] else "")


def accuracy_report(photos: Sequence[Path], floor: AccuracyFloor, artifacts: Sequence[Json]) -> Json:
    return {
        "format": ACCURACY_FORMAT,
        "photos": [Path(p).name for p in photos],
        "floor": floor.to_dict(),
        "pair_threshold": DEFAULT_MATCH_THRESHOLD,
        "artifacts": list(artifacts),
    }


def accuracy_gate(release: ReleaseStaging) -> None:
    """One gate per FP32 artifact: its released twins held to the floor; every record in reports/accuracy.json."""
    options = release.options
    if not options.photos or not release.artifacts:
        why = "no photos to measure accuracy on" if not options.photos else "no verified artifact"
        release.gates.append(Gate("accuracy", SKIP, why))
        return
    detectors = [p for p in release.artifacts if release.model(p).spec.head is not None]
    records: list[Json] = []
    for path in release.artifacts:

        def run(path: Path = path) -> tuple[str, str]:
            twins = release_twins(release, path)
            file = str(path.relative_to(release.staging))
            floor = AccuracyFloor.parse(options.accuracy_floor)
            record = judge_artifact(
                release.model(path), file, twins, options.photos, detectors[0] if detectors else None, floor
            )
            records.append(record)
            return record["status"], artifact_line(record)

        release.gate(f"accuracy {path.name}", run)
    report = accuracy_report(options.photos, AccuracyFloor.parse(options.accuracy_floor), records)
    (release.staging / ACCURACY).write_text(json.dumps(report, indent=2) + "\n")


def release_twins(release: ReleaseStaging, path: Path) -> list[Twin]:
    """The FP16 file made from ``path``, its INT8 file (its quantize report's figures; one refused is shown, not
    released) and its TensorRT engine, or why there is none."""
    relative = lambda p: str(p.relative_to(release.staging))  # noqa: E731
    twins = []
    for fp16 in release.fp16:
        source = release.model(fp16).recorded_source
        if source is not None and source.name == path.name:
            twins.append(Twin("FP16", relative(fp16), release.model(fp16)))
    if path in release.quantized:
        report_path, int8, written = release.quantized[path]
        record = json.loads(report_path.read_text()).get("accuracy") or None
        model = release.model(int8) if written else None
        if record is None and model is None:
            twins.append(Twin("INT8", int8.name, skipped="refused by quantize, not released"))
        else:
            file = relative(int8) if written else int8.name
            twins.append(Twin("INT8", file, model, report=record, source=relative(report_path), released=written))
    if path in release.engines:
        plan, precision = release.engines[path]
        twins.append(Twin(f"TensorRT engine ({precision})", relative(plan), release.model(path), backend="trt"))
    else:
        gate = next((g for g in release.gates if g.name in ("tensorrt engines", f"engine {path.name}")), None)
        why = "not built" + (f": {gate.summary.split(' (')[0].removeprefix('skipped: ')}" if gate is not None else "")
        twins.append(Twin("TensorRT engine", "", skipped=why))
    return twins
