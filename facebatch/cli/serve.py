"""``facebatch serve``: a real tritonserver on a repository, until Ctrl-C. The flags become one
``ServeOptions``; the library's ``serve`` (facebatch/workflows/serve.py) refuses, starts, watches and stops;
here what it serves, where it really listens and each model it loads again are shown, and a failed server's
last log lines. Stopped by a signal, it exits as every command does: 128 + the signal (Ctrl-C: 130)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from facebatch.engines.triton.defaults import (
    DEFAULT_ADDRESS,
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    READY_TIMEOUT_S,
)

if TYPE_CHECKING:
    from facebatch.engines.triton.supervisor import Recovery
    from facebatch.workflows.serve import ServeOptions, ServeResult


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
        f"the run. It listens on {DEFAULT_ADDRESS} unless --address says otherwise; the addresses shown are the ones "
        "it really listens on. tritonserver's own log is kept only with --log (--verbose shows it here); when the "
        "server fails, its last lines are shown. Ctrl-C exits 130, SIGTERM 143, as every command does.",
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
        "--log",
        type=Path,
        metavar="FILE",
        help="keep tritonserver's log in FILE (default: not kept, its last lines shown if the server fails; "
        "--verbose shows it on the terminal)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=READY_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for every model to load (default {READY_TIMEOUT_S:g})",
    )
    parser.set_defaults(handler=run, json=None, markdown=None, junit=None)


def serve_options(args: argparse.Namespace) -> ServeOptions:
    """The flags as the library's options."""
    from facebatch.workflows.serve import ServeOptions

    return ServeOptions(
        repository=args.repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        address=args.address,
        python_env=args.python_env,
        log=args.log,
        show_log=bool(args.verbose),
        ready_timeout=args.ready_timeout,
    )


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.render import console_for
    from facebatch.core.interrupts import Interrupted
    from facebatch.engines.triton.server_log import ServerFailed
    from facebatch.workflows.serve import serve

    console = console_for(args)

    def ready(result: ServeResult) -> None:
        console.print(f"serving {result.repository} with {result.binary} ({result.source})")
        if result.exposure is not None:
            console.print(f"  {result.exposure}", soft_wrap=True)
        console.print(f"  {result.endpoints()}", soft_wrap=True)  # as bound, read back from the server
        console.print(f"  watching {len(result.models)} models: one that stops serving is loaded again")
        console.print("  Ctrl-C stops it")
        console.file.flush()

    def recovered(recovery: Recovery) -> None:
        console.print(recovery.line(), soft_wrap=True)
        console.file.flush()  # a service manager's log reads it now, not at exit

    try:
        result = serve(serve_options(args), on_ready=ready, on_recovery=recovered)  # until Ctrl-C or SIGTERM
    except ServerFailed as exc:  # its log's last lines (unless shown already), then the one error line
        if exc.log_tail:
            print("tritonserver's last log lines:", *(f"  {line}" for line in exc.log_tail), sep="\n", file=sys.stderr)
        raise
    console.print("tritonserver stopped")
    if result.signal is not None:  # stopped by a signal: the exit status says which, as for every command
        raise Interrupted(signal.Signals[result.signal])
    return 0
