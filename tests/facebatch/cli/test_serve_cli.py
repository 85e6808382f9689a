"""``facebatch serve`` as a user runs it, on a real tritonserver (nvidia-pytriton's, python backend, on the CPU):
quiet by default (tritonserver's CUDA and NVML complaints on a machine without a GPU are not shown), its log kept
with --log and shown with --verbose, a banner that says what the server really listens on (read back from /proc),
the exit status of every other command on a signal (128 + the signal), and a failed server's last log lines."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.core.errors import SpecError
from facebatch.engines.triton.install import find_tritonserver
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.ports import free_ports
from facebatch.engines.triton.repository import triton_repository_from_artifacts
from tests.conftest import PROJECT
from tests.engines.triton.conftest import listening
from tests.engines.triton.test_supervisor import Lines, tritonserver_of

TRITON_LOG_LINE = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d")  # how tritonserver's own log lines begin
GPU_NOISE = ("CUDA", "NVML", "DCGM", "CudaDriverHelper")


@pytest.fixture(scope="module")
def tritonserver() -> None:
    """The tritonserver serve runs (PATH, else nvidia-pytriton's), or a skip saying why."""
    try:
        find_tritonserver()
    except SpecError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def repository(small_detector: Path, tritonserver, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve_cli") / "repository"
    triton_repository_from_artifacts([small_detector], out, RepositoryOptions(runtime="python"))
    return out


def endpoint(banner: str, name: str) -> str:
    """What the banner says an endpoint listens on (``HTTP 0.0.0.0:8000 (here: …)`` → ``0.0.0.0:8000``)."""
    found = re.search(rf"\b{name} (\S+)", banner)
    assert found, f"no {name} in {banner!r}"
    return found.group(1)


@pytest.mark.parametrize(
    ("sig", "flags", "address"),
    [
        (signal.SIGINT, [], "0.0.0.0"),  # quiet; bound elsewhere than loopback: the banner says where
        (signal.SIGTERM, ["--log", "{tmp}/tritonserver.log"], "127.0.0.1"),  # the log kept in the file
        (signal.SIGHUP, ["--verbose"], "127.0.0.1"),  # the log shown
    ],
    ids=["int-quiet-any-address", "term-log-file", "hup-verbose"],
)
@pytest.mark.slow  # facebatch serve in a process of its own
def test_serve_is_quiet_says_where_it_listens_and_exits_as_every_command_does(
    repository: Path, serve_env, tmp_path: Path, sig: int, flags: list[str], address: str
):
    http, grpc, metrics = free_ports(3)
    command = [sys.executable, "-m", "facebatch", "serve", str(repository), "--python-env", str(serve_env.prefix)]
    command += ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    command += ["--address", address, *(flag.format(tmp=tmp_path) for flag in flags)]
    serve = subprocess.Popen(
        command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        output = Lines(serve)
        output.wait_for("Ctrl-C stops it", limit_s=240)
        banner = next(line for line in output.lines if line.strip().startswith("HTTP "))
        bound = listening(tritonserver_of(serve.pid))
        for name, port in (("HTTP", http), ("gRPC", grpc), ("metrics", metrics)):
            (really,) = [a for a, p in bound if p == port]
            assert endpoint(banner, name) == (f"[{really}]:{port}" if ":" in really else f"{really}:{port}"), banner
        if address == "0.0.0.0":
            assert "127.0.0.1" not in endpoint(banner, "HTTP") and f"(here: 127.0.0.1:{http})" in banner
        serve.send_signal(sig)
        assert serve.wait(timeout=90) == 128 + sig, output.lines[-5:]
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    name = signal.Signals(sig).name
    assert output.lines[-2:] == [
        "tritonserver stopped",
        f"facebatch: interrupted ({name}): stopped; nothing half-written was left",
    ]
    triton_lines = [line for line in output.lines if TRITON_LOG_LINE.match(line)]
    noise = [line for line in output.lines if any(word in line for word in GPU_NOISE)]
    if "--verbose" in flags:
        assert any("successfully loaded" in line for line in triton_lines), output.lines
    else:
        assert triton_lines == [] and noise == [], (triton_lines + noise)[:3]
    if "--log" in " ".join(flags):
        assert "successfully loaded" in (tmp_path / "tritonserver.log").read_text()


@pytest.mark.slow  # starts tritonserver
def test_a_server_that_fails_shows_its_last_log_lines_and_one_error_line(
    small_detector: Path, serve_env, tritonserver, tmp_path: Path, capsys
):
    broken = tmp_path / "repository"
    triton_repository_from_artifacts([small_detector], broken, RepositoryOptions(runtime="python"))
    (script,) = broken.glob("*/1/model.py")
    script.write_text(script.read_text() + "\nraise RuntimeError('broken on purpose')\n")
    http, grpc = free_ports(2)
    argv = ["serve", str(broken), "--python-env", str(serve_env.prefix), "--http-port", str(http)]
    assert main([*argv, "--grpc-port", str(grpc), "--metrics-port", "0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("facebatch: error: tritonserver exited with code 1 before it was ready: "), err[-3:]
    tail = err[err.index("tritonserver's last log lines:") + 1 : -1]
    assert tail and all(line.startswith("  ") for line in tail), err
    assert any("broken on purpose" in line for line in tail), tail
    assert not any(word in line for line in tail for word in GPU_NOISE), tail  # the CPU machine's noise left out
