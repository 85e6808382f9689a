"""``facebatch index --ray``: the same job on a Ray cluster with Ray Data.

    photos (a dataset of paths)  →  read + letterbox + detect + align + embed  (an actor pool: one FacePipeline
                                    per actor, run in lanes as a local run; num_gpus=1 each where the cluster
                                    has GPUs, CPU actors otherwise)
                                 →  Parquet shards  (written by the workers into a staging folder)

and the driver commits the staged shards into the gallery and builds the index, exactly as the
local run does. The actors run the pipeline's own ``FacePipeline.run``, so the rows equal the local run's.

The gallery folder and the model files must be paths every node sees (a shared filesystem); the
photos too. Ray is an optional extra, imported here and in what the workers run (ray_stages.py) only.

A local instance that facebatch starts (no address given) listens on and registers 127.0.0.1 only,
with no dashboard: Ray's processes otherwise open unauthenticated gRPC ports on every interface
while the job runs. A cluster named by address is the user's, as it is: it is sent Ray's token where one is
found (Ray's token authentication, which 'ray start' turns on), and one that refuses it is said in one line.
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

from facebatch.core.errors import EngineError, SpecError
from facebatch.core.words import counted
from facebatch.engines.gallery.defaults import RAY_CONNECT_TIMEOUT_S, RAY_LOOPBACK, STAGING_PREFIX
from facebatch.engines.gallery.photos import Photo
from facebatch.engines.gallery.ray_stages import NO_SUBJECT, PipelineStage, start_tally
from facebatch.engines.gallery.rows import PhotoState
from facebatch.engines.gallery.store import Gallery

RAY_BATCH = 64  # photos an actor runs in one call (at most photos_per_shard): its lanes idle at each call's end

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


RAY_AUTH_MODE = "RAY_AUTH_MODE"  # Ray's switch: token, disabled, or unset
TOKEN_PLACES = "RAY_AUTH_TOKEN, or Ray's token file (~/.ray/auth_token, or the file RAY_AUTH_TOKEN_PATH names)"


def ray_token() -> str | None:
    """The token Ray's own loader finds (RAY_AUTH_TOKEN, then RAY_AUTH_TOKEN_PATH's file, then ~/.ray/auth_token)."""
    from ray._raylet import AuthenticationTokenLoader

    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()  # read the places now: the variables may have changed since Ray was imported
    return loader.get_raw_token(ignore_auth_mode=True) if loader.has_token(ignore_auth_mode=True) else None


def check_token(address: str, token: str | None, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Refuse at once a cluster with token authentication that refuses this process's token (or its lack of one):
    ray.init would retry for 20 s and then say only that it failed to connect. Asks the GCS for the cluster's id,
    as ray.init does first; any other failure is left for ray.init to say."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(address) as channel:
        try:
            gcs = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
            gcs.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), metadata=metadata, timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                return
            if token is None:
                raise SpecError(
                    f"the Ray cluster at {address} asks for its token (Ray's token authentication) and none was "
                    f"found here; give the cluster's token in {TOKEN_PLACES}",
                    field="ray",
                ) from None
            raise SpecError(
                f"the Ray cluster at {address} refused the token found here (Ray's token authentication); give the "
                f"cluster's own token in {TOKEN_PLACES}",
                field="ray",
            ) from None


def sent_token() -> str | None:
    """The token ray.init will send: the one found, unless RAY_AUTH_MODE turns token authentication off."""
    import_ray()
    mode = os.environ.get(RAY_AUTH_MODE)
    return ray_token() if mode is None or mode.lower() == "token" else None


def check_cluster(address: str | None) -> None:
    """Refuse, before any work, a cluster address (``address``, else RAY_ADDRESS) where no Ray answers, or one that
    refuses this process's token; a Ray Client address (ray://) is asked only whether it answers."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address or address in ("local", "auto"):
        return
    check_address_answers(address)
    if "://" not in address:
        check_token(address if ":" in address else f"{address}:6379", sent_token())  # Ray's default GCS port


@contextlib.contextmanager
def token_mode() -> Iterator[None]:
    """Ray sends its token only in token mode, which it turns on by itself for a cluster it finds, never for one
    named by address: with a token found and RAY_AUTH_MODE unset, token mode for the block."""
    from ray._raylet import Config

    if os.environ.get(RAY_AUTH_MODE) is not None or sent_token() is None:
        yield
        return
    os.environ[RAY_AUTH_MODE] = "token"
    Config.initialize("")  # Ray's config reads the mode from the environment
    try:
        yield
    finally:
        os.environ.pop(RAY_AUTH_MODE, None)
        Config.initialize("")


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
        check_cluster(address)
        with token_mode():
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


def actor_resources(ray, wanted: int) -> tuple[int, float, float, int]:
    """How many pipeline actors, the GPUs and CPUs each reserves, and the CPUs each runs on (its pipeline's lanes)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    if gpus:
        return (wanted or gpus), 1.0, 1.0, 1
    # CPU actors: one per 2 CPUs, each running its pipeline on its share of the CPUs (a lane per CPU, as a local
    # run) but reserving 1, so that Ray's own tasks (the Parquet writes) always find a CPU too: an actor reserving
    # all of a 2-CPU machine starves them and the job waits forever
    actors = wanted or max(1, cpus // 2)
    return actors, 0.0, 1.0, max(1, cpus // actors)


@dataclass
class RayRun:
    faces: int  # added to the gallery
    cluster: str  # which cluster ran it, in words
    nodes: list[dict]  # [{node, address, photos}]: the photos each node's pipeline actors ran


def run_on_ray(request, gallery: Gallery, todo: list[Photo], states: dict[str, PhotoState]) -> RayRun:  # IndexJob
    """Index ``todo`` with Ray Data; the staged shards are committed in one manifest write."""

    size = request.detector.checked_size(request.detector_size)
    staging = Path(tempfile.mkdtemp(dir=gallery.root, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    try:
        with ray_session(request.ray_address) as (ray, cluster):
            actors, gpus, cpus, lanes = actor_resources(ray, request.ray_actors)
            tally = start_tally(ray)
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
            batch = min(request.photos_per_shard, RAY_BATCH)
            settings = request.settings
            if settings.lanes is None and not gpus:
                settings = dataclasses.replace(settings, lanes=lanes)
            dataset = dataset.map_batches(
                PipelineStage,
                fn_constructor_args=(
                    request.detector,
                    request.embedder,
                    request.backend,
                    settings,
                    request.runner_options,
                    request.faces == "best",
                    size,
                    tally,
                ),
                batch_size=batch,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_gpus=gpus,
                num_cpus=cpus,
            )
            dataset.write_parquet(str(staging), min_rows_per_file=request.photos_per_shard)
            nodes = ray.get(tally.counts.remote())
        return RayRun(gallery.commit(sorted(staging.glob("*.parquet")), states), cluster, nodes)
    finally:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
