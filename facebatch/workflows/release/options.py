"""What a release is asked for: the models to export or the artifacts to take, and the options of each gate."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facebatch.core.environment import git_commit
from facebatch.core.errors import SpecError
from facebatch.core.trusted_paths import printable
from facebatch.core.version import __version__
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.regression import DEFAULT_MAX_SLOWDOWN
from facebatch.exporter.torch_reference import TORCH
from facebatch.workflows.release.settings import (
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
    name: str = RELEASE_NAME
    version: str | None = None  # None: facebatch's version and the git commit
    out: Path = RELEASE_OUT
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
    budget: Budget = field(default_factory=lambda: Budget(warmup=RELEASE_BENCH_WARMUP_S, seconds=RELEASE_BENCH_SECONDS))
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
        turned_off = [
            g
            for g, on in (("engines", self.engines), ("fp16", self.fp16), ("triton", self.triton))
            if g in self.require and not on
        ]
        if turned_off:
            raise SpecError(f"--require {turned_off[0]} contradicts --no-{turned_off[0]}; drop one of them")
        if "performance" in self.require and self.baseline_bench is None:
            raise SpecError(
                "--require performance needs --baseline-bench OLD/bench.json (the bench it is compared with)"
            )
        if not self.models and not self.artifacts:
            raise SpecError("a release needs models to export or --artifact files")
        for flag, value in (("--name", self.name), ("--version", self.version)):
            if value is not None and not RELEASE_PART.fullmatch(value):  # it names a folder inside --out
                raise SpecError(
                    f"{flag} {printable(value)}: letters, digits and . _ + - only, not starting with . _ + -"
                )
        if self.int8 and not self.photos:
            raise SpecError("--int8 calibrates on photos and judges accuracy on them: pass --images")
        names = {Path(a).name for a in self.artifacts}
        unknown = sorted(set(self.references) - names)
        if unknown:
            raise SpecError(
                f"--reference names {', '.join(unknown)}, which is not an --artifact; use ARTIFACT.onnx=REFERENCE "
                f"with one of: {', '.join(sorted(names)) or 'no --artifact given'}"
            )
        for name, reference in self.references.items():
            if str(reference) != TORCH and not Path(reference).is_file():
                raise SpecError(
                    f"--reference {name}={reference}: {reference} does not exist; pass 'torch' or an ONNX file"
                )


def default_version() -> str:
    commit = git_commit()
    return f"{__version__}+{commit}" if commit else __version__
