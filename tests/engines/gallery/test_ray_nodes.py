"""``index --ray ADDRESS`` on a real two-node Ray cluster started with Ray's own CLI: a head node in one network
namespace, a worker node in another, 1 CPU each, joined by a veth pair that this test makes (tests/engines/gallery/
netns.py); the driver runs beside the head. Nothing of the cluster is on the machine's own network: Ray binds every
interface of its namespace, and there the only ones are loopback and the veth end.

Why namespaces: Ray's loopback-only switch (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, what the local instance uses)
refuses a second node outright ('ray start --address' aborts: "Multi-node Ray clusters are not supported"), and
without it Ray registers and binds the machine's own address. The cluster is stopped by killing the processes in
its namespaces by id, never with 'ray stop' (it kills every Ray process on the machine, by name, whatever the
namespace). Token authentication is on, as 'ray start' sets it: the driver finds the token in RAY_AUTH_TOKEN."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from facebatch.engines.gallery.index_job import index_photos
from facebatch.engines.gallery.store import Gallery

from . import netns
from .conftest import request

pytest.importorskip("ray", reason="the ray extra (ray[data]) runs index --ray")
pytestmark = pytest.mark.slow  # starts a Ray cluster of two nodes and runs facebatch in processes of its own

SMALL_PHOTOS = ("rob_lowe_1.jpg", "rob_lowe_2.jpg", "t1.jpg", "voc_2008_001009.jpg", "voc_2008_001322.jpg")
GCS_PORT = 6390  # inside the head's namespace: outside Ray's worker port range (10002-19999)
BIN = Path(sys.executable).parent  # the virtualenv's ray and python


@dataclass
class Cluster:
    head: netns.Namespace
    worker: netns.Namespace
    token: str
    home: Path  # HOME of every process: no token file there unless a test writes one

    @property
    def address(self) -> str:
        return f"{self.head.address}:{GCS_PORT}"

    def env(self, **more: str) -> dict[str, str]:
        return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(self.home), "RAY_USAGE_STATS_ENABLED": "0", **more}

    def index_command(self, photos: list[Path], out: Path, models: tuple[Path, Path], summary: Path, actors: int):
        return [str(BIN / "python"), "-m", "facebatch", "index", *map(str, photos), "--out", str(out),
                "--ray", self.address, "--ray-actors", str(actors), "--photos-per-shard", "2",
                "--detector", str(models[0]), "--embedder", str(models[1]), "--json", str(summary)]  # fmt: skip

    def index(self, *arguments, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
        command = self.head.command(self.index_command(*arguments), env or self.env(RAY_AUTH_TOKEN=self.token))
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=Path.cwd())


def ray_start(space: netns.Namespace, env: dict[str, str], *arguments: str) -> None:
    started = subprocess.run(
        space.command(
            [str(BIN / "ray"), "start", f"--node-ip-address={space.address}", "--num-cpus=1", *arguments], env
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, (
        f"ray start in {space.name} failed:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}"
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    why = netns.unavailable()
    if why:
        pytest.skip(f"the two-node Ray test makes its own network namespaces: {why}")
    root = tmp_path_factory.mktemp("ray_nodes")
    (root / "home").mkdir()
    short_temp = Path(tempfile.mkdtemp(prefix="fbray-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, short_temp, ignore_errors=True)
        head, worker = cleanup.enter_context(netns.two_namespaces())
        made = Cluster(head, worker, secrets.token_hex(16), root / "home")
        nodes = made.env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=made.token)  # 'ray start' with token authentication
        temp = f"--temp-dir={short_temp}"  # Ray's socket paths must stay under 108 bytes: not under pytest's tmp
        ray_start(
            head, nodes, "--head", f"--port={GCS_PORT}", "--include-dashboard=false", "--disable-usage-stats", temp
        )
        ray_start(worker, nodes, f"--address={made.address}", temp)
        yield made


@pytest.fixture(scope="module")
def copies(images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four folders, each a copy of five small fixture photos: work for both nodes."""
    root = tmp_path_factory.mktemp("ray_nodes_photos")
    folders = []
    for number in range(4):
        folder = root / f"copy{number}"
        folder.mkdir()
        for name in SMALL_PHOTOS:
            shutil.copy2(images_dir / name, folder / name)
        folders.append(folder)
    return folders


def rows_by_face(out: Path) -> dict[tuple[str, int], dict]:
    """Every row of every shard the gallery names, read whole (a short or damaged shard raises)."""
    gallery = Gallery.open(out)
    rows = {}
    for position, entry in enumerate(gallery.manifest.shards):
        gallery.read_shard(position)  # its size, sha256 and rows as committed
        for row in pq.read_table(out / "shards" / entry.name).to_pylist():
            rows[(row["photo"], row["face"])] = row
    return rows


def assert_same_rows(on_ray: dict, local: dict) -> None:
    assert set(on_ray) == set(local)
    faces = [key for key in local if key[1] >= 0]
    assert faces, "no face in the photos: the comparison proves nothing"
    boxes = max(np.abs(np.array(on_ray[k]["box"]) - np.array(local[k]["box"])).max() for k in faces)
    cosine = min(float(np.dot(on_ray[k]["embedding"], local[k]["embedding"])) for k in faces)
    print(f"ray vs local: {len(faces)} faces, boxes within {boxes:.4f} px, cosine ≥ {cosine:.6f}")
    assert boxes <= 0.5 and cosine >= 0.9999
    assert all(on_ray[k]["subject"] == local[k]["subject"] for k in local)


def assert_off_the_machines_network(cluster: Cluster) -> None:
    """Only loopback and the veth ends exist where the cluster runs; the machine's own namespace has none of its
    sockets (its processes cannot open one there)."""
    assert any(address.endswith(f":{GCS_PORT}") for address in cluster.head.listeners())
    for space in (cluster.head, cluster.worker):
        assert sorted(space.addresses()) == sorted(["127.0.0.1", space.address]), space.addresses()
        hosts = {address.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:") for address in space.listeners()}
        assert hosts <= {"*", "0.0.0.0", "::", "127.0.0.1", space.address}, hosts  # a wildcard here: these two only
    ours = {str(pid) for pid in cluster.head.pids() | cluster.worker.pids()}
    root = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    assert not [line for line in root.splitlines() if any(f"pid={pid}," in line for pid in ours)]


def test_a_missing_or_wrong_token_is_said_in_one_line_before_any_work(
    cluster: Cluster, copies: list[Path], real_detector: Path, batch_embedder: Path, tmp_path: Path
) -> None:
    """Before: ray.init retried for 20 s, then 'Failed to connect to Ray cluster' (the token was never named)."""
    models = (real_detector, batch_embedder)
    lines = {}
    for env, said in (
        (cluster.env(), "asks for its token"),
        (cluster.env(RAY_AUTH_TOKEN="0" * 32), "refused the token"),
    ):
        began = time.monotonic()
        ran = cluster.index([copies[0]], tmp_path / "g", models, tmp_path / "s.json", 2, env=env, timeout=120)
        errors = [line for line in ran.stderr.splitlines() if line.startswith("facebatch: error:")]
        assert ran.returncode == 2, ran.stderr[-3000:]
        assert len(errors) == 1 and errors[0].startswith(
            f"facebatch: error: --ray: the Ray cluster at {cluster.address}"
        )
        assert said in errors[0] and "RAY_AUTH_TOKEN" in errors[0], errors
        assert time.monotonic() - began < 15
        assert not (tmp_path / "g").exists(), "the gallery was made before the refusal"
        lines[said] = errors[0]
    # the library says the same, naming the field (the CLI put its flag before it)
    arguments = [str(BIN / "python"), "-c", LIBRARY_FACE, str(copies[0]), str(tmp_path / "lib"), cluster.address]
    said = subprocess.run(cluster.head.command(arguments, cluster.env()), capture_output=True, text=True, timeout=120)
    code, field, message = said.stdout.strip().splitlines()[-1].split("|", 2)
    assert (code, field) == ("2", "ray") and lines["asks for its token"] == f"facebatch: error: --ray: {message}"


LIBRARY_FACE = """
import sys
from pathlib import Path
from facebatch.core.errors import FacebatchError
from facebatch.workflows.gallery import IndexOptions, index
try:
    index(IndexOptions(photos=[Path(sys.argv[1])], out=Path(sys.argv[2]), ray=True, ray_address=sys.argv[3]))
except FacebatchError as exc:
    print(f"{exc.exit_code}|{exc.field}|{exc}")
"""


def test_two_nodes_share_the_work_and_a_dead_worker_node_loses_nothing_committed(
    cluster: Cluster, copies: list[Path], detector_file, embedder_file, tmp_path: Path
) -> None:
    models = (detector_file.path, embedder_file.path)
    local = tmp_path / "local"  # the uninterrupted run: every photo, locally
    assert index_photos(request(copies, local, detector_file, embedder_file, photos_per_shard=2)).ray_nodes == []
    reference = rows_by_face(local)

    out, first = tmp_path / "ray", tmp_path / "first.json"
    ran = cluster.index(copies[:2], out, models, first, 2)  # the token only in RAY_AUTH_TOKEN, as 'ray start' set it
    assert ran.returncode == 0, ran.stderr[-4000:]
    summary = json.loads(first.read_text())
    print("per node:", summary["ray_nodes"])
    assert {node["address"] for node in summary["ray_nodes"]} == {cluster.head.address, cluster.worker.address}
    assert all(node["photos"] > 0 for node in summary["ray_nodes"]), summary["ray_nodes"]
    assert sum(node["photos"] for node in summary["ray_nodes"]) == summary["photos_run"] == 10
    copied = {str(p) for folder in copies[:2] for p in folder.iterdir()}
    assert_same_rows(rows_by_face(out), {k: v for k, v in reference.items() if k[0] in copied})
    assert_off_the_machines_network(cluster)

    second = tmp_path / "second.json"  # the other 10 photos; the worker node SIGKILLed once a shard is staged
    committed = Gallery.open(out).manifest.shards
    command = cluster.head.command(
        cluster.index_command(copies, out, models, second, 2), cluster.env(RAY_AUTH_TOKEN=cluster.token)
    )
    running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed_while_running = kill_worker_node_once_staged(cluster, out, running)
    output = running.communicate(timeout=300)[0]
    print(f"index after the worker node was killed: exit {running.returncode}\n{output[-1500:]}")
    assert killed_while_running, "the run ended before the worker node was killed: the test proved nothing"
    rows_by_face(out)  # every shard the manifest names reads whole
    assert {entry.name for entry in committed} <= {entry.name for entry in Gallery.open(out).manifest.shards}
    assert not list(out.glob(".ray-staging-*")), "a staging folder was left behind"

    again = cluster.index(copies, out, models, tmp_path / "again.json", 1)  # on the head alone now
    assert again.returncode == 0, again.stderr[-4000:]
    assert_same_rows(rows_by_face(out), reference)
    assert Gallery.open(out).manifest.photos == 20


def kill_worker_node_once_staged(cluster: Cluster, out: Path, running: subprocess.Popen, limit: float = 240) -> bool:
    """SIGKILL every process of the worker node once the workers staged a shard; whether the run was still going."""
    deadline = time.monotonic() + limit
    while running.poll() is None and time.monotonic() < deadline:
        if list(out.glob(".ray-staging-*/*.parquet")):
            cluster.worker.kill_all()
            return running.poll() is None
        time.sleep(0.05)
    return False
