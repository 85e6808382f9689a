"""Published throughput tables (``configs/published/*.yaml``) and the comparison of a
measured run with them.

    source: https://…            # where the figures were published
    hardware: NVIDIA GeForce RTX 5090
    precision: fp16
    backend: tensorrt
    models:
      - model: scrfd_10g_bnkps   # facebatch's name of the network (ModelSpec.name)
        input_size: [320, 320]
        results:
          - {batch: 1, fps: 867, ms_per_frame: 1.15}

A comparison pairs a run with the entry of the same model and input size, batch by batch,
and says plainly when hardware, precision or backend differ: the ratio is then for
orientation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from facebatch.configs.yaml_file import read_yaml
from facebatch.core.errors import SpecError

TOP_KEYS = {"source", "hardware", "precision", "backend", "models"}
MODEL_KEYS = {"model", "input_size", "results"}
RESULT_KEYS = {"batch", "fps", "ms_per_frame"}


@dataclass(frozen=True)
class PublishedResult:
    batch: int
    fps: float
    ms_per_frame: float


@dataclass(frozen=True)
class PublishedModel:
    model: str
    input_size: tuple[int, int]
    results: tuple[PublishedResult, ...]


@dataclass(frozen=True)
class PublishedTable:
    path: Path
    source: str
    hardware: str
    precision: str
    backend: str
    models: tuple[PublishedModel, ...]

    def entry(self, model: str, input_size: tuple[int, int]) -> PublishedModel | None:
        return next((m for m in self.models if m.model == model and m.input_size == input_size), None)


def shipped_tables() -> list[Path]:
    """The published tables that come with facebatch (configs/published/*.yaml)."""
    folder = Path(str(files("facebatch.configs") / "published"))
    return sorted(folder.glob("*.yaml"))


def _mapping(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a mapping with {', '.join(sorted(keys))}")
    missing, unknown = sorted(keys - set(value)), sorted(set(value) - keys)
    if missing or unknown:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has unknown keys {', '.join(unknown)}"] if unknown else []
        )
        raise SpecError(f"{where} {' and '.join(parts)}; expected {', '.join(sorted(keys))}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SpecError(f"{where} must be a positive number, got {value!r}")
    return float(value)


def load_published(path: Path) -> PublishedTable:
    """Read and check a published table (a file, or a shipped table by name, e.g.
    ``alonsorobots_rtx5090``); any schema problem is one line naming where."""
    path = Path(path)
    shipped = {p.stem: p for p in shipped_tables()}
    if not path.is_file() and path.stem in shipped and len(path.parts) == 1:
        path = shipped[path.stem]
    if not path.is_file():
        raise SpecError(
            f"published table {path} does not exist (shipped: {', '.join(str(p) for p in shipped_tables())})"
        )
    data = read_yaml(path, "published table")
    top = _mapping(data, str(path), TOP_KEYS)
    for key in ("source", "hardware", "precision", "backend"):
        if not isinstance(top[key], str) or not top[key].strip():
            raise SpecError(f"{path}: {key} must be a non-empty string")
    if not isinstance(top["models"], list) or not top["models"]:
        raise SpecError(f"{path}: models must be a non-empty list")
    models = []
    for i, raw in enumerate(top["models"]):
        where = f"{path}: models[{i}]"
        entry = _mapping(raw, where, MODEL_KEYS)
        size = entry["input_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise SpecError(f"{where}.input_size must be [height, width], got {size!r}")
        if not isinstance(entry["results"], list) or not entry["results"]:
            raise SpecError(f"{where}.results must be a non-empty list")
        results = []
        for j, result in enumerate(entry["results"]):
            row = _mapping(result, f"{where}.results[{j}]", RESULT_KEYS)
            batch = row["batch"]
            if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
                raise SpecError(f"{where}.results[{j}].batch must be a positive integer, got {batch!r}")
            results.append(
                PublishedResult(
                    batch,
                    _number(row["fps"], f"{where}.results[{j}].fps"),
                    _number(row["ms_per_frame"], f"{where}.results[{j}].ms_per_frame"),
                )
            )
        models.append(PublishedModel(str(entry["model"]), (size[0], size[1]), tuple(results)))
    return PublishedTable(path, top["source"], top["hardware"], top["precision"], top["backend"], tuple(models))


@dataclass
class ComparedRow:
    batch: int
    published_fps: float
    measured_fps: float | None  # None: this batch size was not measured

    @property
    def ratio(self) -> float | None:
        return None if self.measured_fps is None else self.measured_fps / self.published_fps


@dataclass
class Comparison:
    artifact: str
    backend: str
    table: str  # the published table's file name
    source: str
    rows: list[ComparedRow] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # hardware / precision / backend, in words
    missing: str | None = None  # why nothing could be compared

    def lines(self) -> list[str]:
        if self.missing:
            return [f"{self.artifact} on {self.backend}: {self.missing}"]
        lines = [f"{self.artifact} on {self.backend} vs {self.table} ({self.source}):"]
        for row in self.rows:
            measured = "not measured" if row.measured_fps is None else f"{row.measured_fps:,.1f} FPS"
            ratio = "" if row.ratio is None else f"  ratio {row.ratio:.3g}×"
            lines.append(f"  batch {row.batch}: measured {measured}, published {row.published_fps:,.0f} FPS{ratio}")
        if self.differences:
            lines.append(f"  {'; '.join(self.differences)} differ: the ratio is for orientation only")
        else:
            lines.append("  same hardware, precision and backend: the ratio compares like with like")
        return lines

    def to_dict(self) -> dict:
        return {
            "artifact": self.artifact,
            "backend": self.backend,
            "table": self.table,
            "source": self.source,
            "missing": self.missing,
            "differences": self.differences,
            "rows": [
                {"batch": r.batch, "published_fps": r.published_fps, "measured_fps": r.measured_fps, "ratio": r.ratio}
                for r in self.rows
            ],
        }


def _same(measured: str, published: str) -> bool:
    a, b = measured.lower(), published.lower()
    return a == b or (bool(b) and b in a)


def compare(
    table: PublishedTable,
    artifact: str,
    model: str,
    input_size: tuple[int, int],
    backend: str,
    backend_family: str,
    hardware: str,
    precision: str,
    fps_by_batch: dict[int, float],
) -> Comparison:
    """A measured run (FPS per batch size) against the table's entry for its model and size."""
    result = Comparison(artifact, backend, table.path.name, table.source)
    entry = table.entry(model, input_size)
    if entry is None:
        h, w = input_size
        result.missing = f"{table.path.name} has no figures for {model} at {h}x{w}"
        return result
    result.rows = [ComparedRow(r.batch, r.fps, fps_by_batch.get(r.batch)) for r in entry.results]
    for what, ours, theirs in (
        ("hardware", hardware, table.hardware),
        ("precision", precision, table.precision),
        ("backend", backend_family, table.backend),
    ):
        if not _same(ours, theirs):
            result.differences.append(f"{what} ({ours} vs {theirs})")
    return result
