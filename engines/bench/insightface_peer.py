"""insightface's own ``FaceAnalysis`` on our ONNX files: the per-image loop our pipeline is
set against (``facebatch bench --pipeline``), and the proof that both find the same faces.

insightface (``pip install 'facebatch[compare]'``, then ``pip install --no-deps
'insightface>=2.1'``: its wheel asks for opencv-python, whose ``cv2`` would replace
opencv-python-headless's) loads a model pack from a folder: the detector and embedder are
linked into a temporary one. Its sessions get the same onnxruntime options as ours (threads,
spinning), so the two differ in how they use the runtime and nothing else.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from facebatch.core.errors import EngineError, FacebatchError, SpecError
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.preprocess import load_image
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, Detections
from facebatch.engines.pipeline.stages import l2_normalize
from facebatch.engines.runners.onnxruntime_runner import CPU, session_options

COMPARE_HINT = "pip install 'facebatch[compare]' && pip install --no-deps 'insightface>=2.1'"


def insightface_available() -> bool:
    return importlib.util.find_spec("insightface") is not None


def insightface_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("insightface")
    except PackageNotFoundError:
        return "not installed"


class InsightFacePeer:
    """``with InsightFacePeer(detector, embedder, threads) as peer: results = peer.run(paths)``."""

    def __init__(
        self,
        detector: Path,
        embedder: Path,
        det_size: tuple[int, int],
        det_thresh: float = DET_THRESH,
        threads: int | None = None,
        spin_wait: bool = True,
    ) -> None:
        if not insightface_available():
            raise SpecError(f"the insightface comparison needs insightface: {COMPARE_HINT}", field="insightface")
        self.detector, self.embedder = Path(detector), Path(embedder)
        self.det_size = det_size
        self.det_thresh = det_thresh
        self.threads = threads
        self.spin_wait = spin_wait
        self._folder: tempfile.TemporaryDirectory | None = None
        self.app = None

    def __enter__(self) -> InsightFacePeer:
        from insightface.app import FaceAnalysis

        logging.getLogger("insightface").setLevel(logging.ERROR)
        self._folder = tempfile.TemporaryDirectory(prefix="facebatch-insightface-pack-")
        pack = Path(self._folder.name)
        # FaceAnalysis takes the first detector and the first recognition model in name order
        for prefix, source in (("1_detection_", self.detector), ("2_recognition_", self.embedder)):
            os.symlink(source.resolve(), pack / f"{prefix}{source.name}")
        try:
            self.app = FaceAnalysis(
                name=str(pack),
                providers=[CPU],
                allowed_modules=["detection", "recognition"],
                sess_options=session_options(self.threads, self.spin_wait),
            )
            height, width = self.det_size
            self.app.prepare(ctx_id=-1, det_thresh=self.det_thresh, det_size=(width, height))
        except FacebatchError:
            raise
        except Exception as exc:  # insightface raises assertions and its own errors
            self._folder.cleanup()
            raise EngineError(f"insightface cannot load {self.detector.name} and {self.embedder.name}: {exc}") from exc
        if "recognition" not in self.app.models:
            raise EngineError(
                f"insightface does not take {self.embedder.name} as a recognition model (it wants a square input of 112 or more)"
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.app = None
        if self._folder is not None:
            self._folder.cleanup()

    def analyse(self, path: Path) -> ImageFaces:
        """One photo the way ``FaceAnalysis.get`` does it (our reader, as insightface's
        ``cv2.imread`` converts the same way; an unreadable photo is an error result)."""
        assert self.app is not None
        try:
            image = load_image(path)
        except FacebatchError as exc:
            return ImageFaces(path, error=str(exc))
        faces = self.app.get(image)
        boxes = np.array([f.bbox for f in faces], dtype=np.float32).reshape(-1, 4)
        scores = np.array([f.det_score for f in faces], dtype=np.float32)
        landmarks = np.array([f.kps for f in faces], dtype=np.float32).reshape(-1, 5, 2)
        width = len(faces[0].embedding) if faces else 0
        embeddings = l2_normalize(np.array([f.embedding for f in faces], dtype=np.float32).reshape(len(faces), width))
        return ImageFaces(path, image.shape[:2], Detections(boxes, scores, landmarks), embeddings)

    def run(self, paths: Sequence[Path]) -> tuple[list[ImageFaces], float]:
        """Every photo in order, and the wall seconds."""
        began = time.perf_counter()
        results = [self.analyse(p) for p in paths]
        return results, time.perf_counter() - began
