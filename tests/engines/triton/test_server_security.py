"""Hostile clients of a running tritonserver (issue 34, item 1), on the real server (nvidia-pytriton's,
python backend, CPU) started the way ``facebatch serve`` starts it, with the default address.

A client that reaches the HTTP or gRPC port tries what Triton's admin APIs allow: load a new model
whose ``model.py`` would write a marker file (code running inside the server), unload a model,
override a served model's config, read the repository index, map shared memory, change the logging
and trace settings. Each is refused (HTTP 403, gRPC UNAVAILABLE: Triton's answer for a restricted
protocol) and nothing happens: no marker, the model still serves with its own config. Health,
metadata, statistics and inference stay open. Only the ``TritonServer`` object holds the key that
opens the restricted APIs, and its supervisor still reloads a killed stub with it. Every endpoint of
a server started with the default address listens on 127.0.0.1 only."""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.runners.triton_client_runner import TritonClientRunner
from facebatch.engines.triton.defaults import DEFAULT_ADDRESS
from facebatch.engines.triton.install import TritonInstall
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.ports import ServerPorts, exposure, free_ports
from facebatch.engines.triton.repository import triton_repository_from_artifacts
from facebatch.engines.triton.server import TritonServer
from facebatch.engines.triton.stubs import python_stubs
from facebatch.engines.triton.supervisor import ModelSupervisor
from tests.engines.triton.conftest import kill_stub, listening

grpcclient = pytest.importorskip("tritonclient.grpc", reason="the serve extra (tritonclient) talks to the server")

PROTOCOLS = ("http", "grpc")
HTTP_REFUSED = 403
GRPC_REFUSED = "StatusCode.UNAVAILABLE"  # what tritonserver 2.51 answers for a restricted protocol
EVIL = "evil"
EVIL_CONFIG = {
    "name": EVIL,
    "backend": "python",
    "max_batch_size": 0,
    "input": [{"name": "IN", "data_type": "TYPE_FP32", "dims": [1]}],
    "output": [{"name": "OUT", "data_type": "TYPE_FP32", "dims": [1]}],
}


def evil_model(marker: Path) -> bytes:
    """A model.py that proves it ran inside the server by writing ``marker`` when imported."""
    return (
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('code ran inside tritonserver')\n\n"
        "class TritonPythonModel:\n    def execute(self, requests):\n        return []\n"
    ).encode()


@pytest.fixture(scope="module")
def repository(batch_embedder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("guarded") / "repository"
    triton_repository_from_artifacts([batch_embedder], out, RepositoryOptions(runtime="python", instances=1))
    return out


@pytest.fixture(scope="module")
def model(batch_embedder: Path) -> str:
    return batch_embedder.stem


@pytest.fixture(scope="module")
def server(repository: Path, serve_env, install, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    log = tmp_path_factory.mktemp("guarded_log") / "tritonserver.log"
    # no address: the default is what is under test
    with TritonServer(repository, ServerPorts(*free_ports(3)), env=serve_env, install=install, log_file=log) as running:
        yield running


@pytest.fixture(autouse=True)
def still_serving(server: TritonServer, model: str) -> Iterator[None]:
    """An attack that got through (the code before issue 34) must not spoil the next test: put the
    model back the way the server's owner would."""
    yield
    if server.process is not None and server.model_ready(model) is not True:
        server.reload_model(model)


def http(server: TritonServer, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    """(status, body text) of one HTTP request, errors included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server.http_url}{path}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def grpc_status(call: Callable[[], object]) -> tuple[str, str]:
    """(gRPC status, message) of one call: "OK" when it went through."""
    try:
        call()
    except grpcclient.InferenceServerException as exc:
        return str(exc.status()), exc.message() or ""
    return "OK", ""


def the_key(server: TritonServer) -> str:
    (value,) = server.key_headers("http").values()
    return value


# -- each attack, over each protocol ----------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_cannot_load_code_into_the_server(server: TritonServer, protocol: str, tmp_path: Path):
    marker = tmp_path / "marker"
    code = evil_model(marker)
    if protocol == "http":
        body = {"parameters": {"config": json.dumps(EVIL_CONFIG), "file:1/model.py": base64.b64encode(code).decode()}}
        status, text = http(server, "POST", f"/v2/repository/models/{EVIL}/load", body)
        assert status == HTTP_REFUSED, (status, text)
    else:
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            status, text = grpc_status(
                lambda: client.load_model(EVIL, config=json.dumps(EVIL_CONFIG), files={"file:1/model.py": code})
            )
        assert status == GRPC_REFUSED, (status, text)
    assert "restricted" in text and the_key(server) not in text, text
    time.sleep(0.5)  # a stub that was started would have imported model.py by now
    assert not marker.exists(), marker.read_text()
    assert server.model_ready(EVIL) is False


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_cannot_unload_a_model(server: TritonServer, model: str, protocol: str):
    if protocol == "http":
        status, text = http(server, "POST", f"/v2/repository/models/{model}/unload", {})
        assert status == HTTP_REFUSED, (status, text)
    else:
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            status, text = grpc_status(lambda: client.unload_model(model))
        assert status == GRPC_REFUSED, (status, text)
    time.sleep(1.0)  # an unload is carried out after the answer
    assert server.model_ready(model) is True


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_cannot_override_a_models_config(server: TritonServer, model: str, protocol: str):
    status, text = http(server, "GET", f"/v2/models/{model}/config")  # model-config is read-only: open
    assert status == 200, text
    config = json.loads(text)
    own_queue = config["dynamic_batching"]["default_queue_policy"]["max_queue_size"]
    unbounded = json.loads(text)
    unbounded["dynamic_batching"]["default_queue_policy"]["max_queue_size"] = 0  # no bound: requests pile up
    if protocol == "http":
        status, text = http(
            server, "POST", f"/v2/repository/models/{model}/load", {"parameters": {"config": json.dumps(unbounded)}}
        )
        assert status == HTTP_REFUSED, (status, text)
    else:
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            status, text = grpc_status(lambda: client.load_model(model, config=json.dumps(unbounded)))
        assert status == GRPC_REFUSED, (status, text)
    served = json.loads(http(server, "GET", f"/v2/models/{model}/config")[1])
    assert served["dynamic_batching"]["default_queue_policy"]["max_queue_size"] == own_queue


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_cannot_read_the_repository_index(server: TritonServer, protocol: str):
    if protocol == "http":
        status, text = http(server, "POST", "/v2/repository/index", {})
        assert status == HTTP_REFUSED, (status, text)
    else:
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            status, text = grpc_status(client.get_model_repository_index)
        assert status == GRPC_REFUSED, (status, text)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_cannot_map_shared_memory(server: TritonServer, protocol: str):
    region = shared_memory.SharedMemory(create=True, size=4096)  # a region this client made: mapping it works today
    try:
        if protocol == "http":
            status, text = http(
                server,
                "POST",
                "/v2/systemsharedmemory/region/attack/register",
                {"key": f"/{region.name}", "offset": 0, "byte_size": 4096},
            )
            assert status == HTTP_REFUSED, (status, text)
            status, text = http(server, "GET", "/v2/systemsharedmemory/status")
            assert status == HTTP_REFUSED, (status, text)
        else:
            with grpcclient.InferenceServerClient(server.grpc_url) as client:
                status, text = grpc_status(
                    lambda: client.register_system_shared_memory("attack", f"/{region.name}", 4096)
                )
                assert status == GRPC_REFUSED, (status, text)
                status, text = grpc_status(client.get_system_shared_memory_status)
                assert status == GRPC_REFUSED, (status, text)
    finally:
        http(server, "POST", "/v2/systemsharedmemory/region/attack/unregister", {}, server.key_headers("http"))
        region.close()
        region.unlink()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_cannot_change_logging_or_tracing(server: TritonServer, protocol: str):
    key = server.key_headers("http")
    verbose_before = json.loads(http(server, "GET", "/v2/logging", headers=key)[1])["log_verbose_level"]
    louder = {"log_verbose_level": verbose_before + 2}
    tracing = {"trace_level": ["TIMESTAMPS"], "trace_rate": "1"}
    if protocol == "http":
        for method, path, body in (
            ("POST", "/v2/logging", louder),
            ("GET", "/v2/logging", None),
            ("POST", "/v2/trace/setting", tracing),
            ("GET", "/v2/trace/setting", None),
        ):
            status, text = http(server, method, path, body)
            assert status == HTTP_REFUSED, (method, path, status, text)
    else:
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            for call in (
                lambda: client.update_log_settings(louder),
                client.get_log_settings,
                lambda: client.update_trace_settings(settings=tracing),
                client.get_trace_settings,
            ):
                status, text = grpc_status(call)
                assert status == GRPC_REFUSED, (status, text)
    status, text = http(server, "GET", "/v2/logging", headers=key)
    assert json.loads(text)["log_verbose_level"] == verbose_before
    http(server, "POST", "/v2/logging", {"log_verbose_level": verbose_before}, key)  # the test's own undo


# -- what stays open, and who holds the key ----------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_health_metadata_statistics_and_inference_stay_open(server: TritonServer, model: str, protocol: str):
    url = f"{protocol}://{server.http_url if protocol == 'http' else server.grpc_url}"
    with TritonClientRunner(url, model) as runner:  # health, model ready, metadata, config
        (name,) = runner.input_names
        (_, *dims) = runner.inputs[0].shape
        answer = runner.infer({name: np.zeros((2, *dims), np.float32)})
        assert [array.shape[0] for array in answer.values()] == [2]
        assert runner.statistics()[model]["requests"] >= 1


def test_the_key_opens_the_restricted_apis_and_nothing_else_does(server: TritonServer, model: str):
    (header,) = server.key_headers("http")
    status, _ = http(server, "POST", "/v2/repository/index", {}, {header: "guessed"})
    assert status == HTTP_REFUSED
    status, text = http(server, "POST", "/v2/repository/index", {}, server.key_headers("http"))
    assert status == 200 and model in text, text
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        assert grpc_status(lambda: client.get_model_repository_index(headers={header: the_key(server)}))[0] == (
            GRPC_REFUSED
        )  # gRPC wants its own header name
        index = client.get_model_repository_index(headers=server.key_headers("grpc"), as_json=True)
    assert [entry["name"] for entry in index["models"]] == [model]
    assert server.model_states() == {model: "READY"}


def test_the_key_is_new_for_each_server_and_in_no_answer_or_log(server: TritonServer, repository: Path, serve_env):
    other = TritonServer(repository, server.ports, env=serve_env, install=server.install)
    assert other.key_headers("http") != server.key_headers("http")
    key = the_key(server)
    assert len(key) >= 32
    for path in ("/v2", f"/v2/models/{EVIL}/config", "/v2/repository/index"):
        assert key not in http(server, "GET", path)[1]
    assert server.log_file is not None and key not in Path(server.log_file).read_text(errors="replace")


def test_the_supervisor_holding_the_key_reloads_a_killed_stub(server: TritonServer, model: str):
    supervisor = ModelSupervisor(server)  # reads the repository index: with the key
    assert supervisor.models == [model]
    (victim,) = supervisor.stubs(model)
    assert server.process is not None
    kill_stub(server.process.pid, victim.pid)
    (recovery,) = supervisor.check()
    assert recovery.ok, recovery.line()
    assert server.process is not None
    (new,) = [stub for stub in python_stubs(server.process.pid) if stub.model == model]
    assert new.pid != victim.pid and server.model_ready(model) is True


# -- where it listens ---------------------------------------------------------------------------------
def test_a_default_server_listens_on_loopback_only(server: TritonServer):
    assert server.process is not None and DEFAULT_ADDRESS == "127.0.0.1"
    sockets = listening(server.process.pid)
    ports = {server.ports.http, server.ports.grpc, server.ports.metrics}
    assert {port for _, port in sockets} >= ports, sockets
    assert {address for address, _ in sockets} == {"127.0.0.1"}, sockets


def test_serve_says_what_another_address_exposes():
    assert exposure("127.0.0.1") is None and exposure("::1") is None
    line = exposure("0.0.0.0")
    assert line is not None and "\n" not in line
    assert line.startswith("listening on 0.0.0.0: inference")
    assert "every host" in line and "repository, shared-memory, logging and trace APIs" in line


def test_a_tritonserver_that_cannot_restrict_its_admin_apis_is_refused(repository: Path, serve_env):
    # a real program that is no tritonserver of 2.40 or later: its --help names no restricted-API flag
    before_2_40 = TritonInstall(Path(sys.executable), "PATH")
    with pytest.raises(SpecError, match="has no --http-restricted-api or --grpc-restricted-protocol, so every client"):
        TritonServer(repository, ServerPorts(*free_ports(2)), env=serve_env, install=before_2_40).start()
