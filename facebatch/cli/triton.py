"""``facebatch triton``: a Triton model repository from artifacts, loadable as is. The flags become one
``TritonOptions``; the library's ``triton`` (facebatch/workflows/triton.py) reads, proves, refuses and writes;
here the repository is shown."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from facebatch.engines.pipeline.image_header import BATCH_PIXELS_IN_PHOTO_LIMITS, DEFAULT_MAX_PHOTO_PIXELS
from facebatch.engines.triton.defaults import (
    DEFAULT_INSTANCES,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_QUEUE_DELAY_US,
    DEFAULT_QUEUE_TIMEOUT_MS,
    PIPELINE_MODEL,
    RUNTIMES,
)

if TYPE_CHECKING:
    from facebatch.workflows.triton import TritonOptions


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "triton",
        help="write a Triton model repository from artifacts (onnxruntime, TensorRT or python backend; --pipeline adds face_pipeline)",
        description="Write a Triton Inference Server model repository: one model per artifact, <name>/config.pbtxt and "
        "<name>/1/model.onnx (platform onnxruntime_onnx), model.plan (tensorrt_plan, the engine's sidecar checked) or "
        "model.onnx + model.py (--runtime python: onnxruntime inside the python backend). Dims come from the real "
        "graph without the batch axis; max_batch_size is the profile's max; dynamic batching prefers the profile's opt "
        f"and max. --pipeline adds {PIPELINE_MODEL}: encoded photos in, per face its photo index, box, score, 5 landmarks "
        "and embedding out, with facebatch's decode and alignment, calling the detector and embedder through BLS; "
        "--gallery then adds face_search: photos in, each face's matches in that gallery out. "
        "The repository's README.md says how to serve and measure it.",
    )
    parser.add_argument(
        "artifacts",
        nargs="+",
        type=Path,
        metavar="ARTIFACT",
        help="ONNX artifacts with a symbolic batch axis (or, for --runtime tensorrt, .plan engines or the ONNX they were built from)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="the repository folder (new or empty, unless --force)"
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=RUNTIMES[0],
        help="onnxruntime (Triton's onnxruntime backend), tensorrt (plans from 'facebatch build') or python "
        "(onnxruntime inside the python backend, for Triton installs without the onnxruntime backend); default onnxruntime",
    )
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help=f"add {PIPELINE_MODEL} (needs one detector with landmarks and one embedder)",
    )
    parser.add_argument(
        "--gallery",
        type=Path,
        metavar="DIR",
        help="with --pipeline, add face_search: photos in, each face's top-k matches in this gallery out (a gallery "
        "'facebatch index' wrote with the same detector and embedder files; read where it is, and reloaded when index "
        "commits to it)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=DEFAULT_INSTANCES,
        metavar="N",
        help=f"instances per model (default {DEFAULT_INSTANCES})",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        help="where onnxruntime instances run (default gpu; tensorrt is always gpu, python always cpu)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        metavar="N",
        help="max_batch_size (default: each artifact's profile max, 32); an engine refuses more than its profile",
    )
    parser.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=DEFAULT_QUEUE_DELAY_US,
        metavar="N",
        help=f"how long the dynamic batcher may hold a request for company (default {DEFAULT_QUEUE_DELAY_US})",
    )
    parser.add_argument(
        "--max-queue-size",
        type=int,
        default=DEFAULT_MAX_QUEUE_SIZE,
        metavar="N",
        help=f"requests that may wait per model; one more is rejected at once (default {DEFAULT_MAX_QUEUE_SIZE}; 0: unbounded)",
    )
    parser.add_argument(
        "--queue-timeout-ms",
        type=int,
        default=DEFAULT_QUEUE_TIMEOUT_MS,
        metavar="MS",
        help=f"a request that waited this long in a model's queue is rejected (default {DEFAULT_QUEUE_TIMEOUT_MS}; 0: none)",
    )
    parser.add_argument(
        "--max-photo-pixels",
        type=int,
        default=DEFAULT_MAX_PHOTO_PIXELS,
        metavar="N",
        help=f"{PIPELINE_MODEL} refuses a larger photo from its header, before decoding it "
        f"(default {DEFAULT_MAX_PHOTO_PIXELS}, {DEFAULT_MAX_PHOTO_PIXELS // 1_000_000} MP)",
    )
    parser.add_argument(
        "--max-batch-pixels",
        type=int,
        metavar="N",
        help=f"{PIPELINE_MODEL} decodes a merged batch in parts of at most this many pixels, which bounds its memory "
        f"(default {BATCH_PIXELS_IN_PHOTO_LIMITS} x --max-photo-pixels)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace what facebatch wrote in --out before (never other files, nor one changed since it was written)",
    )
    parser.set_defaults(handler=run, json=None, markdown=None, junit=None)


def triton_options(args: argparse.Namespace) -> TritonOptions:
    """The flags as the library's options."""
    from facebatch.workflows.triton import RepositoryOptions, TritonOptions

    serving = RepositoryOptions(
        runtime=args.runtime,
        pipeline=args.pipeline,
        instances=args.instances,
        max_queue_delay_us=args.max_queue_delay_us,
        max_queue_size=args.max_queue_size,
        queue_timeout_ms=args.queue_timeout_ms,
        max_photo_pixels=args.max_photo_pixels,
        max_batch_pixels=args.max_batch_pixels,
        max_batch=args.max_batch,
        device=args.device,
        force=args.force,
        gallery=args.gallery,
    )
    return TritonOptions(args.artifacts, args.out, serving)


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.render import console_for, show_repository
    from facebatch.workflows.triton import triton

    result = triton(triton_options(args))
    show_repository(console_for(args), result.repository)
    return 0
