"""The gates of a release, one function each, run in a staging folder: export or copy, verify --strict, FP16, INT8,
TensorRT engines, bench (and the performance gate), the Triton repository; a required gate that skips fails."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.core.environment import file_sha256
from facebatch.core.errors import FacebatchError
from facebatch.core.status import FAIL, PASS, SKIP
from facebatch.engines.bench.job import ModelBenchOptions, bench_models
from facebatch.engines.bench.regression import RegressionCheck, compare_with_baseline, read_bench_json
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.runners.availability import detect_runtimes
from facebatch.engines.runners.factory import RunnerOptions
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.exporter.backends import make_runner
from facebatch.exporter.dispatch import export_model
from facebatch.exporter.options import ExportSettings
from facebatch.exporter.torch_reference import TORCH, torch_reference
from facebatch.verify.reference import ReferenceFactory, onnx_reference
from facebatch.verify.report import VerifyReport
from facebatch.verify.verify_job import VerifyOptions
from facebatch.verify.verify_job import run_checks as verify_model
from facebatch.workflows.build import BuildOptions, build_engine_job, no_tensorrt
from facebatch.workflows.convert import ConvertOptions, convert_fp16
from facebatch.workflows.quantize import QuantizeOptions, quantize_int8
from facebatch.workflows.release.defaults import REQUIRABLE
from facebatch.workflows.release.options import ModelToExport, ReleaseOptions
from facebatch.workflows.triton import TritonOptions, triton


@dataclass
class Gate:
    name: str
    status: str  # pass, fail, skip
    summary: str

    def to_dict(self) -> dict[str, str]:
        return {"gate": self.name, "status": self.status, "summary": self.summary}


class ReleaseStaging:
    """The staging folder and what has been written into it."""

    def __init__(self, options: ReleaseOptions, staging: Path) -> None:
        self.options = options
        self.staging = staging
        self.onnx = staging / "onnx"
        self.reports = staging / "reports"
        for folder in (self.onnx, self.reports):
            folder.mkdir(parents=True)
        self.gates: list[Gate] = []
        self.junit: list[str] = []
        self.exported: list[Path] = []  # exported or copied, not yet verified
        self.artifacts: list[Path] = []  # FP32 artifacts that passed verify
        self.fp16: list[Path] = []
        self.int8: list[Path] = []
        self.quantized: dict[Path, tuple[Path, Path, bool]] = {}  # FP32 artifact → its quantize report, INT8, written
        self.engines: dict[Path, tuple[Path, str]] = {}  # FP32 artifact → its TensorRT engine and its precision
        self.bench: BenchReport | None = None
        self.regression: RegressionCheck | None = None
        self.references: dict[Path, str | Path] = {}  # artifact → "torch" or its reference file inside the release
        self._models: dict[Path, ModelFile] = {}

    def model(self, path: Path) -> ModelFile:
        """Each artifact is read once (verify, INT8, bench and Triton all need its spec)."""
        if path not in self._models:
            self._models[path] = read_model_file(path)
        return self._models[path]

    def gate(self, name: str, run: Callable[[], tuple[str, str]]) -> bool:
        """Run one gate; a library error fails it with its one line, and the release goes on."""
        try:
            status, summary = run()
        except FacebatchError as exc:
            status, summary = FAIL, str(exc)
        self.gates.append(Gate(name, status, summary))
        return status != FAIL

    def write_verify(self, report: VerifyReport, stem: str) -> None:
        for suffix, text in (
            (".verify.json", report.to_json()),
            (".verify.md", report.to_markdown()),
            (".verify.xml", report.to_junit()),
        ):
            (self.reports / f"{stem}{suffix}").write_text(text)
        self.junit.append(report.to_junit())


def reference_for(
    target: ModelFile, reference: str | Path | None = None, search: Sequence[Path] = ()
) -> ReferenceFactory | None:
    """Check 4's reference in a release: the one given ("torch" or an ONNX file); else the file the
    target records it was made from (an FP16/INT8 file's FP32 source, fix's original: found beside
    it or in ``search``, proven by its sha256); else an FP32 artifact of ours against its torch model;
    anything else none (which --strict fails). A file given or repaired by fix is run one frame at a
    time: it may mix frames."""
    if reference is not None:
        return (
            torch_reference() if str(reference) == TORCH else onnx_reference(Path(reference), one_frame_at_a_time=True)
        )
    recorded = target.recorded_source
    if recorded is not None:
        return onnx_reference(target.source_file(search), one_frame_at_a_time=recorded.how == "fixed")
    return torch_reference() if target.is_ours else None


def _stage_reference(release: ReleaseStaging, artifact: Path, staged: Path) -> str:
    """Put the artifact's reference file into the release (references/) unless it is released itself,
    and remember it for verify and --check; returns how, in words."""
    given = release.options.references.get(artifact.name)
    if given is not None and str(given) == TORCH:
        release.references[staged] = TORCH
        return "; check 4 against torch"
    model = release.model(staged)
    if given is None and model.recorded_source is None:
        return ""
    source = Path(given) if given is not None else read_model_file(artifact).source_file()
    if any(source.resolve() == Path(a).resolve() for a in release.options.artifacts):
        release.references[staged] = release.onnx / source.name
        return f"; check 4 against {source.name} (released too)"
    references = release.staging / "references"
    references.mkdir(exist_ok=True)
    shutil.copyfile(source, references / source.name)
    release.references[staged] = references / source.name
    return f"; check 4 against {source.name} (copied into references/)"


def _stage_weights(release: ReleaseStaging, staged: Path) -> str:
    """Copy the weights one of our artifacts was exported from into references/ (found again there by
    sha256), so that ``--check`` rebuilds its torch reference from the release alone and reads nothing
    outside it; returns how, in words ("" for seeded weights or a file that is not ours)."""
    model = release.model(staged)
    recorded = model.recorded_weights
    expected = model.props.get("weights_sha256") or recorded.get("sha256")
    if model.props.get("weights_source") == "seeded" or not recorded.get("path") or not expected:
        return ""
    weights = Path(recorded["path"])
    if not weights.is_file() or file_sha256(weights) != expected:
        return ""  # verify's check 4 says what is missing
    references = release.staging / "references"
    references.mkdir(exist_ok=True)
    target = references / weights.name
    if target.exists() and file_sha256(target) != expected:
        target = references / f"{expected[:12]}-{weights.name}"
    if not target.exists():
        shutil.copyfile(weights, target)
    return f"; its weights copied into references/{target.name}"


def export_gate(release: ReleaseStaging, request: ModelToExport) -> None:
    def run() -> tuple[str, str]:
        settings = ExportSettings(out_dir=release.onnx, photos=list(release.options.photos))
        result = export_model(request.model, weights=request.weights, size=request.size, settings=settings)
        release.exported.append(result.onnx_path)
        how = _stage_weights(release, result.onnx_path)
        return PASS, f"{result.onnx_path.name}: parity with torch, max diff {result.max_parity_diff:.2e}{how}"

    release.gate(f"export {request.label}", run)


def copy_artifact_gate(release: ReleaseStaging, path: Path) -> None:
    def run() -> tuple[str, str]:
        path_ = Path(path)
        read_model_file(path_)  # a clear line for a file that is not a model
        target = release.onnx / path_.name
        shutil.copyfile(path_, target)
        if path_.with_suffix(".json").is_file():
            shutil.copyfile(path_.with_suffix(".json"), target.with_suffix(".json"))
        release.exported.append(target)
        how = _stage_reference(release, path_, target)
        if release.references.get(target) in (None, TORCH) and release.model(target).is_ours:
            how += _stage_weights(release, target)
        return PASS, f"{path_.name} taken as it is{how}"

    release.gate(f"artifact {Path(path).name}", run)


def verify_gate(release: ReleaseStaging, path: Path) -> None:
    def run() -> tuple[str, str]:
        reference = reference_for(release.model(path), release.references.get(path), [release.onnx])
        options = VerifyOptions(photos=list(release.options.photos), reference=reference, strict=True)
        report = verify_model(path, options)
        release.write_verify(report, path.stem)
        if report.passed:
            release.artifacts.append(path)
            return PASS, f"all six checks ({', '.join(c.status for c in report.checks)})"
        return FAIL, report.failure_line()

    release.gate(f"verify {path.name}", run)


def fp16_gate(release: ReleaseStaging, path: Path) -> None:
    def run() -> tuple[str, str]:
        result = convert_fp16(path, None, ConvertOptions(photos=list(release.options.photos)))
        release.write_verify(result.report, result.path.stem)
        if not result.written:
            return FAIL, result.report.failure_line()
        release.fp16.append(result.path)
        return PASS, f"{result.path.name}: {result.conversion.describe()}; verified against {path.name}"

    release.gate(f"fp16 {path.name}", run)


def int8_gate(release: ReleaseStaging, path: Path) -> None:
    """The INT8 file of an FP32 artifact where its accuracy against FP32 (quantize's gate) holds;
    embedders are calibrated on the faces the release's detector finds. One the gate refuses is not
    released and the gate skips, with the numbers (``--require int8`` makes that a failure)."""

    def run() -> tuple[str, str]:
        detectors = [p for p in release.artifacts if release.model(p).spec.head is not None]
        options = QuantizeOptions(
            photos=list(release.options.photos), detector=detectors[0] if detectors else None, bench=False
        )
        result = quantize_int8(path, options)
        (release.reports / f"{result.path.stem}.quantize.json").write_text(result.to_json())
        (release.reports / f"{result.path.stem}.quantize.md").write_text(result.to_markdown())
        release.quantized[path] = (release.reports / f"{result.path.stem}.quantize.json", result.path, result.written)
        if not result.written:
            return SKIP, f"{result.path.name} refused by its accuracy gate, not released ({'; '.join(result.failures)})"
        release.int8.append(result.path)
        return PASS, f"{result.path.name}: " + "; ".join(result.accuracy.lines())

    release.gate(f"int8 {path.name}", run)


def engines_gate(release: ReleaseStaging) -> None:
    if not release.options.engines:
        release.gates.append(Gate("tensorrt engines", SKIP, "not asked for (engines off)"))
        return
    problem = detect_runtimes().tensorrt_problem()
    if problem:
        release.gates.append(Gate("tensorrt engines", SKIP, f"skipped: {no_tensorrt(problem)}"))
        return
    engines = release.staging / "engines"
    for path in release.artifacts:

        def run(path: Path = path) -> tuple[str, str]:
            result = build_engine_job(path, BuildOptions(out_dir=engines, photos=list(release.options.photos)))
            release.engines[path] = (result.path, result.record.precision.value)
            return (
                PASS,
                f"{result.path.name} ({result.record.precision.value}, batch {result.record.profile.batch.min}-{result.record.profile.batch.max})",
            )

        release.gate(f"engine {path.name}", run)


def bench_gate(release: ReleaseStaging) -> None:
    options = release.options

    def run() -> tuple[str, str]:
        bench_options = ModelBenchOptions(
            backends=options.bench_backends,
            batch_sizes=options.bench_batch_sizes,
            budget=options.budget,
            photos=list(options.photos),
            runner=RunnerOptions(),
        )
        report = bench_models([release.model(p) for p in release.artifacts], bench_options, make_runner)
        release.bench = report
        (release.reports / "bench.json").write_text(report.to_json())
        (release.reports / "bench.md").write_text(report.to_markdown())
        best = ", ".join(
            f"{r.artifact} {r.backend} {r.best().fps:.1f} FPS (batch {r.best().batch})" for r in report.runs
        )
        return PASS, best

    if not release.artifacts:
        release.gates.append(Gate("bench", SKIP, "no verified artifact to time"))
        return
    if not release.gate("bench", run) or options.baseline_bench is None:
        return

    def performance() -> tuple[str, str]:
        assert release.bench is not None
        baseline = read_bench_json(options.baseline_bench)
        check = compare_with_baseline(release.bench, baseline, str(options.baseline_bench), options.max_slowdown)
        release.regression = check
        (release.reports / "performance.json").write_text(json.dumps(check.to_dict(), indent=2) + "\n")
        detail = "; ".join(s.describe() for s in check.slower[:5])
        if not check.applied:
            return SKIP, check.summary()
        return (PASS, check.summary()) if check.passed else (FAIL, check.summary() + (f": {detail}" if detail else ""))

    release.gate("performance", performance)


def triton_gate(release: ReleaseStaging) -> None:
    if not release.options.triton or not release.artifacts:
        release.gates.append(
            Gate("triton repository", SKIP, "not asked for" if not release.options.triton else "no verified artifact")
        )
        return

    def run() -> tuple[str, str]:
        roles = [release.model(p).spec for p in release.artifacts]
        detectors = [s for s in roles if s.head is not None]
        embedders = [s for s in roles if s.family.is_embedder]
        pipeline = len(detectors) == 1 and len(embedders) == 1 and detectors[0].head.use_kps  # type: ignore[union-attr]
        options = RepositoryOptions(runtime="python", pipeline=pipeline)
        # the use case the triton command runs, with its proofs (an INT8 twin served only where its gate passed)
        repository = triton(TritonOptions(release.artifacts, release.staging / "triton", options)).repository
        return PASS, f"{len(repository.models)} models ({', '.join(m.name for m in repository.models)}), python backend"

    release.gate("triton repository", run)


def required_gates(gates: list[Gate], require: Sequence[str]) -> list[Gate]:
    """The gates with every required one that skipped (or never ran) failed, saying why."""
    judged = []
    for gate in gates:
        kinds = [k for k in require if gate.name.startswith(REQUIRABLE[k])]
        if kinds and gate.status == SKIP:
            gate = Gate(gate.name, FAIL, f"required ({kinds[0]}) but {gate.summary}")
        judged.append(gate)
    for kind in require:
        if not any(g.name.startswith(REQUIRABLE[kind]) for g in gates):
            judged.append(
                Gate(f"required {kind}", FAIL, f"required ({kind}) but it never ran (no artifact reached it)")
            )
    return judged
