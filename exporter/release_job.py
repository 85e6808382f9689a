"""``facebatch release``: what a release pipeline runs, gate by gate, into one folder.

    export (or the artifacts given) → verify --strict (check 4 against torch) → FP16 ONNX, proven
    → with --int8, the INT8 ONNX gated by its accuracy → TensorRT engines where TensorRT is
    → bench (→ the performance gate against an earlier bench) → Triton repository

Everything is written into a staging folder beside the release; only when every gate passes is
it renamed to ``<name>-<version>``. A failed release is renamed ``<name>-<version>.failed`` (its
reports are what the team reads), a name that does not look like a release. The folder holds
the artifacts, every report (JSON, Markdown, JUnit XML, and ``junit.xml`` merging them all with
the gates), ``MANIFEST.json`` (sha256 and size of every file, versions, environment, gates) and
``SUMMARY.md``. ``check_release`` re-verifies a release folder later.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import facebatch
from facebatch.atomic import ensure_writable_dir
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.configs.precision import Precision
from facebatch.configs.spec import Family
from facebatch.engines.bench.job import BenchOptions, bench_models
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.regression import DEFAULT_MAX_SLOWDOWN, RegressionCheck, compare_with_baseline, read_bench_json
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.runners.registry import RunnerOptions
from facebatch.engines.runners.tensorrt_runner import tensorrt_available
from facebatch.engines.triton.repository import RepositoryOptions, triton_repository_from_artifacts
from facebatch.environment import environment, file_sha256, git_commit, int8_cpu_class
from facebatch.errors import FacebatchError, SpecError
from facebatch.exporter.backends import make_runner
from facebatch.exporter.convert_job import ConvertOptions, convert_fp16
from facebatch.exporter.dispatch import export_family
from facebatch.exporter.engine_job import NO_TENSORRT, BuildOptions, build_engine_job
from facebatch.exporter.quantize_job import QuantizeOptions, quantize_int8, recheck_int8
from facebatch.exporter.release_settings import RELEASE_BACKENDS, RELEASE_BENCH_BATCH_SIZES, REQUIRABLE
from facebatch.exporter.torch_reference import TORCH, torch_reference
from facebatch.junit import gates_suite, merge_junit
from facebatch.progress import step
from facebatch.verify.reference import ReferenceFactory, onnx_reference
from facebatch.verify.report import VerifyReport
from facebatch.verify.verify_job import VerifyOptions, verify_model

MANIFEST = "MANIFEST.json"
SUMMARY = "SUMMARY.md"
JUNIT = "junit.xml"
FAILED_SUFFIX = ".failed"
PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class ModelRequest:
    """A model to export: a catalog name, its weights (None: seeded), the detector size."""

    model: str | None  # None: inferred from ONNX weights
    weights: Path | None = None
    size: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        return self.model or Path(self.weights or "").name


@dataclass
class ReleaseOptions:
    name: str = "facebatch-models"
    version: str | None = None  # None: facebatch's version and the git commit
    out: Path = Path("build/release")
    models: Sequence[ModelRequest] = ()
    artifacts: Sequence[Path] = ()  # released as they are (no export)
    # check 4's reference per artifact (its file name → "torch" or an ONNX file); by default what reference_for picks
    references: Mapping[str, str | Path] = field(default_factory=dict)
    photos: Sequence[Path] = ()
    fp16: bool = True
    int8: bool = False  # facebatch quantize per FP32 artifact, its accuracy gate a release gate (needs photos)
    engines: bool = True
    bench_backends: Sequence[str] = RELEASE_BACKENDS
    bench_batch_sizes: Sequence[int] = RELEASE_BENCH_BATCH_SIZES
    budget: Budget = field(default_factory=lambda: Budget(warmup=0.5, seconds=1.0))
    baseline_bench: Path | None = None
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN
    triton: bool = True
    require: Sequence[str] = ()  # REQUIRABLE gates that must run and pass: one that skips fails the release

    def __post_init__(self) -> None:
        unknown = sorted(set(self.require) - set(REQUIRABLE))
        if unknown:
            raise SpecError(f"--require {','.join(unknown)}: not a gate; known: {', '.join(REQUIRABLE)}")
        if "int8" in self.require and not self.int8:
            raise SpecError("--require int8 needs --int8 (the INT8 gate is off by default)")
        turned_off = [g for g, on in (("engines", self.engines), ("fp16", self.fp16), ("triton", self.triton)) if g in self.require and not on]
        if turned_off:
            raise SpecError(f"--require {turned_off[0]} contradicts --no-{turned_off[0]}; drop one of them")
        if "performance" in self.require and self.baseline_bench is None:
            raise SpecError("--require performance needs --baseline-bench OLD/bench.json (the bench it is compared with)")
        if not self.models and not self.artifacts:
            raise SpecError("a release needs models to export or --artifact files")
        if not self.name or "/" in self.name:
            raise SpecError(f"--name {self.name!r} must be a plain folder name")
        if self.int8 and not self.photos:
            raise SpecError("--int8 calibrates on photos and judges accuracy on them: pass --images")
        names = {Path(a).name for a in self.artifacts}
        unknown = sorted(set(self.references) - names)
        if unknown:
            raise SpecError(f"--reference names {', '.join(unknown)}, which is not an --artifact; use ARTIFACT.onnx=REFERENCE "
                            f"with one of: {', '.join(sorted(names)) or 'no --artifact given'}")  # fmt: skip
        for name, reference in self.references.items():
            if str(reference) != TORCH and not Path(reference).is_file():
                raise SpecError(f"--reference {name}={reference}: {reference} does not exist; pass 'torch' or an ONNX file")


@dataclass
class Gate:
    name: str
    status: str  # pass, fail, skip
    summary: str

    def to_dict(self) -> dict[str, str]:
        return {"gate": self.name, "status": self.status, "summary": self.summary}


@dataclass
class ReleaseResult:
    name: str
    version: str
    path: Path  # the release folder (or the .failed one)
    gates: list[Gate] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # relative path → sha256, size
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not any(g.status == FAIL for g in self.gates)

    @property
    def failed_gates(self) -> list[str]:
        return [g.name for g in self.gates if g.status == FAIL]

    def last_line(self) -> str:
        return "RELEASE PASS" if self.passed else f"RELEASE FAIL: {', '.join(self.failed_gates)}"


def default_version() -> str:
    commit = git_commit()
    return f"{facebatch.__version__}+{commit}" if commit else facebatch.__version__


class _Release:
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
        for suffix, text in ((".verify.json", report.to_json()), (".verify.md", report.to_markdown()), (".verify.xml", report.to_junit())):
            (self.reports / f"{stem}{suffix}").write_text(text)
        self.junit.append(report.to_junit())


def reference_for(target: ModelFile, reference: str | Path | None = None, search: Sequence[Path] = ()) -> ReferenceFactory | None:
    """Check 4's reference in a release: the one given ("torch" or an ONNX file); else the file the
    target records it was made from (an FP16/INT8 file's FP32 source, fix's original: found beside
    it or in ``search``, proven by its sha256); else an FP32 artifact of ours against its torch model;
    anything else none (which --strict fails). A file given or repaired by fix is run one frame at a
    time: it may mix frames."""
    if reference is not None:
        return torch_reference() if str(reference) == TORCH else onnx_reference(Path(reference), one_frame_at_a_time=True)
    recorded = target.recorded_source
    if recorded is not None:
        return onnx_reference(target.source_file(search), one_frame_at_a_time=recorded.how == "fixed")
    return torch_reference() if target.is_ours else None


def _stage_reference(release: _Release, artifact: Path, staged: Path) -> str:
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


def _export(release: _Release, request: ModelRequest) -> None:
    from facebatch.exporter.arcface_export import ArcFaceExportRequest, export_arcface
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd

    def run() -> tuple[str, str]:
        family = export_family(request.model, None, request.weights)
        common = dict(out_dir=release.onnx, photos=list(release.options.photos))
        if family is Family.ARCFACE:
            result = export_arcface(ArcFaceExportRequest(network=request.model, weights=request.weights, **common))
        else:
            height, width = request.size or (320, 320)
            result = export_scrfd(ScrfdExportRequest(variant=request.model, height=height, width=width, weights=request.weights, **common))
        release.exported.append(result.onnx_path)
        return PASS, f"{result.onnx_path.name}: parity with torch, max diff {result.max_parity_diff:.2e}"

    release.gate(f"export {request.label}", run)


def _copy_artifact(release: _Release, path: Path) -> None:
    def run() -> tuple[str, str]:
        path_ = Path(path)
        read_model_file(path_)  # a clear line for a file that is not a model
        target = release.onnx / path_.name
        shutil.copyfile(path_, target)
        if path_.with_suffix(".json").is_file():
            shutil.copyfile(path_.with_suffix(".json"), target.with_suffix(".json"))
        release.exported.append(target)
        how = _stage_reference(release, path_, target)
        return PASS, f"{path_.name} taken as it is{how}"

    release.gate(f"artifact {Path(path).name}", run)


def _verify(release: _Release, path: Path) -> None:
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


def _fp16(release: _Release, path: Path) -> None:
    def run() -> tuple[str, str]:
        result = convert_fp16(path, None, ConvertOptions(photos=list(release.options.photos)))
        release.write_verify(result.report, result.path.stem)
        if not result.written:
            return FAIL, result.report.failure_line()
        release.fp16.append(result.path)
        return PASS, f"{result.path.name}: {result.conversion.describe()}; verified against {path.name}"

    release.gate(f"fp16 {path.name}", run)


def _int8(release: _Release, path: Path) -> None:
    """The INT8 file of an FP32 artifact where its accuracy against FP32 (quantize's gate) holds;
    embedders are calibrated on the faces the release's detector finds. One the gate refuses is not
    released and the gate skips, with the numbers (``--require int8`` makes that a failure)."""

    def run() -> tuple[str, str]:
        detectors = [p for p in release.artifacts if release.model(p).spec.head is not None]
        options = QuantizeOptions(photos=list(release.options.photos), detector=detectors[0] if detectors else None, bench=False)
        result = quantize_int8(path, options)
        (release.reports / f"{result.path.stem}.quantize.json").write_text(result.to_json())
        (release.reports / f"{result.path.stem}.quantize.md").write_text(result.to_markdown())
        if not result.written:
            return SKIP, f"{result.path.name} refused by its accuracy gate, not released ({'; '.join(result.failures)})"
        release.int8.append(result.path)
        return PASS, f"{result.path.name}: " + "; ".join(result.accuracy.lines())

    release.gate(f"int8 {path.name}", run)


def _engines(release: _Release) -> None:
    if not release.options.engines:
        release.gates.append(Gate("tensorrt engines", SKIP, "not asked for (--no-engines)"))
        return
    if not tensorrt_available():
        release.gates.append(Gate("tensorrt engines", SKIP, f"skipped: {NO_TENSORRT}"))
        return
    engines = release.staging / "engines"
    for path in release.artifacts:
        def run(path: Path = path) -> tuple[str, str]:
            result = build_engine_job(path, BuildOptions(out=engines / path.name, photos=list(release.options.photos)))
            return PASS, f"{result.path.name} ({result.record.precision.value}, batch {result.record.profile.batch.min}-{result.record.profile.batch.max})"

        release.gate(f"engine {path.name}", run)


def _bench(release: _Release) -> None:
    options = release.options

    def run() -> tuple[str, str]:
        bench_options = BenchOptions(backends=options.bench_backends, batch_sizes=options.bench_batch_sizes, budget=options.budget,
                                     photos=list(options.photos), runner=RunnerOptions())  # fmt: skip
        report = bench_models([release.model(p) for p in release.artifacts], bench_options, make_runner)
        release.bench = report
        (release.reports / "bench.json").write_text(report.to_json())
        (release.reports / "bench.md").write_text(report.to_markdown())
        best = ", ".join(f"{r.artifact} {r.backend} {r.best().fps:.1f} FPS (batch {r.best().batch})" for r in report.runs)
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


def _triton(release: _Release) -> None:
    if not release.options.triton or not release.artifacts:
        release.gates.append(Gate("triton repository", SKIP, "not asked for" if not release.options.triton else "no verified artifact"))
        return

    def run() -> tuple[str, str]:
        roles = [release.model(p).spec for p in release.artifacts]
        detectors = [s for s in roles if s.head is not None]
        embedders = [s for s in roles if s.family.is_embedder]
        pipeline = len(detectors) == 1 and len(embedders) == 1 and detectors[0].head.use_kps  # type: ignore[union-attr]
        options = RepositoryOptions(runtime="python", pipeline=pipeline)
        repository = triton_repository_from_artifacts(release.artifacts, release.staging / "triton", options)
        return PASS, f"{len(repository.models)} models ({', '.join(m.name for m in repository.models)}), python backend"

    release.gate("triton repository", run)


def _required(gates: list[Gate], require: Sequence[str]) -> list[Gate]:
    """The gates with every required one that skipped (or never ran) failed, saying why."""
    judged = []
    for gate in gates:
        kinds = [k for k in require if gate.name.startswith(REQUIRABLE[k])]
        if kinds and gate.status == SKIP:
            gate = Gate(gate.name, FAIL, f"required (--require {kinds[0]}) but {gate.summary}")
        judged.append(gate)
    for kind in require:
        if not any(g.name.startswith(REQUIRABLE[kind]) for g in gates):
            judged.append(Gate(f"required {kind}", FAIL, f"required (--require {kind}) but it never ran (no artifact reached it)"))
    return judged


def _summary(result: ReleaseResult, release: _Release) -> str:
    lines = [f"# Release {result.name} {result.version}", "", f"**{result.last_line()}**", "",
             "| gate | result | summary |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {g.name} | {g.status.upper()} | {g.summary.replace('|', '/')} |" for g in result.gates]
    lines += ["", "## Artifacts", ""] + [f"- `onnx/{p.name}`" for p in release.artifacts + release.fp16 + release.int8]
    if release.bench is not None:
        lines += ["", "## Throughput (reports/bench.md has every batch size)", "", "| artifact | backend | batch 1 FPS | best FPS (batch) |",
                  "|---|---|---|---|"]  # fmt: skip
        for run in release.bench.runs:
            one = run.timing(1)
            lines.append(f"| {run.artifact} | {run.backend} | {one.fps:.1f} | {run.best().fps:.1f} ({run.best().batch}) |" if one else
                         f"| {run.artifact} | {run.backend} | – | {run.best().fps:.1f} ({run.best().batch}) |")  # fmt: skip
    if release.regression is not None:
        lines += ["", "## Performance against the baseline", "", f"- {release.regression.summary()}"]
        lines += [f"- slower: {s.describe()}" for s in release.regression.slower]
    lines += ["", "Reports: `reports/` (JSON, Markdown, JUnit XML per artifact), `junit.xml` (all of them and the gates), "
              "`MANIFEST.json` (sha256 and size of every file).", "", result.last_line()]  # fmt: skip
    return "\n".join(lines) + "\n"


def _manifest(result: ReleaseResult, staging: Path, options: ReleaseOptions, references: Mapping[Path, str | Path]) -> dict[str, Any]:
    files = {}
    for path in sorted(p for p in staging.rglob("*") if p.is_file() and p.name != MANIFEST):
        files[str(path.relative_to(staging))] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    result.files = files
    artifacts = sorted(rel for rel in files if rel.startswith("onnx/") and rel.endswith(".onnx"))
    return {"format": "facebatch-release/1", "name": result.name, "version": result.version, "passed": result.passed,
            "result": result.last_line(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "facebatch": facebatch.__version__, "git_commit": git_commit(), "gates": [g.to_dict() for g in result.gates],
            "artifacts": artifacts, "files": files, "environment": environment(),
            "references": {str(a.relative_to(staging)): r if r == TORCH else str(Path(r).relative_to(staging))
                           for a, r in references.items()},
            "options": {"models": [m.__dict__ | {"weights": str(m.weights) if m.weights else None} for m in options.models],
                        "artifacts": [str(a) for a in options.artifacts], "photos": [str(p) for p in options.photos],
                        "references": {name: str(r) for name, r in options.references.items()},
                        "baseline_bench": str(options.baseline_bench) if options.baseline_bench else None,
                        "required": list(options.require),
                        "max_slowdown": options.max_slowdown}}  # fmt: skip


def run_release(options: ReleaseOptions) -> ReleaseResult:
    began = time.perf_counter()
    version = options.version or default_version()
    out = ensure_writable_dir(options.out)
    final = out / f"{options.name}-{version}"
    if final.exists():
        raise SpecError(f"release {final} exists; a release is never overwritten: pass another --version or move it away")
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=out))
    try:
        release = _Release(options, staging)
        for request in options.models:
            _export(release, request)
        for path in options.artifacts:
            _copy_artifact(release, path)
        for path in release.exported:
            _verify(release, path)
        fp32 = list(release.artifacts)
        if options.fp16:
            for path in fp32:
                _fp16(release, path)
        if options.int8:
            for path in fp32:
                _int8(release, path)
        _engines(release)
        _bench(release)
        _triton(release)
        release.gates = _required(release.gates, options.require)
        result = ReleaseResult(options.name, version, final, release.gates)
        result.seconds = time.perf_counter() - began
        (staging / JUNIT).write_text(merge_junit([*release.junit, gates_suite(f"facebatch release {final.name}",
                                                                              [(g.name, g.status, g.summary) for g in release.gates],
                                                                              result.seconds)]))  # fmt: skip
        (staging / SUMMARY).write_text(_summary(result, release))
        manifest = _manifest(result, staging, options, release.references)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if not result.passed:
            result.path = final.with_name(final.name + FAILED_SUFFIX)
            if result.path.exists() and (result.path / MANIFEST).is_file():  # an earlier failed attempt of ours
                shutil.rmtree(result.path)
        staging.rename(result.path)
        return result
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# -- release --check --------------------------------------------------------------------------------
@dataclass
class CheckResult:
    path: Path
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)  # artifacts that no longer pass verify
    verified: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.changed or self.failing)

    def problems(self) -> list[str]:
        return ([f"missing: {m}" for m in self.missing] + [f"changed (sha256 or size): {c}" for c in self.changed]
                + [f"fails verify: {f}" for f in self.failing])  # fmt: skip


def check_release(folder: Path, photos: Sequence[Path] = ()) -> CheckResult:
    """Every file's hash and size against the manifest, then every artifact through verify
    --strict (FP32 against torch, FP16 against the FP32 source beside it)."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise SpecError(f"{folder} holds no {MANIFEST}; is it a facebatch release folder?")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SpecError(f"{manifest_path} is unreadable; the release cannot be checked") from None
    result = CheckResult(folder)
    for rel, record in files.items():
        path = folder / rel
        if not path.is_file():
            result.missing.append(rel)
        elif path.stat().st_size != record["size"] or file_sha256(path) != record["sha256"]:
            result.changed.append(rel)
    references = manifest.get("references", {})
    for rel in manifest.get("artifacts", []):
        path = folder / rel
        if rel in result.missing or rel in result.changed:
            continue
        unjudged = _made_on_another_cpu(read_model_file(path))
        if unjudged and not photos:  # its verify would fail for want of faces; say what is needed
            result.failing.append(f"{rel} ({unjudged}: pass --images to re-check its accuracy here)")
            continue
        try:
            with step(f"verify {rel}"):
                given = references.get(rel)
                reference = reference_for(read_model_file(path), None if given is None else given if given == TORCH else folder / given,
                                          [folder / "onnx", folder / "references"])  # fmt: skip
                report = verify_model(path, VerifyOptions(photos=list(photos), reference=reference, strict=True))
        except FacebatchError as exc:  # e.g. its FP32 reference was tampered with
            result.failing.append(f"{rel} ({exc})")
            continue
        if not report.passed:
            result.failing.append(f"{rel} ({report.failure_line()})")
            continue
        problem = _recheck_int8_here(folder, manifest.get("artifacts", []), read_model_file(path), photos)
        (result.failing if problem else result.verified).append(f"{rel} ({problem})" if problem else rel)
    return result


def _made_on_another_cpu(target: ModelFile) -> str | None:
    """'quantised on a vnni CPU, this one is avx2' for an INT8 file gated on another CPU class, else None."""
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    return None if made_on is None or made_on == here else f"quantised on a {made_on} CPU, this one is {here}"


def _recheck_int8_here(folder: Path, artifacts: Sequence[str], target: ModelFile, photos: Sequence[Path]) -> str | None:
    """An INT8 file made on another CPU class gets its accuracy gate again, here; what failed, or None."""
    if _made_on_another_cpu(target) is None:
        return None
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    detectors = [folder / rel for rel in artifacts if rel.endswith(".onnx") and read_model_file(folder / rel).spec.head is not None
                 and read_model_file(folder / rel).spec.precision is Precision.FP32]  # fmt: skip
    with step(f"re-check {target.path.name}'s INT8 accuracy on this {here} CPU (made on {made_on})"):
        _, failures = recheck_int8(target.path, photos, detectors[0] if detectors else None)
    return f"its INT8 accuracy gate fails on this {here} CPU: {'; '.join(failures)}" if failures else None
