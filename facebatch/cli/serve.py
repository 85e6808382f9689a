"""``facebatch serve``: a real tritonserver on a repository, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from facebatch.engines.triton.settings import (
    DEFAULT_ADDRESS,
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    READY_TIMEOUT_S,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve a model repository with tritonserver (from PATH or nvidia-pytriton) until Ctrl-C",
        description="Start tritonserver on a model repository ('facebatch triton' writes one): the tritonserver on PATH, or "
        "the one inside the nvidia-pytriton wheel (the serve set-up). Waits until every model is loaded, prints the "
        "endpoints, and stops the server and everything it started on Ctrl-C. Python-backend models run in --python-env. "
        "A model that stops serving (its python stub killed or crashed: Triton does not restart one) is loaded again "
        "through Triton's repository API, said in one line. Clients get inference, health, metadata and statistics; "
        "the repository, shared-memory, logging and trace APIs answer only this process, which holds a key made for "
        f"the run. It listens on {DEFAULT_ADDRESS} unless --address says otherwise.",
    )
    parser.add_argument("repository", type=Path, metavar="REPOSITORY")
    parser.add_argument(
        "--http-port", type=int, default=DEFAULT_HTTP_PORT, metavar="N", help=f"HTTP port (default {DEFAULT_HTTP_PORT})"
    )
    parser.add_argument(
        "--grpc-port", type=int, default=DEFAULT_GRPC_PORT, metavar="N", help=f"gRPC port (default {DEFAULT_GRPC_PORT})"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        metavar="N",
        help=f"Prometheus metrics port (default {DEFAULT_METRICS_PORT}; 0: no metrics)",
    )
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        metavar="IP",
        help=f"the address HTTP, gRPC and metrics listen on (default {DEFAULT_ADDRESS}: this machine only; "
        "0.0.0.0 opens inference to every host that reaches it, and serve says so)",
    )
    parser.add_argument(
        "--python-env",
        type=Path,
        metavar="DIR",
        help="the python environment the python-backend models run in (default: this one); "
        "nvidia-pytriton's server needs one with numpy<2: 'make serve-env' makes .venv-serve",
    )
    parser.add_argument(
        "--log", type=Path, metavar="FILE", help="write tritonserver's log here instead of the terminal"
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=READY_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for every model to load (default {READY_TIMEOUT_S:g})",
    )
    parser.set_defaults(handler=run, json=None, markdown=None, junit=None)


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.render import console_for
    from facebatch.engines.triton.server import ServerPorts, TritonServer, exposure, python_env
    from facebatch.engines.triton.supervisor import SUPERVISE_INTERVAL_S, ModelSupervisor

    if args.log is not None:
        from facebatch.cli import arguments
        from facebatch.core.atomic import check_output_file

        check_output_file(args.log, "--log", arguments.input_files(args))  # not into the repository it serves
    ports = ServerPorts(args.http_port, args.grpc_port, args.metrics_port or None)
    server = TritonServer(
        args.repository,
        ports,
        args.address,
        python_env(args.python_env),
        log_file=args.log,
        ready_timeout=args.ready_timeout,
    )
    console = console_for(args)
    stopped = threading.Event()
    with server:  # Ctrl-C while the models load: KeyboardInterrupt, and the server is stopped
        # from here Ctrl-C and a service manager's stop end the same clean way (SIGINT is set explicitly:
        # a shell starts background jobs with it ignored)
        previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            console.print(f"serving {server.repository} with {server.install.binary} ({server.install.source})")
            exposed = exposure(server.address)
            if exposed is not None:
                console.print(f"  {exposed}", soft_wrap=True)
            console.print(
                f"  HTTP {server.http_url}   gRPC {server.grpc_url}"
                + (f"   metrics {server.host}:{ports.metrics}" if ports.metrics else "")
            )
            supervisor = ModelSupervisor(server)
            console.print(f"  watching {len(supervisor.models)} models: one that stops serving is loaded again")
            console.print("  Ctrl-C stops it")
            console.file.flush()
            while not stopped.wait(SUPERVISE_INTERVAL_S):
                for recovery in supervisor.check():  # raises when the server itself has stopped
                    console.print(recovery.line(), soft_wrap=True)
                    console.file.flush()  # a service manager's log reads it now, not at exit
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    console.print("tritonserver stopped")
    return 0
