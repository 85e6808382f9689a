"""The python-backend models of a facebatch repository. Each served ``model.py`` is three
lines that subclass one of these and hand in the backend's utilities
(``triton_python_backend_utils``, which exists only inside Triton's python stub):

* ``OnnxModel`` (``--runtime python``): runs the folder's ``model.onnx`` with onnxruntime on
  the CPU, for Triton installs without the onnxruntime backend. The requests the dynamic
  batcher hands over run as one batch and are split back.
* ``FacePipelineModel`` (``--pipeline``): encoded photos in, faces out. The same code as
  ``facebatch detect``/``embed`` (``FacePipeline``: letterbox, decode, NMS, alignment, L2),
  with the detector and the embedder reached through BLS runners. Photos fail closed: each is
  refused from its header (no size, a format not accepted, above ``max_photo_pixels``) before
  anything is decoded, and the photos of a merged batch are decoded in parts of at most
  ``max_batch_pixels``, so the stub's memory is bounded whatever the batcher merges.

Models answer every request: a bad one gets an error response, the others their results.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facebatch.configs.spec import BATCH
from facebatch.configs.spec_io import spec_from_dict
from facebatch.core.errors import FacebatchError, SpecError
from facebatch.engines.pipeline.face_pipeline import FacePipeline
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.image_header import (
    ACCEPTED,
    DEFAULT_MAX_PHOTO_PIXELS,
    PhotoHeader,
    PhotoRefused,
    batch_pixel_budget,
    check_limit_against_opencv,
    checked_header,
    what_to_change,
)
from facebatch.engines.pipeline.options import FaceModels, PipelineSettings
from facebatch.engines.pipeline.preprocess import decode_within
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.engines.runners.base import Runner, TensorMeta, first_line
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.runners.triton_bls_runner import TritonBlsRunner
from facebatch.engines.triton.defaults import FACE_OUTPUTS, IMAGES_INPUT, PIPELINE_FILE


class FacebatchModel:
    """What every facebatch python model shares: its config, folder and parameters, and
    answering requests with errors."""

    backend: Any = None  # triton_python_backend_utils, set by the served model.py

    def initialize(self, args: dict[str, str]) -> None:
        if self.backend is None:
            raise SpecError(
                "a facebatch python model needs the python backend's utilities: subclass it in model.py with "
                "'backend = triton_python_backend_utils'"
            )
        self.config = json.loads(args["model_config"])
        self.name = args["model_name"]
        self.folder = Path(args["model_repository"]) / args["model_version"]
        self.runners: list[Runner] = []

    def parameter(self, key: str, default: str) -> str:
        return self.config.get("parameters", {}).get(key, {}).get("string_value", default)

    def finalize(self) -> None:
        for runner in reversed(self.runners):
            runner.__exit__(None, None, None)
        self.runners = []

    def error_response(self, message: str) -> Any:  # pb_utils.InferenceResponse
        return self.backend.InferenceResponse(
            output_tensors=[], error=self.backend.TritonError(f"{self.name}: {message}")
        )

    def input_array(self, request: Any, name: str) -> np.ndarray:  # pb_utils.InferenceRequest
        tensor = self.backend.get_input_tensor_by_name(request, name)
        if tensor is None:
            raise SpecError(f"the request has no input {name!r}")
        return tensor.as_numpy()

    def execute(self, requests: Sequence[Any]) -> list[Any]:
        try:
            return self.answer(requests)
        except FacebatchError as exc:
            return [self.error_response(str(exc)) for _ in requests]
        except Exception as exc:  # a runtime's own exception still answers every request in one line
            return [self.error_response(f"{type(exc).__name__}: {first_line(exc)}") for _ in requests]

    def answer(self, requests: Sequence[Any]) -> list[Any]:
        raise NotImplementedError


class OnnxModel(FacebatchModel):
    """The folder's ONNX file on onnxruntime's CPU provider; one run per batch of requests."""

    def initialize(self, args: dict[str, str]) -> None:
        super().initialize(args)
        threads = int(self.parameter("threads", "0")) or None
        # spin_wait off: the pipeline's instances and this model take turns on the same cores
        runner = OnnxRuntimeRunner(
            self.folder / self.parameter("onnx_file", "model.onnx"),
            intra_op_threads=threads,
            label=self.name,
            spin_wait=False,
        )
        self.runner = runner.__enter__()
        self.runners.append(runner)

    def answer(self, requests: Sequence[Any]) -> list[Any]:
        names = self.runner.input_names
        feeds = [{name: self.input_array(request, name) for name in names} for request in requests]
        sizes = [len(feed[names[0]]) for feed in feeds]
        merged = {name: np.concatenate([feed[name] for feed in feeds]) for name in names}
        outputs = self.runner.infer(merged)
        bounds = np.cumsum([0, *sizes])
        return [
            self.backend.InferenceResponse(
                output_tensors=[
                    self.backend.Tensor(name, np.ascontiguousarray(array[a:b])) for name, array in outputs.items()
                ]
            )
            for a, b in zip(bounds[:-1], bounds[1:], strict=False)
        ]


def _metas(tensors: list[dict]) -> list[TensorMeta]:
    return [
        TensorMeta(t["name"], np.dtype(t["dtype"]), (BATCH, *(d if d > 0 else None for d in t["dims"])))
        for t in tensors
    ]


def face_outputs(result: ImageFaces, index: int, embedding_size: int) -> dict[str, np.ndarray]:
    """One photo's faces as the pipeline's output rows (``index``: the photo's row in its request)."""
    faces, count = result.faces, len(result)
    assert faces is not None and faces.landmarks is not None
    embeddings = result.embeddings if result.embeddings is not None else np.zeros((0, embedding_size), np.float32)
    arrays = (np.full(count, index, np.int32), faces.boxes, faces.scores, faces.landmarks, embeddings)
    return {
        name: np.asarray(a, dtype=np.int32 if name == FACE_OUTPUTS[0] else np.float32)
        for name, a in zip(FACE_OUTPUTS, arrays, strict=False)
    }


def join_faces(rows: list[dict[str, np.ndarray]], embedding_size: int) -> dict[str, np.ndarray]:
    """One request's output tensors: the rows of its photos, in order."""
    empty = {
        FACE_OUTPUTS[0]: (0,),
        FACE_OUTPUTS[1]: (0, 4),
        FACE_OUTPUTS[2]: (0,),
        FACE_OUTPUTS[3]: (0, 5, 2),
        FACE_OUTPUTS[4]: (0, embedding_size),
    }
    return {
        name: np.ascontiguousarray(
            np.concatenate([r[name] for r in rows])
            if rows
            else np.zeros(empty[name], np.int32 if name == FACE_OUTPUTS[0] else np.float32)
        )
        for name in FACE_OUTPUTS
    }


@dataclass(frozen=True)
class ServedPhoto:
    """One photo of a merged batch: the request it came in, its place there, its bytes and header."""

    request: int
    index: int
    data: bytes
    header: PhotoHeader

    @property
    def name(self) -> Path:
        return Path(f"request{self.request}/photo{self.index}")


def pixel_parts(photos: Sequence[ServedPhoto], budget: int) -> Iterator[list[ServedPhoto]]:
    """The photos in order, in consecutive parts whose header pixels add up to at most ``budget``
    (a photo is never above it: ``max_photo_pixels`` <= ``max_batch_pixels``). A batch within the
    budget is one part: the same detector calls, the same faces as without parts."""
    part: list[ServedPhoto] = []
    pixels = 0
    for photo in photos:
        if part and pixels + photo.header.pixels > budget:
            yield part
            part, pixels = [], 0
        part.append(photo)
        pixels += photo.header.pixels
    if part:
        yield part


def served_refusal(index: int, refusal: PhotoRefused) -> SpecError:
    """A photo of a request refused, in the words a client reads: which photo, why, what to send."""
    return SpecError(f"photo {index} of the request {refusal}: {what_to_change(refusal, served=True)}")


class FacePipelineModel(FacebatchModel):
    """Photos of every request the batcher merged go through ``FacePipeline.finish`` in parts of at
    most ``max_batch_pixels`` decoded pixels (one part for a batch within it): one detector call
    (through BLS) per max-batch photos of a part, one embedder call per max-batch faces, then the
    faces are handed back to the request each photo came in."""

    def initialize(self, args: dict[str, str]) -> None:
        super().initialize(args)
        description = json.loads((self.folder / PIPELINE_FILE).read_text())
        det, emb = description["detector"], description["embedder"]
        det_spec, emb_spec = spec_from_dict(det["spec"]), spec_from_dict(emb["spec"])
        models = FaceModels(det_spec, (int(det["size"][0]), int(det["size"][1])), emb_spec)
        self.max_photo_pixels = int(self.parameter("max_photo_pixels", str(DEFAULT_MAX_PHOTO_PIXELS)))
        check_limit_against_opencv(self.max_photo_pixels, "max_photo_pixels")
        # measured (tests/engines/triton/test_photo_limits.py, 2-core EPYC): a request of 8 photos of 2.9 MP with parts
        # of 6 MP grew the stub's peak RSS by 43-69 MiB over idle, by 149-205 MiB decoded all at once
        given = self.parameter("max_batch_pixels", "")  # a repository of an earlier facebatch has none
        self.max_batch_pixels = batch_pixel_budget(self.max_photo_pixels, int(given) if given else None)
        if self.max_batch_pixels < self.max_photo_pixels:
            raise SpecError(
                f"max_batch_pixels {self.max_batch_pixels} is below max_photo_pixels {self.max_photo_pixels}: "
                "a photo at the limit would fit no batch; raise it"
            )
        detector = TritonBlsRunner(self.backend, det["model"], _metas(det["inputs"]), _metas(det["outputs"]))
        embedder = TritonBlsRunner(self.backend, emb["model"], _metas(emb["inputs"]), _metas(emb["outputs"]))
        for runner in (detector, embedder):
            runner.__enter__()
            self.runners.append(runner)

        def served_batch(spec_max: int, served_max: int) -> int:  # what one BLS call may carry
            return max(1, min(spec_max, served_max))

        settings = PipelineSettings(
            det_thresh=float(self.parameter("det_thresh", str(DET_THRESH))),
            nms_thresh=float(self.parameter("nms_thresh", str(NMS_THRESH))),
            max_faces=int(self.parameter("max_faces", "0")),
            batch_size=served_batch(det_spec.batch.max, det["max_batch_size"]),
            embed_batch_size=served_batch(emb_spec.batch.max, emb["max_batch_size"]),
            read_workers=0,
            max_photo_pixels=self.max_photo_pixels,
        )
        self.pipeline = FacePipeline(models, detector, embedder, settings)
        self.embedding_size = int(emb_spec.embedding_size or emb["outputs"][0]["dims"][-1])

    def checked_photos(self, number: int, request: Any) -> list[ServedPhoto]:
        """A request's photos, each with its header checked (nothing decoded); a SpecError naming the
        first photo refused."""
        photos = []
        for index, data in enumerate(self.input_array(request, IMAGES_INPUT).reshape(-1)):
            data = bytes(data)
            try:
                header = checked_header(data, self.max_photo_pixels, "this server's")
            except PhotoRefused as refusal:  # refused from its header: the photo is never decoded
                raise served_refusal(index, refusal) from None
            photos.append(ServedPhoto(number, index, data, header))
        return photos

    def answer(self, requests: Sequence[Any]) -> list[Any]:
        photos: list[ServedPhoto] = []
        refused: dict[int, str] = {}
        for number, request in enumerate(requests):
            try:
                photos += self.checked_photos(number, request)
            except FacebatchError as exc:
                refused[number] = str(exc)
        rows: dict[int, list[dict[str, np.ndarray]]] = {n: [] for n in range(len(requests))}
        for part in pixel_parts(photos, self.max_batch_pixels):
            self.answer_part(part, rows, refused)
        responses = []
        for number in range(len(requests)):
            if number in refused:
                responses.append(self.error_response(refused[number]))
                continue
            tensors = join_faces(rows[number], self.embedding_size)
            responses.append(
                self.backend.InferenceResponse(output_tensors=[self.backend.Tensor(n, a) for n, a in tensors.items()])
            )
        return responses

    def answer_part(
        self, part: list[ServedPhoto], rows: dict[int, list[dict[str, np.ndarray]]], refused: dict[int, str]
    ) -> None:
        """Decode one part's photos, find their faces and add them to their requests' ``rows``; a photo
        that does not decode refuses its request (its other photos are dropped). The part's decoded
        photos are released on return."""
        decoded: list[tuple[ServedPhoto, np.ndarray]] = []
        for photo in part:
            if photo.request in refused:
                continue
            try:
                image = decode_within(photo.data, photo.header)
            except PhotoRefused as refusal:
                refused[photo.request] = str(served_refusal(photo.index, refusal))
                continue
            if image is None:
                refused[photo.request] = f"photo {photo.index} of the request is not a whole image ({ACCEPTED} bytes)"
                continue
            decoded.append((photo, image))
        kept = [(photo, image) for photo, image in decoded if photo.request not in refused]
        del decoded
        prepared = [self.pipeline.prepare(photo.name, image) for photo, image in kept]
        results = self.pipeline.finish(prepared) if prepared else []
        for (photo, _), result in zip(kept, results, strict=True):
            rows[photo.request].append(face_outputs(result, photo.index, self.embedding_size))
