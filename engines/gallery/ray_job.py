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

A local instance that facebatch starts (no address given) listens on and registers 127.0.0.1 only,
with no dashboard: Ray's processes otherwise open unauthenticated gRPC ports on every interface
while the job runs. A cluster named by address is the user's, as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from facebatch.core.errors import EngineError, SpecError
from facebatch.core.words import counted
from facebatch.engines.gallery.defaults import RAY_CONNECT_TIMEOUT_S, RAY_LOOPBACK, STAGING_PREFIX
from facebatch.engines.gallery.photos import Photo
from facebatch.engines.gallery.rows import PhotoState
from facebatch.engines.gallery.store import Gallery

RAY_EXTRA_HINT = "pip install 'facebatch[ray]' (ray[data])"
# Ray has no public switch for the address its processes bind: its loopback-only mode (the one it uses on macOS and
# Windows) is chosen by this variable, read when ray._private.ray_constants is imported; the GCS, raylet and workers
# a local ray.init starts inherit it from this process's environment.
RAY_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate part of the wheel
    except ImportError:
        raise SpecError(f"ray needs Ray Data: {RAY_EXTRA_HINT}", field="ray") from None
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
        raise SpecError(
            f"ray_address {address} is not an address (HOST:PORT, or ray://HOST:PORT for Ray Client)",
            field="ray_address",
        )
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
            f"no Ray cluster answers at {address} ({reason}); start one there (Ray's 'ray start' as the head node) "
            "or pass another ray_address",
            field="ray_address",
        ) from None
    if len(header) < 9 or header[3] != SETTINGS_FRAME:
        raise EngineError(
            f"{address} answers, but not as a Ray cluster (no gRPC); pass the head node's GCS address (HOST:6379) or "
            "ray://HOST:10001 as ray_address",
            field="ray_address",
        )


@contextlib.contextmanager
def local_ray(**options: Any) -> Iterator[Any]:
    """A local Ray instance on loopback only, for the ``with`` block: every process listens on and registers
    RAY_LOOPBACK, no dashboard; then shut down, and Ray's setting put back (a later connection to a cluster
    must register this machine's real address)."""
    ray = import_ray()
    constants = importlib.import_module("ray._private.ray_constants")
    before = os.environ.get(RAY_LOOPBACK_SWITCH), constants.ENABLE_RAY_CLUSTER
    os.environ[RAY_LOOPBACK_SWITCH] = "0"
    constants.ENABLE_RAY_CLUSTER = False  # Ray read the variable when it was imported, before it was set
    try:
        ray.init(_node_ip_address=RAY_LOOPBACK, include_dashboard=False, **options)
        yield ray
    finally:
        ray.shutdown()
        constants.ENABLE_RAY_CLUSTER = before[1]
        if before[0] is None:
            os.environ.pop(RAY_LOOPBACK_SWITCH, None)
        else:
            os.environ[RAY_LOOPBACK_SWITCH] = before[0]


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[tuple[Any, str]]:
    """Ray as the job needs it, and which cluster that is: the running session if this process has one
    (a test's), else a connection to ``address`` (RAY_ADDRESS when None), else a local instance on
    loopback; a session this function opened is closed at the end."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray, f"this process's Ray session (GCS at {ray.get_runtime_context().gcs_address})"
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address and address != "local":
        check_address_answers(address)
        ray.init(address=address, include_dashboard=False, **quiet)
        try:
            yield ray, f"the Ray cluster at {address}"
        finally:
            ray.shutdown()
        return
    with local_ray(**quiet) as local:
        gcs = local.get_runtime_context().gcs_address
        cpus = int(local.cluster_resources().get("CPU", 0))
        yield local, f"a local Ray instance on {RAY_LOOPBACK} (GCS {gcs}, {counted(cpus, 'CPU')})"


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
    max_photo_pixels: int  # PipelineSettings.max_photo_pixels: the same limit as a local run

    def __call__(self, batch: dict) -> dict:
        from facebatch.engines.pipeline.reader import prepare_photo

        out = {name: [] for name in ("path", "subject", "size", "mtime_ns", "image", "frame", "scale", "error")}
        for path, subject, size, mtime in zip(
            batch["path"], batch["subject"], batch["size"], batch["mtime_ns"], strict=True
        ):
            prepared = prepare_photo(self.models, Path(str(path)), max_pixels=self.max_photo_pixels)
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

    def __init__(self, detector, embedder, backend, settings, runner_options, best_only: bool, detector_size) -> None:
        from facebatch.engines.pipeline.opening import open_pipeline

        self._stack = contextlib.ExitStack()
        # one lane: Ray runs the actors side by side, and calls the pipeline's stages, not its run()
        one_lane = dataclasses.replace(settings, lanes=1)
        self.pipeline = self._stack.enter_context(
            open_pipeline(detector, embedder, backend, one_lane, runner_options, detector_size)
        )
        self.size = int(embedder.spec.embedding_size)
        self.best_only = best_only

    def __call__(self, batch: dict):
        from facebatch.engines.gallery.table import shard_table
        from facebatch.engines.pipeline.reader import PreparedPhoto

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


def run_on_ray(
    request, gallery: Gallery, todo: list[Photo], states: dict[str, PhotoState]
) -> tuple[int, str]:  # IndexJob
    """Index ``todo`` with Ray Data; the staged shards are committed in one manifest write. The
    faces added, and the cluster that ran them."""

    from facebatch.engines.pipeline.options import FaceModels

    size = request.detector.checked_size(request.detector_size)
    models = FaceModels(request.detector.spec, size, request.embedder.spec)
    staging = Path(tempfile.mkdtemp(dir=gallery.root, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    try:
        with ray_session(request.ray_address) as (ray, cluster):
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
            dataset = dataset.map_batches(
                _Reader(models, request.settings.max_photo_pixels), batch_size=batch, batch_format="numpy"
            )
            dataset = dataset.map_batches(
                _Embedder,
                fn_constructor_args=(
                    request.detector,
                    request.embedder,
                    request.backend,
                    request.settings,
                    request.runner_options,
                    request.faces == "best",
                    size,
                ),
                batch_size=batch,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_gpus=gpus,
                num_cpus=cpus,
            )
            dataset.write_parquet(str(staging), min_rows_per_file=request.photos_per_shard)
        return gallery.commit(sorted(staging.glob("*.parquet")), states), cluster
    finally:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
