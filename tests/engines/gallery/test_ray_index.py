"""index on Ray Data (a local ``ray.init`` on this machine's 2 cores, one per module) equals the
local run: the same faces, boxes within 0.5 px, cosine ≥ 0.9999; and resumes like it. A Ray
address that does not answer is refused in one line, well within RAY_CONNECT_TIMEOUT_S."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from facebatch.core.errors import EngineError
from facebatch.engines.gallery.index_job import index_photos
from facebatch.engines.gallery.ray_job import check_address_answers
from facebatch.engines.gallery.ray_job import local_ray as loopback_ray
from facebatch.engines.gallery.search import GallerySearch
from facebatch.engines.gallery.store import Gallery
from facebatch.engines.pipeline.options import PipelineSettings
from tests.conftest import slow_fixture

from .conftest import request

ray = pytest.importorskip("ray", reason="the ray extra (ray[data]) runs index --ray")


@pytest.fixture(scope="module")
@slow_fixture("starts a Ray cluster")
def local_ray():
    with loopback_ray(num_cpus=2, log_to_driver=False, logging_level="ERROR"):  # as facebatch starts its own
        yield ray


def rows_by_face(out: Path) -> dict[tuple[str, int], dict]:
    gallery = Gallery.open(out)
    rows = {}
    for entry in gallery.manifest.shards:
        for row in pq.read_table(out / "shards" / entry.name).to_pylist():
            rows[(row["photo"], row["face"])] = row
    return rows


def test_ray_run_equals_the_local_run(
    local_ray, fixture_gallery: Path, images_dir: Path, detector_file, embedder_file, tmp_path: Path
) -> None:
    out = tmp_path / "ray_gallery"
    summary = index_photos(request([images_dir], out, detector_file, embedder_file, ray=True, photos_per_shard=4))
    assert (summary.where, summary.photos_run, summary.gallery_faces) == ("ray", 17, 188)
    on_ray, local = rows_by_face(out), rows_by_face(fixture_gallery)
    assert set(on_ray) == set(local)
    faces = [k for k in local if k[1] >= 0]
    boxes = max(np.abs(np.array(on_ray[k]["box"]) - np.array(local[k]["box"])).max() for k in faces)
    cosine = min(float(np.dot(on_ray[k]["embedding"], local[k]["embedding"])) for k in faces)
    print(f"ray vs local: {len(faces)} faces, boxes within {boxes:.4f} px, cosine ≥ {cosine:.6f}")
    assert boxes <= 0.5 and cosine >= 0.9999
    assert all(on_ray[k]["subject"] == local[k]["subject"] for k in local)
    assert GallerySearch(out).index.ntotal == 188
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (out / "shards").iterdir()}
    assert modes == {0o600}, modes  # the workers' files, moved in: private like the local run's

    again = index_photos(request([images_dir], out, detector_file, embedder_file, ray=True))
    assert (again.photos_run, again.photos_unchanged) == (0, 17)


def test_an_address_that_does_not_answer_is_refused_in_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once it is closed
    with pytest.raises(EngineError, match=f"no Ray cluster answers at 127.0.0.1:{port} .*'ray start' as the head node"):
        check_address_answers(f"127.0.0.1:{port}")
    with socket.socket() as silent:  # listens and accepts (the kernel does), never says a word: not gRPC
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        began = time.monotonic()
        with pytest.raises(
            EngineError, match=f"no Ray cluster answers at ray://127.0.0.1:{silent.getsockname()[1]} \\(no answer\\)"
        ):
            check_address_answers(f"ray://127.0.0.1:{silent.getsockname()[1]}", timeout=1.0)
        assert time.monotonic() - began < 5
    with socket.socket() as web:  # answers, but HTTP/1
        web.bind(("127.0.0.1", 0))
        web.listen()
        port = web.getsockname()[1]
        import threading

        def reply() -> None:
            connection, _ = web.accept()
            with connection:
                connection.recv(64)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=reply, daemon=True).start()
        with pytest.raises(EngineError, match="answers, but not as a Ray cluster"):
            check_address_answers(f"127.0.0.1:{port}", timeout=5.0)


def test_the_ray_address_check_accepts_a_real_ray_head(local_ray) -> None:
    address = local_ray.get_runtime_context().gcs_address
    check_address_answers(address, timeout=5.0)  # Ray's GCS speaks gRPC


def test_the_suites_own_ray_listens_on_loopback_only(local_ray) -> None:
    import os

    from .conftest import on_loopback, tcp_listeners

    listeners = tcp_listeners(os.getpid())
    assert any(name == "gcs_server" for name, _ in listeners), listeners
    assert all(on_loopback(address) for _, address in listeners), sorted(listeners)
    assert local_ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def test_ray_workers_refuse_photos_above_the_limit_as_a_local_run_does(
    local_ray, images_dir: Path, detector_file, embedder_file, tmp_path: Path
) -> None:
    """The pixel limit travels to Ray's read tasks (before: they read with the library default whatever the
    run asked for): at 1 MP biden_1 (2.1 MP) and selfie (2.4 MP) are refused by name on both paths."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("biden_1.jpg", "selfie.jpg", "newton.png"):
        (folder / name).write_bytes((images_dir / name).read_bytes())
    settings = PipelineSettings(max_photo_pixels=1_000_000)
    failed = {}
    for where in ("local", "ray"):
        out = tmp_path / where
        index_photos(request([folder], out, detector_file, embedder_file, ray=where == "ray", settings=settings))
        failed[where] = {Path(f["photo"]).name: f["error"] for f in Gallery.open(out).manifest.failed}
    assert sorted(failed["ray"]) == sorted(failed["local"]) == ["biden_1.jpg", "selfie.jpg"]
    assert all("above the limit of 1 MP" in error for error in failed["ray"].values()), failed["ray"]
