"""What a release is asked for: the models to export or the artifacts to take, and the options of each gate."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facebatch.configs.arcface import DEFAULT_ARCFACE
from facebatch.configs.scrfd import DEFAULT_SCRFD, DEFAULT_SCRFD_SIZE
from facebatch.core.environment import git_commit
from facebatch.core.errors import SpecError
from facebatch.core.trusted_paths import printable
from facebatch.core.version import __version__
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.regression import DEFAULT_MAX_SLOWDOWN
from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.engines.runners.backends import parse_backends
from facebatch.exporter.torch_reference import TORCH
from facebatch.workflows.release.defaults import (
    ACCURACY_FLOOR,
    RELEASE_BACKENDS,
    RELEASE_BENCH_BATCH_SIZES,
    RELEASE_BENCH_SECONDS,
    RELEASE_BENCH_WARMUP_S,
    RELEASE_NAME,
    RELEASE_OUT,
    REQUIRABLE,
)

RELEASE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # a release folder is <name>-<version>


@dataclass(frozen=True)
class ModelToExport:
    """A model to export: a catalog name, its weights (None: seeded), the detector size."""

    model: str | None  # None: inferred from ONNX weights
    weights: Path | None = None
    size: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        return self.model or Path(self.weights or "").name


ModelRequest = ModelToExport  # alias for one release


@dataclass(frozen=True)
class AccuracyFloor:
    """What every released twin (FP16, INT8, TensorRT engine) keeps against its FP32 source on the release's photos;
    below it the release fails. The defaults and their measurements are in defaults.py."""

    recall: float = ACCURACY_FLOOR["recall"]  # share of the hand-labelled faces FP32 finds that the twin finds too
    landmark_px: float = ACCURACY_FLOOR["landmark_px"]  # mean landmark error against FP32, at most (pixels)
    missed: float = ACCURACY_FLOOR["missed"]  # share of FP32's faces the twin does not find, at most
    cosine: float = ACCURACY_FLOOR["cosine"]  # every face's cosine to its FP32 embedding, at least
    pairs: float = ACCURACY_FLOOR["pairs"]  # share of FP32's same/different-pair accuracy the twin keeps

    def __post_init__(self) -> None:
        for name, value in self.to_dict().items():
            top = math.inf if name == "landmark_px" else 1.0
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= top:
                bound = "at least 0" if name == "landmark_px" else "in [0, 1]"
                raise SpecError(f"accuracy_floor: {name} must be {bound}, got {value!r}", field="accuracy_floor")

    @classmethod
    def parse(cls, value: AccuracyFloor | str | Mapping[str, float]) -> AccuracyFloor:
        """A floor from ``recall=1.0,landmark_px=2,cosine=0.99,pairs=1.0`` (any of them; the rest default) or a mapping."""
        if isinstance(value, AccuracyFloor):
            return value
        items = dict(value) if isinstance(value, Mapping) else dict(_floor_item(part) for part in value.split(","))
        unknown = sorted(set(items) - set(ACCURACY_FLOOR))
        if unknown:
            raise SpecError(
                f"accuracy_floor: {unknown[0]} is not a figure; name some of {', '.join(ACCURACY_FLOOR)}",
                field="accuracy_floor",
            )
        return cls(**items)

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in ACCURACY_FLOOR}


def _floor_item(part: str) -> tuple[str, float]:
    name, sep, number = part.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(number)
    except ValueError:
        raise SpecError(
            f"accuracy_floor: {part.strip()!r} is not NAME=NUMBER (e.g. recall=1.0,landmark_px=2,cosine=0.99,pairs=1.0)",
            field="accuracy_floor",
        ) from None


@dataclass
class ReleaseOptions:
    name: str = RELEASE_NAME
    version: str | None = None  # None: facebatch's version and the git commit
    out: Path = RELEASE_OUT
    models: Sequence[ModelToExport] = ()
    artifacts: Sequence[Path] = ()  # released as they are (no export)
    # check 4's reference per artifact (its file name → "torch" or an ONNX file); by default what reference_for picks
    references: Mapping[str, str | Path] = field(default_factory=dict)
    photos: Sequence[Path] = ()
    fp16: bool = True
    int8: bool = False  # facebatch quantize per FP32 artifact, its accuracy gate a release gate (needs photos)
    engines: bool = True
    bench_backends: Sequence[str] = RELEASE_BACKENDS
    bench_batch_sizes: Sequence[int] = RELEASE_BENCH_BATCH_SIZES
    budget: Budget = field(default_factory=lambda: Budget(warmup=RELEASE_BENCH_WARMUP_S, seconds=RELEASE_BENCH_SECONDS))
    baseline_bench: Path | None = None
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN
    triton: bool = True
    require: Sequence[str] = ()  # REQUIRABLE gates that must run and pass: one that skips fails the release
    # the licence of weights facebatch does not recognise (an SPDX id or a name); a known licence is never replaced
    license: str | None = None
    # what every released twin keeps against FP32 (AccuracyFloor, or its text: recall=1.0,landmark_px=2,…)
    accuracy_floor: AccuracyFloor | str | Mapping[str, float] = field(default_factory=AccuracyFloor)

    def __post_init__(self) -> None:
        self._check_required()
        self.accuracy_floor = AccuracyFloor.parse(self.accuracy_floor)
        if not self.models and not self.artifacts:
            raise SpecError("a release needs models to export or artifacts to take as they are", field="artifacts")
        for name, value in (("name", self.name), ("version", self.version)):
            if value is not None and not RELEASE_PART.fullmatch(value):  # it names a folder inside out
                raise SpecError(
                    f"{name} {printable(value)}: letters, digits and . _ + - only, not starting with . _ + -",
                    field=name,
                )
        # names, or one comma-separated string of them as the command line gives them
        self.bench_backends = parse_backends(self.bench_backends, "bench_backends")
        if self.int8 and not self.photos:
            raise SpecError("int8 calibrates on photos and judges accuracy on them: pass photos too", field="int8")
        self.photos = proof_photos(self.photos)  # photos or folders of them, as every command takes them
        self._check_references()

    def _check_required(self) -> None:
        unknown = sorted(set(self.require) - set(REQUIRABLE))
        if unknown:
            raise SpecError(f"require {','.join(unknown)}: not a gate; known: {', '.join(REQUIRABLE)}", field="require")
        if "int8" in self.require and not self.int8:
            raise SpecError("require int8 needs the INT8 gate turned on (it is off by default)", field="require")
        turned_off = [
            g
            for g, on in (("engines", self.engines), ("fp16", self.fp16), ("triton", self.triton))
            if g in self.require and not on
        ]
        if turned_off:
            raise SpecError(
                f"require {turned_off[0]} contradicts turning the {turned_off[0]} gate off; drop one of them",
                field="require",
            )
        if "performance" in self.require and self.baseline_bench is None:
            raise SpecError(
                "require performance needs a baseline bench (an earlier release's reports/bench.json) to compare with",
                field="require",
            )

    def _check_references(self) -> None:
        names = {Path(a).name for a in self.artifacts}
        unknown = sorted(set(self.references) - names)
        if unknown:
            raise SpecError(
                f"references: {', '.join(unknown)} is not the file name of an artifact; name one of: "
                f"{', '.join(sorted(names)) or 'no artifact given'}",
                field="references",
            )
        for name, reference in self.references.items():
            if str(reference) != TORCH and not Path(reference).is_file():
                raise SpecError(
                    f"references: {name} → {reference}, which does not exist; give 'torch' or an ONNX file",
                    field="references",
                )


def release_models(
    artifacts: Sequence[Path] = (),
    detector: str | None = None,
    detector_weights: Path | None = None,
    size: int = DEFAULT_SCRFD_SIZE,
    embedder: str | None = None,
    embedder_weights: Path | None = None,
) -> list[ModelToExport]:
    """The models a release exports: the detector and the embedder named (or whose weights are given), and
    without artifacts both, the catalog's defaults where none is named. ONNX weights name their own variant
    or network (export infers it); other weights need the name."""

    def named(name: str | None, weights: Path | None, default: str) -> str | None:
        if name is not None:
            return name
        return None if weights is not None and Path(weights).suffix.lower() == ".onnx" else default

    models = []
    if detector or detector_weights or not artifacts:
        models.append(ModelToExport(named(detector, detector_weights, DEFAULT_SCRFD), detector_weights, (size, size)))
    if embedder or embedder_weights or not artifacts:
        models.append(ModelToExport(named(embedder, embedder_weights, DEFAULT_ARCFACE), embedder_weights))
    return models


def default_version() -> str:
    commit = git_commit()
    return f"{__version__}+{commit}" if commit else __version__
