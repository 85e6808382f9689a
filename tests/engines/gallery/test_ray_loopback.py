"""The local Ray instance that ``index --ray`` starts (no address given) listens on loopback only
while the job runs: Ray's processes otherwise open unauthenticated gRPC ports on every interface.
Read from /proc while the job runs; the summary names the cluster the job used."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from facebatch.engines.gallery.index_job import index_photos

from .conftest import on_loopback, request, tcp_listeners

ray = pytest.importorskip("ray", reason="the ray extra (ray[data]) runs index --ray")


def test_the_local_ray_instance_listens_on_loopback_only(
    people: Path, detector_file, embedder_file, tmp_path: Path, monkeypatch
) -> None:
    assert not ray.is_initialized(), "another test left a Ray session open: this one must start its own"
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    seen: set[tuple[str, str]] = set()
    running = threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            seen.update(tcp_listeners(os.getpid()))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = index_photos(request([people], tmp_path / "gallery", detector_file, embedder_file, ray=True))
    finally:
        running.clear()
        watcher.join()
    print(f"listeners seen while it ran: {sorted(seen)}")
    assert any(name == "gcs_server" for name, _ in seen), "the watch saw no Ray process: it proved nothing"
    exposed = sorted((name, address) for name, address in seen if not on_loopback(address))
    assert not exposed, f"listening beyond loopback: {exposed}"
    print(summary.cluster)
    assert summary.cluster.startswith("a local Ray instance on 127.0.0.1"), summary.cluster
    assert not ray.is_initialized()
