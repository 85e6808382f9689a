"""A python model whose stub is SIGKILLed, on a real tritonserver (nvidia-pytriton's 2.51, which no
longer restarts a dead stub and still calls the model ready): ``facebatch serve`` finds it, says
so in one line and loads the model again, and requests after that are answered right. The time
from the kill to the first right answer is measured (docs/triton.md quotes it). A model whose
files were broken meanwhile is tried again later, and serves once they are mended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.engines.pipeline.compare import cosine_similarity
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.triton.defaults import FACE_OUTPUTS, IMAGES_INPUT, PIPELINE_MODEL
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.ports import ServerPorts, free_ports
from facebatch.engines.triton.repository import triton_repository_from_artifacts
from facebatch.engines.triton.server import TritonServer
from facebatch.engines.triton.stubs import python_stubs, stub_from_arguments
from facebatch.engines.triton.supervisor import ModelSupervisor
from tests.engines.triton.conftest import kill_stub, listening

grpcclient = pytest.importorskip("tritonclient.grpc", reason="the serve extra (tritonclient) talks to the server")
RECOVERY_LIMIT_S = 60.0  # measured here: ~1.5 s to load a python model again; a loaded 2-core runner is slower


def test_a_stub_command_line_names_its_model_instance_and_region() -> None:
    # as tritonserver 2.51 starts one (read off a running server)
    arguments = [
        "/tmp/backends/python/triton_python_backend_stub",
        "/srv/repo/scrfd_2.5g_640_batch/1/model.py",
        "triton_python_backend_shm_region_d28ee96b-08d5-4fbf-b608-d109394b54fc",
        "1048576",
        "1048576",
        "26097",
        "/tmp/backends/python",
        "336",
        "scrfd_2.5g_640_batch_0_0",
        "DEFAULT",
    ]
    stub = stub_from_arguments(7, arguments)
    assert stub is not None
    assert (stub.pid, stub.model, stub.instance) == (7, "scrfd_2.5g_640_batch", "scrfd_2.5g_640_batch_0_0")
    assert stub.region == Path("/dev/shm/triton_python_backend_shm_region_d28ee96b-08d5-4fbf-b608-d109394b54fc")
    assert stub_from_arguments(8, ["/usr/bin/python3", "model.py"]) is None


@pytest.fixture(scope="module")
def repository(real_detector: Path, batch_embedder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("supervised") / "repository"
    triton_repository_from_artifacts(
        [real_detector, batch_embedder], out, RepositoryOptions(runtime="python", pipeline=True, instances=1)
    )
    return out


@pytest.fixture(scope="module")
def photo(photos: list[Path]) -> Path:
    return next(p for p in photos if p.name == "obama_1.jpg")


@pytest.fixture(scope="module")
def expected(real_detector: Path, batch_embedder: Path, photo: Path):
    with open_pipeline(read_model_file(real_detector), read_model_file(batch_embedder)) as pipeline:
        (result,) = pipeline.run([photo])
    assert len(result.faces.scores) == 1
    return result


def answered_right(client, photo: Path, expected) -> bool:
    data = grpcclient.InferInput(IMAGES_INPUT, [1, 1], "BYTES")
    data.set_data_from_numpy(np.array([[photo.read_bytes()]], dtype=object))
    try:
        result = client.infer(PIPELINE_MODEL, [data], client_timeout=30)
    except Exception:  # noqa: BLE001 - any failure is "not answered right"; the caller counts them
        return False
    embeddings = result.as_numpy(FACE_OUTPUTS[4])
    if len(embeddings) != 1:
        return False
    return cosine_similarity(embeddings[0], expected.embeddings[0]) >= 0.9999


def until_answered_right(client, photo: Path, expected, limit_s: float) -> tuple[float, int]:
    """Seconds until the first right answer, and how many requests failed before it."""
    start = time.monotonic()
    failed = 0
    while time.monotonic() - start < limit_s:
        if answered_right(client, photo, expected):
            return time.monotonic() - start, failed
        failed += 1
        time.sleep(0.1)
    pytest.fail(f"no right answer {limit_s:.0f} s after the kill ({failed} requests failed)")


def tritonserver_of(parent: int, limit_s: float = 30.0) -> int:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[-1].split()
                if int(fields[1]) == parent and (proc / "comm").read_text().strip() == "tritonserver":
                    return int(proc.name)
            except (OSError, ValueError, IndexError):
                continue
        time.sleep(0.2)
    pytest.fail(f"facebatch serve (pid {parent}) started no tritonserver")


def read_arguments(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


class Lines:
    """A process's output, read as it comes, each line found at most once."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._seen = 0
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, limit_s: float) -> str:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for index in range(self._seen, len(self.lines)):
                if text in self.lines[index]:
                    self._seen = index + 1
                    return self.lines[index]
            time.sleep(0.1)
        pytest.fail(f"no line with {text!r} in {limit_s:.0f} s; the output was:\n" + "\n".join(self.lines))


def test_serve_loads_a_killed_model_again_and_it_answers_right(
    repository: Path, serve_env, install, photo: Path, expected, tmp_path: Path
) -> None:
    http, grpc = free_ports(2)
    command = [sys.executable, "-m", "facebatch", "serve", str(repository), "--python-env", str(serve_env.prefix)]
    command += ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", "0"]  # the default address
    command += ["--log", str(tmp_path / "tritonserver.log")]
    serve = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    try:
        output = Lines(serve)
        output.wait_for("Ctrl-C stops it", limit_s=240)
        assert "watching 3 models" in "\n".join(output.lines)
        server = tritonserver_of(serve.pid)
        assert {address for address, _ in listening(server)} == {"127.0.0.1"}
        assert not any("listening on" in line for line in output.lines)  # nothing exposed, nothing to say
        # the key to the restricted APIs, as a local user can read it: serve reloads models with it below
        (restricted,) = [a for a in read_arguments(server) if a.startswith("--http-restricted-api=")]
        key = restricted.rsplit("=", 1)[1]
        without_key = urllib.request.Request(f"http://127.0.0.1:{http}/v2/repository/index", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(without_key, timeout=10)
        assert refused.value.code == 403  # serve's server is restricted: its reloads below carry the key
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
        assert answered_right(client, photo, expected)

        measured = {}
        for model in ("scrfd_2.5g_640_batch", PIPELINE_MODEL):  # a model the pipeline calls, then the pipeline
            (victim,) = [stub for stub in python_stubs(server) if stub.model == model]
            os.kill(victim.pid, signal.SIGKILL)
            try:
                measured[model] = until_answered_right(client, photo, expected, RECOVERY_LIMIT_S)
            except pytest.fail.Exception as exc:  # what serve said and the server's log: why it did not come back
                log = (tmp_path / "tritonserver.log").read_text(errors="replace").splitlines()
                said = "\n".join(output.lines)
                pytest.fail(
                    f"{exc}\nafter killing {victim}; serve said:\n{said}\nthe log's end:\n" + "\n".join(log[-60:])
                )
            line = output.wait_for(f"{model}: its python stub {victim.instance} (pid {victim.pid}) is gone", 10)
            assert line.endswith("serving again"), line
            (new,) = [stub for stub in python_stubs(server) if stub.model == model]
            assert new.pid != victim.pid
            assert victim.region is not None and not victim.region.exists(), "the dead stub's shared memory stays"
            assert all(answered_right(client, photo, expected) for _ in range(5))
        for model, (seconds, failed) in measured.items():
            print(f"{model}: right answers again {seconds:.2f} s after SIGKILL of its stub ({failed} requests failed)")

        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=60) == 130  # as every command interrupted by Ctrl-C
        output.wait_for("tritonserver stopped", 5)
        assert not python_stubs(server), "stubs left running"
        assert key not in "\n".join(output.lines) and key not in (tmp_path / "tritonserver.log").read_text()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


def test_a_model_that_cannot_load_is_tried_again_later_and_serves_once_mended(
    real_detector: Path, batch_embedder: Path, serve_env, install, photo: Path, expected, tmp_path: Path
) -> None:
    repository = tmp_path / "repository"
    triton_repository_from_artifacts(
        [real_detector, batch_embedder], repository, RepositoryOptions(runtime="python", pipeline=True, instances=1)
    )
    ports = ServerPorts(*free_ports(2))
    with TritonServer(
        repository, ports, address="127.0.0.1", env=serve_env, install=install, log_file=tmp_path / "log"
    ) as server:
        now = [0.0]  # the supervisor's clock, moved by hand: its retry falls due when the test says, not after a sleep
        supervisor = ModelSupervisor(server, clock=lambda: now[0])
        assert supervisor.models == sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))
        assert len(supervisor.models) == 3
        assert supervisor.check() == []  # all serving: nothing to do

        script = repository / PIPELINE_MODEL / "1" / "model.py"
        good = script.read_text()
        script.write_text(good + "\nraise RuntimeError('broken on purpose')\n")
        (victim,) = supervisor.stubs(PIPELINE_MODEL)
        kill_stub(server.process.pid, victim.pid)
        (failed,) = supervisor.check()
        assert not failed.ok and failed.retry_in_s == 2.0, failed
        assert failed.line().startswith(
            f"{PIPELINE_MODEL}: its python stub {victim.instance} (pid {victim.pid}) is gone;"
        )
        assert "loading it again failed (" in failed.line() and "trying again in 2 s" in failed.line()
        print(failed.line())
        assert "\n" not in failed.line()
        assert supervisor.check() == []  # not due yet
        now[0] += 1.9
        assert supervisor.check() == []  # still not due

        script.write_text(good)
        now[0] += 0.1
        (mended,) = supervisor.check()
        assert mended.ok and mended.cause == "Triton reports it not ready", mended
        client = grpcclient.InferenceServerClient(server.grpc_url)
        assert answered_right(client, photo, expected)
        assert supervisor.check() == []
