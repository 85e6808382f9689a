"""``export`` as a use case: one ``ExportOptions`` in, one proven artifact (``ExportResult``) out, the
same for the command line and the Python API.

The family (SCRFD or ArcFace) comes from the model name, a config file or what ONNX weights are
(``exporter.dispatch``); here the photos of the proofs are resolved (each a photo or a folder of
photos, refused when it names none) and everything that can be refused is refused before the slow
work. A proof that fails raises ``ExportError``/``VerificationFailed`` and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.exporter.dispatch import export_model
from facebatch.exporter.export_job import ExportResult
from facebatch.exporter.options import ArtifactOptions


@dataclass
class ExportOptions(ArtifactOptions):
    """What ``export`` builds and where: the model (a catalog name, or inferred from ONNX ``weights`` or a
    ``config``), its weights (none: seeded, for checking and benchmarking only), its input size, and how
    the artifact is written and proven (``ArtifactOptions``; ``photos`` may name folders of photos)."""

    model: str | None = None  # e.g. scrfd_10g_bnkps, arcface_r50, r50
    weights: Path | None = None  # an mmdet or arcface_torch checkpoint, or an ONNX file (official layout or ours)
    config: Path | None = None  # an insightface SCRFD config .py, for custom-trained detectors
    size: tuple[int, int] | None = None  # SCRFD's input (height, width); ArcFace takes 112x112 only
    dynamic_size: bool = False  # SCRFD: height and width symbolic too
    embedding_size: int | None = None  # ArcFace checkpoints and seeded networks; ONNX weights carry their own

    def __post_init__(self) -> None:
        """Paths may come as text (the Python API): each becomes a ``Path``."""
        self.weights = None if self.weights is None else Path(self.weights)
        self.config = None if self.config is None else Path(self.config)
        self.out_dir = Path(self.out_dir)
        self.photos = tuple(Path(p) for p in self.photos)
        self.parity_batch_sizes = tuple(self.parity_batch_sizes)
        self.size = None if self.size is None else (int(self.size[0]), int(self.size[1]))


def export(options: ExportOptions) -> ExportResult:
    """The proven, batch-safe ONNX ``options`` describe and its sidecar, in ``options.out_dir``."""
    options.check()  # opset and parity batch sizes, before the photos are even listed
    common = {f.name: getattr(options, f.name) for f in fields(ArtifactOptions)}
    artifact = ArtifactOptions(**(common | {"photos": proof_photos(options.photos)}))
    return export_model(
        options.model,
        weights=options.weights,
        config=options.config,
        size=options.size,
        dynamic_size=options.dynamic_size,
        embedding_size=options.embedding_size,
        settings=artifact,
    )
