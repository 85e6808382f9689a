"""The face pipeline's flags (detect, embed, compare, index, search, bench --pipeline) and the
Options they make: ``pipeline_run(args)`` is what those commands hand the library."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli.values import parse_batch_size, parse_size
from facebatch.engines.pipeline.defaults import DEFAULT_BACKEND, DEFAULT_MAX_FACES, DEFAULT_PRECISION, PRECISIONS
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH


def add_precision_argument(group: argparse._ArgumentGroup, bf16: bool = False) -> None:
    """--precision; ``bf16`` where the command runs its models through the pipeline's runners."""
    group.add_argument(
        "--precision",
        choices=PRECISIONS if bf16 else tuple(p for p in PRECISIONS if p not in ("bf16", "auto")),
        default=DEFAULT_PRECISION if bf16 else "fp32",
        help="int8: run each model's INT8 twin beside it where quantize's accuracy gate passed it on this CPU "
        "class (about 2x the detector's speed), FP32 where none did"
        + (
            "; bf16 (--backend openvino): each model in bfloat16 where 'facebatch prove-bf16' passed it on this CPU "
            "class, refused otherwise; auto: each model in the fastest precision proven on this CPU class (its "
            "INT8 twin, else bf16 on --backend openvino, else fp32; fp32 where nothing is proven), each choice said "
            "in a note; index never picks bf16, and search follows the precisions the gallery recorded "
            f"(default {DEFAULT_PRECISION})"
            if bf16
            else " (default fp32)"
        ),
    )


def add_lanes_argument(group) -> None:  # an argparse group or parser
    group.add_argument(
        "--lanes",
        type=int,
        metavar="N",
        help="pipelines side by side on the CPU backends (ort-cpu, openvino), each with its own runtimes, reading "
        "and running its own photos (default on ort-cpu: one per physical core, up to 8, each runtime on the cores "
        "over the lanes; openvino and the GPU backends run one); with more than one, --workers is not used",
    )


def add_pipeline_arguments(parser: argparse.ArgumentParser, embed: bool) -> None:
    """The face pipeline's models and how it runs (detect, embed, compare, index, search)."""
    from facebatch.engines.pipeline.defaults import DEFAULT_DETECT_BATCH, DEFAULT_EMBED_BATCH, DEFAULT_READ_WORKERS
    from facebatch.engines.pipeline.image_header import ACCEPTED, DEFAULT_MAX_PHOTO_PIXELS
    from facebatch.engines.runners.backends import BACKENDS

    group = parser.add_argument_group("models and runtime")
    group.add_argument(
        "--detector",
        type=Path,
        metavar="ONNX",
        help="an SCRFD detector: ours, or any SCRFD ONNX such as det_10g.onnx (default: the first detector "
        "with real weights in build/onnx)",
    )
    if embed:
        group.add_argument(
            "--embedder",
            type=Path,
            metavar="ONNX|SPEC.yaml",
            help="an embedder: our ArcFace artifact, any embedder ONNX, or a spec .yaml that names its ONNX "
            "under 'model:' (default: the first embedder with real weights in build/onnx)",
        )
        group.add_argument(
            "--embedder-spec",
            type=Path,
            metavar="FILE.yaml",
            help="describe a foreign embedder ONNX given as --embedder (see 'facebatch describe')",
        )
    group.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        choices=[b for b in BACKENDS if b != "torch"],
        metavar="B",
        help=f"ort-cpu, ort-cuda, ort-trt, openvino or trt (default {DEFAULT_BACKEND})",
    )
    group.add_argument(
        "--batch-size",
        type=parse_batch_size,
        default=DEFAULT_DETECT_BATCH,
        metavar="N",
        help=f"photos per detector call, up to the detector's profile max (default {DEFAULT_DETECT_BATCH})",
    )
    if embed:
        group.add_argument(
            "--embed-batch-size",
            type=parse_batch_size,
            default=DEFAULT_EMBED_BATCH,
            metavar="N",
            help=f"faces per embedder call, across photos (default {DEFAULT_EMBED_BATCH})",
        )
    group.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_READ_WORKERS,
        metavar="N",
        help=f"threads that read and letterbox photos ahead of the detector (default {DEFAULT_READ_WORKERS}; 0: none)",
    )
    group.add_argument(
        "--no-cache",
        dest="compile_cache",
        action="store_false",
        help="openvino: compile the models afresh instead of importing them from the cache of compiled models "
        "($FACEBATCH_CACHE_DIR, else ~/.cache/facebatch/openvino)",
    )
    group.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads per runtime (default: the physical cores over the lanes)"
    )
    add_lanes_argument(group)
    add_precision_argument(group, bf16=True)
    group.add_argument(
        "--reduced-decode",
        action="store_true",
        help="decode JPEGs at least twice the detector's input at 1/2, 1/4 or 1/8 of their size (a 12 MP JPEG: "
        "37 ms whole, 13.4 ms at 1/4 here; faces move by up to 2 detector pixels, so not the default)",
    )
    group.add_argument(
        "--size",
        type=parse_size,
        metavar="N|HxW",
        help="detector input size, for a detector that takes several (default 640)",
    )
    group.add_argument(
        "--det-thresh",
        type=float,  # its range is the options' to check (check_thresholds), both ways alike
        default=DET_THRESH,
        metavar="P",
        help=f"face score threshold (default {DET_THRESH:g})",
    )
    group.add_argument(
        "--nms-thresh",
        type=float,  # its range is the options' to check (check_thresholds), both ways alike
        default=NMS_THRESH,
        metavar="IOU",
        help=f"NMS IoU threshold (default {NMS_THRESH:g})",
    )
    group.add_argument(
        "--max-faces",
        type=int,
        default=DEFAULT_MAX_FACES,
        metavar="N",
        help=f"keep the N largest, most central faces per photo, as insightface's max_num (default {DEFAULT_MAX_FACES}: "
        "all)",
    )
    group.add_argument(
        "--max-photo-pixels",
        type=int,
        default=DEFAULT_MAX_PHOTO_PIXELS,
        metavar="N",
        help=f"skip, without decoding it, a photo whose header says more pixels than this, gives no size or is not a "
        f"{ACCEPTED} (default {DEFAULT_MAX_PHOTO_PIXELS}, {DEFAULT_MAX_PHOTO_PIXELS // 1_000_000} MP)",
    )


def model_options(args: argparse.Namespace, precision: str | None = None):  # ModelOptions
    """The models the pipeline flags name (``precision``: --precision's unless given)."""
    from facebatch.workflows.models import ModelOptions

    return ModelOptions(
        detector=args.detector,
        embedder=getattr(args, "embedder", None),
        embedder_spec=getattr(args, "embedder_spec", None),
        size=args.size,
        precision=getattr(args, "precision", DEFAULT_PRECISION) if precision is None else precision,
    )


def pipeline_run(args: argparse.Namespace):  # PipelineRun
    """How the flags say the face pipeline runs: models, backend, the pipeline's options, threads."""
    from facebatch.engines.pipeline.options import PipelineOptions
    from facebatch.workflows.faces import PipelineRun

    settings = PipelineOptions(
        args.det_thresh,
        args.nms_thresh,
        args.max_faces,
        args.batch_size,
        getattr(args, "embed_batch_size", None),
        args.workers,
        args.reduced_decode,
        args.lanes,
        args.max_photo_pixels,
        args.compile_cache,
    )
    return PipelineRun(model_options(args), args.backend, settings, args.threads)
