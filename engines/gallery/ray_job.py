"""``facebatch index --ray``: the same job on a Ray cluster with Ray Data.

    photos (a dataset of paths)  →  read + letterbox  (CPU tasks)
                                 →  detect + align + embed  (an actor pool: one FacePipeline per actor,
                                    num_gpus=1 each where the cluster has GPUs, CPU actors otherwise)
                                 →  Parquet shards  (written by the workers into a staging folder)

and the driver commits the staged shards into the gallery and builds the index, exactly as the
local run does. Each stage calls the pipeline's own steps (``FacePipeline.prepare`` and
``FacePipeline.finish``), so the rows equal the local run's.

The gallery folder and the model files must be paths every node sees (a shared filesystem); the
photos too. Ray is an optional extra, imported here only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from facebatch.engines.gallery.photos import Photo
from facebatch.engines.gallery.settings import RAY_CONNECT_TIMEOUT_S
from facebatch.engines.gallery.store import Gallery, PhotoState
from facebatch.errors import EngineError, SpecError

RAY_EXTRA_HINT = "pip install 'facebatch[ray]' (ray[data])"
STAGING_PREFIX = ".ray-staging-"


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate part of the wheel
    except ImportError:
        raise SpecError(f"--ray needs Ray Data: {RAY_EXTRA_HINT}") from None
    return ray


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS frame
SETTINGS_FRAME = 4


def check_address_answers(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Refuse, within ``timeout``, an address where nothing listens or what listens is not gRPC (both
    Ray's GCS and its client server are): ray.init would wait far longer on either."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray-gcs://{address}")
    try:
        host, port = parsed.hostname, parsed.port or (10001 if parsed.scheme == "ray" else 6379)
    except ValueError:
        host = port = None
    if not host:
        raise SpecError(f"--ray {address} is not an address (HOST:PORT, or ray://HOST:PORT for Ray Client)")
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            # a gRPC server answers the HTTP/2 preface with its SETTINGS frame at once
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            connection.sendall(HTTP2_PREFACE)
            header = connection.recv(9)
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise EngineError(
            f"no Ray cluster answers at {address} ({reason}); start one ('ray start --head') or pass another --ray address"
        ) from None
    if len(header) < 9 or header[3] != SETTINGS_FRAME:
        raise EngineError(
            f"{address} answers, but not as a Ray cluster (no gRPC); pass the head node's GCS address (HOST:6379) or "
            "ray://HOST:10001"
        )


@contextlib.contextmanager
def ray_session(address: str | None):
    """Ray as the job needs it: the running session if this process has one (a test's ray.init),
    else a connection to ``address`` (RAY_ADDRESS when None), else a local instance; a session this
    function opened is closed at the end."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_address_answers(address)
    import logging

    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def actor_resources(ray, wanted: int) -> tuple[int, float, float]:
    """How many pipeline actors, and the GPUs and CPUs each takes."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if gpus:
        return (wanted or gpus), 1.0, 1.0
    # CPU actors: one per 2 CPUs, each reserving 1 so that the read tasks always find a CPU too (an actor
    # reserving all of a 2-CPU machine starves them: the job waits forever); the runtime's threads are not capped
    return (wanted or max(1, cpus // 2)), 0.0, 1.0


@dataclass
class _Reader:
    """The read + letterbox stage, as Ray tasks: FacePipeline.prepare without the runtimes."""

    models: object  # FaceModels

    def __call__(self, batch: dict) -> dict:
        from facebatch.engines.pipeline.face_pipeline import prepare_photo

        out = {name: [] for name in ("path", "subject", "size", "mtime_ns", "image", "frame", "scale", "error")}
        for path, subject, size, mtime in zip(
            batch["path"], batch["subject"], batch["size"], batch["mtime_ns"], strict=True
        ):
            prepared = prepare_photo(self.models, Path(str(path)))
            out["path"].append(str(path))
            out["subject"].append(str(subject))
            out["size"].append(int(size))
            out["mtime_ns"].append(int(mtime))
            empty = np.zeros((1, 1, 3), np.uint8)
            out["image"].append(prepared.image if prepared.image is not None else empty)
            height, width = self.models.detector_size
            out["frame"].append(
                prepared.frame if prepared.frame is not None else np.zeros((3, height, width), np.float32)
            )
            out["scale"].append(prepared.scale)
            out["error"].append(prepared.error or "")
        return {
            k: (np.array(v, dtype=object) if k in ("image", "path", "subject", "error") else np.array(v))
            for k, v in out.items()
        }


NO_SUBJECT = "\0"  # Ray's numpy batches carry strings, not None


class _Embedder:
    """The detect + align + embed stage: one FacePipeline per actor, for the actor's life."""

    def __init__(self, detector, embedder, backend, settings, runner_options, best_only: bool) -> None:
        from facebatch.engines.pipeline.face_pipeline import open_pipeline

        self._stack = contextlib.ExitStack()
        # one lane: Ray runs the actors side by side, and calls the pipeline's stages, not its run()
        one_lane = dataclasses.replace(settings, lanes=1)
        self.pipeline = self._stack.enter_context(open_pipeline(detector, embedder, backend, one_lane, runner_options))
        self.size = int(embedder.spec.embedding_size)
        self.best_only = best_only

    def __call__(self, batch: dict):
        from facebatch.engines.gallery.table import shard_table
        from facebatch.engines.pipeline.face_pipeline import PreparedPhoto

        prepared, photos = [], []
        for i in range(len(batch["path"])):
            path = str(batch["path"][i])
            error = str(batch["error"][i]) or None
            prepared.append(
                PreparedPhoto(
                    Path(path),
                    None if error else np.asarray(batch["image"][i]),
                    None if error else np.asarray(batch["frame"][i], dtype=np.float32),
                    float(batch["scale"][i]),
                    error,
                )
            )
            subject = str(batch["subject"][i])
            photos.append(
                Photo(
                    path, None if subject == NO_SUBJECT else subject, int(batch["size"][i]), int(batch["mtime_ns"][i])
                )
            )
        return shard_table(self.pipeline.finish(prepared), photos, self.size, self.best_only)


def run_on_ray(request, gallery: Gallery, todo: list[Photo], states: dict[str, PhotoState]) -> int:  # IndexRequest
    """Index ``todo`` with Ray Data; the staged shards are committed in one manifest write. The
    faces added."""
    import pyarrow.parquet as pq

    from facebatch.engines.pipeline.face_pipeline import FaceModels

    size = request.detector.checked_size(None)
    models = FaceModels(request.detector.spec, size, request.embedder.spec)
    staging = Path(tempfile.mkdtemp(dir=gallery.root, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    try:
        with ray_session(request.ray_address) as ray:
            actors, gpus, cpus = actor_resources(ray, request.ray_actors)
            items = [
                {
                    "path": p.path,
                    "subject": p.subject if p.subject is not None else NO_SUBJECT,
                    "size": p.size,
                    "mtime_ns": p.mtime_ns,
                }
                for p in todo
            ]
            blocks = max(1, -(-len(items) // request.photos_per_shard))
            dataset = ray.data.from_items(items, override_num_blocks=blocks)
            batch = min(request.photos_per_shard, 32)
            dataset = dataset.map_batches(_Reader(models), batch_size=batch, batch_format="numpy")
            dataset = dataset.map_batches(
                _Embedder,
                fn_constructor_args=(
                    request.detector,
                    request.embedder,
                    request.backend,
                    request.settings,
                    request.runner_options,
                    request.faces == "best",
                ),
                batch_size=batch,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_gpus=gpus,
                num_cpus=cpus,
            )
            dataset.write_parquet(str(staging), min_rows_per_file=request.photos_per_shard)
        files = sorted(staging.glob("*.parquet"))
        added = sum(int((pq.read_table(f, columns=["face"]).column("face").to_numpy() >= 0).sum()) for f in files)
        gallery.commit(files, states)
        return added
    finally:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
