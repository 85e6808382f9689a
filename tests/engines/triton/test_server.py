"""A real tritonserver (nvidia-pytriton's build, python backend, on the CPU) serving a
repository written with --runtime python --pipeline: concurrent HTTP and gRPC requests get
what the local pipeline finds, Triton's batcher merges requests, bad photos get an error
without hurting the rest, and stopping leaves nothing running."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.pipeline.compare import cosine_similarity
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.runners.triton_client_runner import TritonClientRunner, parse_triton_url
from facebatch.engines.triton.defaults import FACE_OUTPUTS, IMAGES_INPUT, PIPELINE_MODEL
from facebatch.engines.triton.install import python_env
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.ports import ServerPorts, free_ports
from facebatch.engines.triton.repository import triton_repository_from_artifacts
from facebatch.engines.triton.server import TritonServer

pytest.importorskip("tritonclient", reason="the serve extra (tritonclient) talks to the server")
CLIENTS = 8


@pytest.fixture(scope="module")
def repository(real_detector: Path, batch_embedder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("served") / "repository"
    triton_repository_from_artifacts(
        [real_detector, batch_embedder], out, RepositoryOptions(runtime="python", pipeline=True, instances=2)
    )
    return out


@pytest.fixture(scope="module")
def server(repository: Path, serve_env, install, tmp_path_factory: pytest.TempPathFactory):
    http, grpc = free_ports(2)
    log = tmp_path_factory.mktemp("server_log") / "tritonserver.log"
    server = TritonServer(
        repository, ServerPorts(http, grpc), address="127.0.0.1", env=serve_env, install=install, log_file=log
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def local(real_detector: Path, batch_embedder: Path, photos: list[Path]) -> dict:
    with open_pipeline(read_model_file(real_detector), read_model_file(batch_embedder)) as pipeline:
        return {result.path.name: result for result in pipeline.run(photos)}


def encoded(paths: list[Path]) -> np.ndarray:
    return np.array([[p.read_bytes()] for p in paths], dtype=object)


def assert_same_faces(served: dict[str, np.ndarray], expected, where: str) -> None:
    assert len(served[FACE_OUTPUTS[1]]) == len(expected), where
    if not len(expected):
        return
    np.testing.assert_allclose(served[FACE_OUTPUTS[1]], expected.faces.boxes, atol=0.5, err_msg=where)
    np.testing.assert_allclose(served[FACE_OUTPUTS[2]], expected.faces.scores, atol=1e-4, err_msg=where)
    np.testing.assert_allclose(served[FACE_OUTPUTS[3]], expected.faces.landmarks, atol=0.5, err_msg=where)
    cosines = [cosine_similarity(a, b) for a, b in zip(served[FACE_OUTPUTS[4]], expected.embeddings, strict=False)]
    assert min(cosines) >= 0.9999, f"{where}: cosine {min(cosines):.6f}"


def settled_statistics(counter: TritonClientRunner, before: dict, requests: int, seconds: float = 10.0) -> dict:
    """The server's statistics once it has counted ``requests`` more: Triton records a request after
    its response has gone out, so a client that reads at once can see a count still rising."""
    deadline = time.monotonic() + seconds
    while True:
        after = counter.statistics()
        done = after.get(PIPELINE_MODEL, {}).get("requests", 0) - before.get(PIPELINE_MODEL, {}).get("requests", 0)
        if done >= requests or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def test_concurrent_http_and_grpc_requests_get_what_the_local_pipeline_finds(
    server: TritonServer, local: dict, photos: list[Path]
):
    urls = [f"http://{server.http_url}", f"grpc://{server.grpc_url}"]
    answers: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    failures: list[BaseException] = []
    with TritonClientRunner(urls[0], PIPELINE_MODEL) as counter:
        before = counter.statistics()

        def client(index: int) -> None:
            try:
                with TritonClientRunner(urls[index % 2], PIPELINE_MODEL) as runner:
                    for photo in photos[index::CLIENTS]:
                        answers[(runner.protocol, photo.name)] = runner.infer({IMAGES_INPUT: encoded([photo])})
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = settled_statistics(counter, before, len(photos))
    assert not failures, failures[0]
    assert {protocol for protocol, _ in answers} == {"http", "grpc"} and len(answers) == len(photos)
    for (protocol, name), served in answers.items():
        assert_same_faces(served, local[name], f"{name} over {protocol}")
        assert (served[FACE_OUTPUTS[0]] == 0).all()
    assert sum(len(r) for r in local.values()) > 150  # the photos hold 188 faces: a real comparison
    pipeline = {
        key: after[PIPELINE_MODEL][key] - before.get(PIPELINE_MODEL, {}).get(key, 0) for key in after[PIPELINE_MODEL]
    }
    assert pipeline["requests"] == len(photos)
    assert pipeline["execution_count"] < pipeline["requests"], f"the batcher merged no requests: {pipeline}"


def test_a_request_of_several_photos_says_which_photo_each_face_is_in(
    server: TritonServer, local: dict, photos: list[Path]
):
    chosen = [p for p in photos if p.name in ("two_people.jpg", "no_face.png", "obama_1.jpg")]
    with TritonClientRunner(f"grpc://{server.grpc_url}", PIPELINE_MODEL) as runner:
        served = runner.infer({IMAGES_INPUT: encoded(chosen)})
    for index, photo in enumerate(chosen):
        rows = served[FACE_OUTPUTS[0]] == index
        assert_same_faces({name: array[rows] for name, array in served.items()}, local[photo.name], photo.name)


def test_a_bad_photo_gets_an_error_and_the_server_keeps_serving(server: TritonServer, local: dict, photos: list[Path]):
    with TritonClientRunner(server.http_url, PIPELINE_MODEL) as runner:
        bad = np.array([[photos[0].read_bytes()], [b"not an image"]], dtype=object)
        with pytest.raises(EngineError, match="photo 1 of the request is not a whole image"):
            runner.infer({IMAGES_INPUT: bad})
        assert_same_faces(runner.infer({IMAGES_INPUT: encoded(photos[:1])}), local[photos[0].name], "the next request")
    with pytest.raises(SpecError, match="serves no ready model 'nope'.*face_pipeline"):
        TritonClientRunner(server.http_url, "nope").__enter__()


def plain_http_request(photo: Path, outputs: tuple[str, ...] = FACE_OUTPUTS) -> tuple[bytes, int]:
    """The request docs/triton.md sends with curl (Triton's binary-data extension): a JSON header naming one BYTES
    input of ``binary_data_size`` bytes (the photo's length as 4 bytes little-endian, then the photo file) and the
    outputs wanted, answered as JSON; then those bytes. Returns the body and the header's length."""
    data = photo.read_bytes()
    size = {"binary_data_size": len(data) + 4}
    header = {
        "inputs": [{"name": IMAGES_INPUT, "shape": [1, 1], "datatype": "BYTES", "parameters": size}],
        "outputs": [{"name": name} for name in outputs],
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    return text + struct.pack("<I", len(data)) + data, len(text)


def test_a_plain_http_request_gets_what_tritonclient_and_the_local_pipeline_get(
    server: TritonServer, local: dict, photos: list[Path]
):
    """No tritonclient: urllib posts what the curl of docs/triton.md posts, and reads the JSON answer."""
    photo = next(p for p in photos if p.name == "two_people.jpg")
    body, header_length = plain_http_request(photo)
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{PIPELINE_MODEL}/infer",
        data=body,
        headers={"Inference-Header-Content-Length": str(header_length)},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    assert answer["model_name"] == PIPELINE_MODEL
    with TritonClientRunner(server.http_url, PIPELINE_MODEL) as runner:
        served = runner.infer({IMAGES_INPUT: encoded([photo])})
    plain = {}
    for output in answer["outputs"]:
        expected = served[output["name"]]
        plain[output["name"]] = np.array(output["data"], dtype=expected.dtype).reshape(expected.shape)
        np.testing.assert_array_equal(plain[output["name"]], expected, err_msg=output["name"])  # JSON loses nothing
    assert sorted(plain) == sorted(FACE_OUTPUTS) and len(plain[FACE_OUTPUTS[1]]) == 2  # two people
    assert_same_faces(plain, local[photo.name], "the plain HTTP request")


def test_bench_triton_reports_each_concurrency_with_triton_batching(
    server: TritonServer, photos: list[Path], tmp_path: Path, real_detector: Path, batch_embedder: Path
):
    import json

    from facebatch.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[:4]:
        shutil.copy2(photo, folder / photo.name)  # a link inside a photo folder is not followed
    report = tmp_path / "triton.json"
    markdown = tmp_path / "triton.md"
    code = main(
        [
            "bench",
            "--triton",
            server.http_url,
            "--model",
            PIPELINE_MODEL,
            "--images",
            str(folder),
            "--concurrency",
            "1,4",
            "--warmup",
            "0.5",
            "--seconds",
            "2",
            "--json",
            str(report),
            "--markdown",
            str(markdown),
            "--detector",
            str(real_detector),
            "--embedder",
            str(batch_embedder),
            "--rounds",
            "1",
        ]
    )
    assert code == 0
    data = json.loads(report.read_text())
    assert [r["concurrency"] for r in data["results"]] == [1, 4]
    for result in data["results"]:
        assert result["requests"] > 0 and result["rows_per_second"] > 0
        assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
        assert result["triton_statistics"][PIPELINE_MODEL]["requests"] >= result["requests"]
    assert data["local_pipeline"]["images"] == 4 and data["ratios"]["1"] > 0
    assert "served / local" in markdown.read_text()


def test_bench_triton_times_a_tensor_model_with_batched_requests(
    server: TritonServer, real_detector: Path, photos: list[Path]
):
    from facebatch.engines.bench.measure import Budget
    from facebatch.engines.bench.triton_bench import TritonBenchOptions, bench_triton

    options = TritonBenchOptions(
        url=f"grpc://{server.grpc_url}",
        model=real_detector.stem,
        concurrency=(2,),
        request_batch=4,
        budget=Budget(warmup=0.3, seconds=2.0),
        photos=tuple(photos[:3]),
    )
    report = bench_triton(options)
    (result,) = report.results
    assert report.inputs == ["input.1 float32 [batch, 3, 640, 640]"] and report.max_batch_size == 32
    assert result.rows == 4 * result.requests and result.requests > 0
    counts = result.statistics[real_detector.stem]
    assert (
        counts["inference_count"] >= counts["requests"] * 4 - 8
    )  # rows per request: 4 (a request may straddle the window)
    assert "3 photos cycled" in report.to_markdown() and report.local is None


def test_stopping_leaves_nothing_running(server: TritonServer):
    process = server.process
    assert process is not None
    group = os.getpgid(process.pid)
    server.stop()
    assert process.poll() is not None and server.process is None
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)  # not the server, not one python stub
    assert not server.ready()


def test_a_busy_port_is_refused_before_the_server_starts(repository: Path, install, serve_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        (free,) = free_ports(1)
        with pytest.raises(SpecError, match=f"port {busy} on 127.0.0.1 is in use; pass another grpc_port"):
            TritonServer(
                repository, ServerPorts(free, busy), address="127.0.0.1", env=serve_env, install=install
            ).start()
    with pytest.raises(SpecError, match="also given to another endpoint"):
        TritonServer(repository, ServerPorts(free, free), address="127.0.0.1", env=serve_env, install=install).start()


def test_numpy_2_is_refused_for_the_bundled_stub(repository: Path, install):
    here = python_env()
    if not install.bundled or int(here.numpy.split(".")[0]) < 2:
        pytest.skip("only nvidia-pytriton's stub with a numpy 2 environment is refused")
    (http, grpc) = free_ports(2)
    with pytest.raises(SpecError, match="misreads numpy 2 arrays.*make serve-env"):
        TritonServer(repository, ServerPorts(http, grpc), address="127.0.0.1", env=here, install=install).start()


def test_a_missing_repository_and_bad_urls_are_refused(tmp_path: Path, install, serve_env):
    with pytest.raises(SpecError, match="^repository .* does not exist; write one first"):
        TritonServer(tmp_path / "none", ServerPorts(*free_ports(2)), env=serve_env, install=install).start()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="holds no model"):
        TritonServer(tmp_path / "empty", ServerPorts(*free_ports(2)), env=serve_env, install=install).start()
    assert parse_triton_url("grpc://host:8001") == ("grpc", "host:8001") and parse_triton_url("h:1") == ("http", "h:1")
    with pytest.raises(SpecError, match="scheme must be http:// or grpc://"):
        parse_triton_url("ftp://h:1")
    with pytest.raises(SpecError, match="give host:port"):
        parse_triton_url("localhost")


def test_a_killed_server_leaves_no_shared_memory(repository: Path, serve_env, install, tmp_path: Path):
    """Even when the server has to be killed (its models still loading, say), the python stubs'
    shared-memory regions do not stay behind in /dev/shm."""
    server = TritonServer(
        repository,
        ServerPorts(*free_ports(2)),
        address="127.0.0.1",
        env=serve_env,
        install=install,
        log_file=tmp_path / "log",
    )
    server.start()
    assert server.process is not None
    regions = server._shared_memory_regions(server.process.pid)
    assert len(regions) >= 3 and all(r.exists() for r in regions)  # detector, embedder, 2 pipeline instances
    os.kill(server.process.pid, 9)  # no clean exit: stop() has to tidy up
    server.stop()
    assert not any(r.exists() for r in regions)
