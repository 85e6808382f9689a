"""``detect``, ``embed`` and ``compare``: the face pipeline over photos, as use cases. The models are
resolved and proven here (``workflows.models``: INT8 only where its gate passed, an embedder that is a face
embedder), outputs are refused before the slow work when they would land on an input or cannot be
written, unreadable photos are named in the result, and every file is written atomically."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.core.atomic import (
    InputFiles,
    check_not_input,
    check_output_file,
    check_output_folder,
    write_bytes_atomic,
    write_text_atomic,
)
from facebatch.core.errors import OutputError, SpecError
from facebatch.core.interrupts import keeping
from facebatch.core.progress import progress_bar, warn
from facebatch.core.words import counted
from facebatch.engines.pipeline.compare import FaceMatch, match_best_faces
from facebatch.engines.pipeline.defaults import DEFAULT_BACKEND, DEFAULT_MATCH_THRESHOLD
from facebatch.engines.pipeline.face_pipeline import FacePipeline
from facebatch.engines.pipeline.image_faces import ImageFaces, StageTimes
from facebatch.engines.pipeline.opening import open_pipeline as open_lanes
from facebatch.engines.pipeline.options import PipelineOptions
from facebatch.engines.pipeline.photo_files import IMAGE_SUFFIXES
from facebatch.engines.pipeline.reader import PhotoItem, collect_photos, photo_pixels
from facebatch.engines.pipeline.results import (
    detections_json,
    draw_faces,
    drawn_name,
    embeddings_index,
    embeddings_npz,
    encode_image,
)
from facebatch.engines.runners.factory import RunnerOptions
from facebatch.workflows.models import ModelOptions, PipelineModels, choose_models


@dataclass(frozen=True)
class PipelineRun:
    """How the face pipeline runs: its models, the backend, the pipeline's options and the threads per runtime."""

    models: ModelOptions = field(default_factory=ModelOptions)
    backend: str = DEFAULT_BACKEND
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    threads: int | None = None  # per runtime; None: the physical cores over the lanes

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise SpecError(f"threads must be at least 1, got {self.threads}", field="threads")

    def runner_options(self, chosen: PipelineModels | None = None) -> RunnerOptions:
        """The runners' options; ``chosen``: each model's own precision (auto's BF16 detector beside FP32)."""
        # the detector and the embedder take turns on the same cores: spinning threads would slow each other
        return RunnerOptions(
            threads=self.threads,
            spin_wait=False,
            compile_cache=self.pipeline.compile_cache,
            bf16=self.models.precision == "bf16",  # each model's proof is checked by pipeline_models
            bf16_files=chosen.bf16_files if chosen is not None else frozenset(),
        )

    def input_paths(self) -> list[Path]:
        """The model files this run reads (never an output)."""
        named = (self.models.detector, self.models.embedder, self.models.embedder_spec)
        return [item.path if isinstance(item, ModelFile) else Path(item) for item in named if item is not None]


@contextmanager
def open_faces(run: PipelineRun, embed: bool = True) -> Iterator[FacePipeline]:
    """The pipeline over the models ``run`` names, proven, each in its precision (``choose_models``), for a
    ``with`` block."""
    with open_models(choose_models(run.models, embed, run.backend), run) as pipeline:
        yield pipeline


def open_models(chosen: PipelineModels, run: PipelineRun):  # ctx[FacePipeline]
    """The pipeline over models already chosen (``choose_models``: each in its precision), with ``run``'s backend,
    options and threads."""
    detector, embedder = chosen.files
    return open_lanes(detector, embedder, run.backend, run.pipeline, run.runner_options(chosen), run.models.size)


def photo_inputs(photos: Sequence[Path], run: PipelineRun, folders: Sequence[Path] = ()) -> InputFiles:
    """Everything a pipeline command reads: the photos (a folder by its photos' suffixes), the models, and
    ``folders`` read whole (a gallery). What an output may never be."""
    files = [p for p in photos if not Path(p).is_dir()] + run.input_paths()
    photo_folders = [(Path(p), IMAGE_SUFFIXES) for p in photos if Path(p).is_dir()]
    return InputFiles(files, photo_folders + [(Path(f), None) for f in folders])


@dataclass
class FacesResult:
    """Every photo's faces (and embeddings), the stage times, what ran, and what was written."""

    photos: list[ImageFaces]
    times: StageTimes
    about: dict[str, Any]
    embedded: bool
    written: list[Path] = field(default_factory=list)
    drawn: int = 0
    models: dict[str, str] = field(default_factory=dict)  # role → sha256 of the model that ran
    precisions: dict[str, str] = field(default_factory=dict)  # role → the precision it computed in
    npz_name: str | None = None  # embed: the .npz the JSON indexes (its rows)

    @property
    def failed(self) -> list[ImageFaces]:
        """The photos that could not be read (each named with its reason)."""
        return [r for r in self.photos if not r.ok]

    @property
    def faces(self) -> int:
        return sum(len(r) for r in self.photos)

    def to_json(self) -> str:
        """detect: every photo's faces; embed: the index of the .npz rows (what each command writes as JSON)."""
        if self.embedded and self.npz_name is not None:
            return embeddings_index(self.photos, self.npz_name, self.about)
        return detections_json(self.photos, self.about)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())

    def to_markdown(self) -> str:
        lines = ["| photo | faces | best score |", "|---|---:|---:|"]
        for r in self.photos:
            best = f"{float(r.faces.scores[0]):.3f}" if r.ok and len(r) and r.faces is not None else "-"
            lines.append(f"| {r.path.name} | {len(r) if r.ok else 'unreadable'} | {best} |")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DetectOptions:
    # photo files and folders (walked with their subfolders: ``photo_files``), and photos held in memory: a photo
    # file's bytes, a decoded BGR uint8 HxWx3 array (``reader.photo_items``; named photos[i] in the results)
    photos: Sequence[Path | bytes | np.ndarray]
    run: PipelineRun = field(default_factory=PipelineRun)
    json: Path | None = None  # every photo's faces as JSON
    draw: Path | None = None  # a folder for annotated copies of the photos
    command: str | None = None  # the command line, recorded in the JSON


@dataclass(frozen=True)
class EmbedOptions:
    photos: Sequence[Path | bytes | np.ndarray]  # as DetectOptions.photos
    output: Path  # the .npz of every face's embedding
    run: PipelineRun = field(default_factory=PipelineRun)
    json: Path | None = None  # the index of the .npz rows
    command: str | None = None


def detect(options: DetectOptions) -> FacesResult:
    """Every face of every photo (box, score, 5 landmarks), batched; annotated copies and JSON when asked."""
    paths = collect_photos(options.photos)  # files, folders walked, and photos held in memory
    _check_targets(_files(paths), options.run, [("json", options.json)], options.draw)
    result = _run_faces(paths, options.run, False, options.draw, options.command)
    if options.json is not None:
        write_text_atomic(options.json, result.to_json(), "json")
        result.written.append(options.json)
    return result


def embed(options: EmbedOptions) -> FacesResult:
    """Every face of every photo, aligned and embedded (unit length) into an .npz; its row index as JSON."""
    paths = collect_photos(options.photos)
    _check_targets(_files(paths), options.run, [("output", options.output), ("json", options.json)], None)
    result = _run_faces(paths, options.run, True, None, options.command)
    write_bytes_atomic(options.output, embeddings_npz(result.photos, result.models, result.precisions), "output")
    result.written.append(options.output)
    result.npz_name = options.output.name
    if options.json is not None:
        write_text_atomic(options.json, result.to_json(), "json")
        result.written.append(options.json)
    return result


def _check_targets(
    photos: list[Path], run: PipelineRun, files: list[tuple[str, Path | None]], draw: Path | None
) -> None:
    """Refuse, before the slow work, outputs that are folders, unwritable, or would replace one of the photos or
    models (an annotated copy written over its own original, say)."""
    inputs = photo_inputs(photos, run)
    for name, target in files:
        if target is not None:
            check_output_file(target, name, inputs)
    if draw is None:
        return
    check_output_folder(draw, "draw")
    taken: set[str] = set()
    for photo in photos:  # each annotated copy's name: refused where it is a photo being read
        target = draw / drawn_name(photo, taken)
        if target in inputs:
            raise OutputError(
                f"draw {draw} would write the annotated copy of {photo.name} over {target}, one of the photos being "
                "read; facebatch never overwrites an input: pass another folder",
                field="draw",
            )
        check_not_input(target, "draw", ())  # a folder where the copy goes


def _files(photos: list[PhotoItem]) -> list[Path]:
    """The photos that are files (what an output may not replace)."""
    return [photo for photo in photos if isinstance(photo, Path)]


def _run_faces(
    paths: list[PhotoItem], run: PipelineRun, embed: bool, draw: Path | None, command: str | None
) -> FacesResult:
    drawn: set[str] = set()
    photos, copies = [], []  # copies: the annotated copies written so far
    chosen = choose_models(run.models, embed, run.backend)
    detector, embedder = chosen.files
    models = {"detector": detector.sha256} | ({"embedder": embedder.sha256} if embedder is not None else {})
    with open_models(chosen, run) as pipeline, keeping(lambda: _kept(embed, draw, len(copies))):
        with progress_bar(len(paths), "embed" if embed else "detect") as advance:
            for item, found in zip(paths, pipeline.run(paths), strict=True):
                photos.append(found)
                if not found.ok:
                    warn(f"skipped {found.path}: {found.error}", found.error_field)
                elif draw is not None:
                    name = drawn_name(found.path if isinstance(item, Path) else found.path.with_suffix(".png"), drawn)
                    image = draw_faces(photo_pixels(item, run.pipeline.max_photo_pixels), found)
                    write_bytes_atomic(draw / name, encode_image(image, name), "draw")
                    copies.append(name)
                advance(
                    f"{found.path.name}: {counted(len(found), 'face')}" if found.ok else f"{found.path.name}: skipped"
                )
        about = _about(pipeline, run, command) | {"precision": chosen.to_dict()}  # per model: what it ran in, why
        times = pipeline.times
    return FacesResult(photos, times, about, embed, drawn=len(drawn), models=models, precisions=chosen.precisions)


def _kept(embed: bool, draw: Path | None, copies: int) -> str | None:
    """What an interrupted detect or embed leaves: the annotated copies written so far (each whole); the .npz and
    the JSON are written once every photo is done, so an interrupted run writes neither."""
    if embed:
        return "no embeddings written (the .npz is written once every photo is done)"
    if draw is not None:
        return f"{counted(copies, 'annotated copy', 'annotated copies')} written to {draw}"
    return None


def _about(pipeline: FacePipeline, run: PipelineRun, command: str | None) -> dict[str, Any]:
    about: dict[str, Any] = {"command": command} if command else {}
    about |= {
        "detector": str(pipeline.detector.label),
        "backend": run.backend,
        "provider": pipeline.detector.provider,
        "det_thresh": run.pipeline.det_thresh,
        "nms_thresh": run.pipeline.nms_thresh,
    }
    if pipeline.embedder is not None:
        about["embedder"] = str(pipeline.embedder.label)
    return about


def check_cosine(value: float, field: str) -> None:
    """A cosine threshold lies in [-1, 1] (compare's and search's, one rule)."""
    if not -1.0 <= value <= 1.0:
        raise SpecError(f"{field} is a cosine between -1 and 1, got {value}", field=field)


@dataclass(frozen=True)
class CompareOptions:
    first: Path
    second: Path
    threshold: float = DEFAULT_MATCH_THRESHOLD  # cosine at or above which the faces are the same person
    run: PipelineRun = field(default_factory=PipelineRun)
    json: Path | None = None
    markdown: Path | None = None

    def __post_init__(self) -> None:
        check_cosine(self.threshold, "threshold")


@dataclass(frozen=True)
class CompareResult:
    """The best face of each photo compared."""

    match: FaceMatch
    precision: dict[str, Any] = field(default_factory=dict)  # per model: the precision it ran in and why

    @property
    def same(self) -> bool:
        return self.match.same

    def to_dict(self) -> dict[str, Any]:
        return self.match.to_dict() | ({"precision": self.precision} if self.precision else {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        m = self.match
        verdict = "same person" if m.same else "different people"
        return (
            f"| photo A | photo B | cosine | threshold | verdict |\n|---|---|---:|---:|---|\n"
            f"| {m.first.path.name} | {m.second.path.name} | {m.cosine:.4f} | {m.threshold:g} | {verdict} |\n"
        )


def compare(options: CompareOptions) -> CompareResult:
    """Are the best faces of two photos the same person? (A photo without a face is an error.)"""
    for name, path in (("first", options.first), ("second", options.second)):
        if not Path(path).is_file():
            raise SpecError(f"{name} {path} is not a file; compare takes two photos", field=name)
    photos = [Path(options.first), Path(options.second)]
    _check_targets(photos, options.run, [("json", options.json), ("markdown", options.markdown)], None)
    chosen = choose_models(options.run.models, True, options.run.backend)
    with open_models(chosen, options.run) as pipeline:
        first, second = pipeline.run(photos)
    result = CompareResult(match_best_faces(first, second, options.threshold), chosen.to_dict())
    for name, target, render in (
        ("json", options.json, result.to_json),
        ("markdown", options.markdown, result.to_markdown),
    ):
        if target is not None:
            write_text_atomic(target, render(), name)
    return result
