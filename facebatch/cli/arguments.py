"""Argument parsing shared by the commands: value parsers, and the argument groups several
commands take (input size, frames, reports, reference, foreign embedder, the verifier's
run). Defaults are imported from the modules that own them, never repeated here; only
light modules are imported at parser-building time (no torch, onnx or runtimes)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from facebatch.configs.arcface import EMBEDDING_SIZE
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.exporter.settings import OPSET_RANGE, check_opset
from facebatch.verify.independence import DEFAULT_BATCH_SIZES

STDOUT = Path("-")  # a report target that means standard output


def parse_size(text: str) -> tuple[int, int]:
    """'320' → (320, 320); '480x640' → (480, 640) as height x width."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or HxW (e.g. 320 or 480x640)") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or HxW of positive numbers (e.g. 320 or 480x640)")
    return parts[0], parts[-1]


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """'320,320x480' → ((320, 320), (320, 480))."""
    return tuple(parse_size(part) for part in text.split(",") if part.strip())


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes {text!r} are not comma-separated integers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive integers, e.g. 1,2,7,32")
    return sizes


def parse_batch_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected one batch size (a positive integer such as 8), got {text!r}"
        ) from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"a batch size is a positive integer such as 8, got {size}")
    return size


def parse_cosine(text: str) -> float:
    """A cosine similarity threshold: a number in [-1, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a cosine between -1 and 1, got {text!r}") from None
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a cosine lies between -1 and 1, got {text}")
    return value


def parse_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text}")
    return value


def parse_floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or R,G,B numbers") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: give one number or three (R,G,B)")
    return values


def parse_opset(text: str) -> int:
    try:
        opset = int(text)
        check_opset(opset)
    except ValueError:
        raise argparse.ArgumentTypeError(f"opset {text!r} is not a number") from None
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return opset


OPSET_HELP = f"supported {OPSET_RANGE[0]}–{OPSET_RANGE[1]}"


def add_sizes_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, several: bool) -> None:
    """``--size``: the model's input size, one name in every command."""
    if several:
        parser.add_argument(
            "--size",
            dest="sizes",
            type=parse_sizes,
            metavar="N|HxW[,…]",
            help="input size(s) to check at, e.g. 640 or 320,320x480 (default: the artifact's own; "
            "a graph with a symbolic size is checked at its size and a non-square one)",
        )
    else:
        parser.add_argument("--size", type=parse_size, metavar="N|HxW", help="input size, N or HxW")


def add_embedding_size_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """One flag, one meaning: how many values one frame's embedding has."""
    parser.add_argument(
        "--embedding-size",
        type=int,
        metavar="N",
        help=f"values in one frame's embedding: the size an ArcFace network is built with (checkpoints, "
        f"seeded weights; default {EMBEDDING_SIZE}), or the size a foreign embedder's output is checked against",
    )


def add_frames_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument(
        "--images",
        type=Path,
        metavar="PATH",
        help=f"a photo or a folder of photos used as frames for {purpose} (seeded noise frames fill the rest)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the noise frames (default 0)")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the full report as JSON ('-': standard output)"
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="write the report as Markdown ('-': standard output)"
    )
    parser.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="write the report as JUnit XML, one testcase per check ('-': standard output)",
    )


def add_verify_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the verifier runs (verify, and fix after its repair)."""
    sizes = ",".join(map(str, DEFAULT_BATCH_SIZES))
    parser.add_argument(
        "--batch-sizes",
        type=parse_batch_sizes,
        default=DEFAULT_BATCH_SIZES,
        metavar="LIST",
        help=f"batch sizes the verifier tests, at least one of 2 or more (default {sizes})",
    )
    parser.add_argument(
        "--det-thresh",
        type=parse_fraction,
        default=DET_THRESH,
        metavar="P",
        help=f"check 3 (SCRFD): score threshold of the decoded detections (default {DET_THRESH:g}, as insightface)",
    )
    parser.add_argument(
        "--nms-thresh",
        type=parse_fraction,
        default=NMS_THRESH,
        metavar="IOU",
        help=f"check 3 (SCRFD): NMS IoU threshold (default {NMS_THRESH:g}, as insightface)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="the release gate: a skipped check (no reference, no face detected) fails, with its reason",
    )
    add_frames_arguments(parser, "the checks")
    add_report_arguments(parser)


def add_reference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        metavar="torch|FILE.onnx",
        help="check 4: compare with the torch model this artifact was exported from ('torch': rebuilt "
        "from its metadata and weights), or with another ONNX file run one frame at a time (e.g. the "
        "official batch-1 model; its 2-D head layout is unfolded)",
    )
    parser.add_argument(
        "--reference-weights",
        type=Path,
        metavar="FILE",
        help="with --reference torch: the weights the artifact was exported from, when its sidecar "
        ".json does not name them (checked against the recorded sha256)",
    )
    parser.add_argument(
        "--reference-config",
        type=Path,
        metavar="FILE.py",
        help="with --reference torch: the SCRFD config .py of a custom-trained detector",
    )


EMBEDDER_FLAGS = ("embedder_spec", "mean", "std", "color_order", "embedding_size", "embedder_input", "embedder_output")


def add_embedder_arguments(parser: argparse.ArgumentParser) -> None:
    """Describe a foreign embedder: a YAML spec, and/or single values that override it
    (its input size is ``--size``)."""
    group = parser.add_argument_group("foreign embedder (any ONNX with an [N,3,H,W] input)")
    group.add_argument(
        "--embedder-spec",
        type=Path,
        metavar="FILE.yaml",
        help="YAML with input_size, mean, std, color_order, embedding_size (see 'facebatch describe')",
    )
    group.add_argument("--mean", type=parse_floats, metavar="M|R,G,B", help="pixel mean (default 127.5)")
    group.add_argument("--std", type=parse_floats, metavar="S|R,G,B", help="pixel std (default 127.5)")
    group.add_argument(
        "--color-order", choices=("RGB", "BGR"), type=str.upper, help="channel order the model wants (default RGB)"
    )
    add_embedding_size_argument(group)
    group.add_argument("--input", dest="embedder_input", metavar="NAME", help="graph input, when there are several")
    group.add_argument(
        "--output", dest="embedder_output", metavar="NAME", help="embedding output, when there are several"
    )


def add_precision_argument(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--precision",
        choices=("fp32", "int8"),
        default="fp32",
        help="int8: run each model's INT8 twin beside it where quantize's accuracy gate passed it on this CPU "
        "class (about 2x the detector's speed), FP32 where none did (default fp32)",
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
    from facebatch.engines.pipeline.image_header import ACCEPTED, DEFAULT_MAX_PHOTO_PIXELS
    from facebatch.engines.pipeline.settings import DEFAULT_DETECT_BATCH, DEFAULT_EMBED_BATCH, DEFAULT_READ_WORKERS
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
        default="ort-cpu",
        choices=[b for b in BACKENDS if b != "torch"],
        metavar="B",
        help="ort-cpu (default), ort-cuda, ort-trt, openvino or trt",
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
        "--threads", type=int, metavar="N", help="CPU threads per runtime (default: the physical cores over the lanes)"
    )
    add_lanes_argument(group)
    add_precision_argument(group)
    group.add_argument(
        "--reduced-decode",
        action="store_true",
        help="decode JPEGs at least twice the detector's input at 1/2, 1/4 or 1/8 of their size (about 5x less "
        "decoding for 12 MP photos; faces move by up to 2 detector pixels, so not the default)",
    )
    group.add_argument(
        "--size",
        type=parse_size,
        metavar="N|HxW",
        help="detector input size, for a detector that takes several (default 640)",
    )
    group.add_argument(
        "--det-thresh",
        type=parse_fraction,
        default=DET_THRESH,
        metavar="P",
        help=f"face score threshold (default {DET_THRESH:g})",
    )
    group.add_argument(
        "--nms-thresh",
        type=parse_fraction,
        default=NMS_THRESH,
        metavar="IOU",
        help=f"NMS IoU threshold (default {NMS_THRESH:g})",
    )
    group.add_argument(
        "--max-faces",
        type=int,
        default=0,
        metavar="N",
        help="keep the N largest, most central faces per photo, as insightface's max_num (default 0: all)",
    )
    group.add_argument(
        "--max-photo-pixels",
        type=int,
        default=DEFAULT_MAX_PHOTO_PIXELS,
        metavar="N",
        help=f"skip, without decoding it, a photo whose header says more pixels than this, gives no size or is not a "
        f"{ACCEPTED} (default {DEFAULT_MAX_PHOTO_PIXELS}, {DEFAULT_MAX_PHOTO_PIXELS // 1_000_000} MP)",
    )


# ---- from parsed arguments to library values --------------------------------------------------


def photos(args: argparse.Namespace) -> list[Path]:
    if args.images is None:
        return []
    from facebatch.engines.pipeline.preprocess import image_files

    try:
        found = image_files(args.images)
    except SpecError as exc:
        raise SpecError(f"--images: {exc}") from None
    if not found:
        raise SpecError(f"--images {args.images} holds no .jpg/.png files")
    return found


def embedder_flags_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) is not None for k in EMBEDDER_FLAGS)


def embedder_description(args: argparse.Namespace, size: tuple[int, int] | None):  # (EmbedderDescription, set)
    """What the flags (over an ``--embedder-spec`` file) say about a foreign embedder, and
    which keys were stated at all."""
    from facebatch.configs.embedder import EmbedderDescription, read_embedder_mapping

    stated_in_file = read_embedder_mapping(args.embedder_spec) if args.embedder_spec else {}
    mapping = EmbedderDescription.from_mapping(stated_in_file, str(args.embedder_spec)).to_mapping()
    overrides = {
        "input_size": list(size) if size else None,
        "mean": list(args.mean) if args.mean else None,
        "std": list(args.std) if args.std else None,
        "color_order": args.color_order,
        "embedding_size": args.embedding_size,
        "input": args.embedder_input,
        "output": args.embedder_output,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    mapping.update(given)
    stated = {k for k, v in stated_in_file.items() if v is not None} | set(given)
    return EmbedderDescription.from_mapping(mapping, "command line"), stated


def pipeline_models(
    args: argparse.Namespace, embed: bool, precision: str | None = None
):  # (ModelFile, ModelFile | None)
    """The detector (and embedder) the pipeline flags name, each checked to be what its flag says, in
    the ``precision`` asked for (default: --precision's; see ``with_precision``)."""
    from facebatch.configs.embedder import read_embedder_description, read_embedder_file
    from facebatch.configs.family import describe_family
    from facebatch.configs.model_file import default_artifact, face_embedder_doubts, read_model_file

    precision = getattr(args, "precision", "fp32") if precision is None else precision
    detector = read_model_file(args.detector or _picked(default_artifact("detector"), "--detector"), size=args.size)
    if detector.family.is_embedder:
        raise SpecError(f"{detector.path.name} is an embedder; pass an SCRFD detector as --detector")
    detector = with_precision(detector, "--detector", precision, args.size)
    if not embed:
        return detector, None
    path, description = args.embedder or _picked(default_artifact("embedder"), "--embedder"), None
    if path.suffix.lower() in (".yaml", ".yml"):
        if args.embedder_spec is not None:
            raise SpecError(f"--embedder {path.name} is a spec already; drop --embedder-spec")
        path, description = read_embedder_file(path)
    elif args.embedder_spec is not None:
        description = read_embedder_description(args.embedder_spec)
    embedder = read_model_file(path, description)
    if not embedder.family.is_embedder:
        raise SpecError(f"{path.name} is {describe_family(embedder.family)}; pass an embedder as --embedder")
    doubts = face_embedder_doubts(embedder)
    if doubts:
        raise SpecError(
            f"{path.name} does not look like a face embedder: {'; '.join(doubts)}; its cosines would mean "
            "nothing. Pass a face embedder (an ArcFace model, or one made batchable by fix) as --embedder"
        )
    for note in embedder.notes:
        print(f"note: {path.name}: {note} (describe it with --embedder-spec if it differs)", file=sys.stderr)
    return detector, with_precision(embedder, "--embedder", precision, None)


def with_precision(model, flag: str, precision: str, size: tuple[int, int] | None):  # ModelFile → ModelFile
    """``model`` as the pipeline may run it: an INT8 file only when quantize's gate passed it on this
    CPU class (refused otherwise, in one line); with ``precision`` int8, an FP32 file's gated INT8
    twin beside it, or the FP32 file itself with a note saying why there is none."""
    from facebatch.configs.model_file import int8_twin, read_model_file
    from facebatch.core.environment import int8_cpu_class

    cpu_class = int8_cpu_class()
    if model.precision == "int8":
        refusal = model.int8_refusal(cpu_class)
        if refusal is not None:
            raise SpecError(
                f"{flag} {model.path.name}: {refusal}; the pipeline runs INT8 only where the gate passed: "
                "run 'facebatch quantize' on its FP32 source here (--images DIR), or pass the FP32 file"
            )
        return model
    if precision != "int8" or model.precision != "fp32":
        return model
    twin, why_not = int8_twin(model, cpu_class)
    if twin is None:
        print(
            f"note: --precision int8: {why_not}; {model.path.name} runs in FP32 "
            f"('facebatch quantize {model.path} --images DIR' makes one)",
            file=sys.stderr,
        )
        return model
    print(
        f"note: --precision int8: {flag} {twin.name} (quantize's gate passed it on {cpu_class} CPUs)", file=sys.stderr
    )
    return read_model_file(twin, size=size)


def _picked(path: Path, flag: str) -> Path:
    """A model taken from build/onnx because its flag was not given: say which."""
    print(f"note: using {path} ({flag} names another)", file=sys.stderr)
    return path


def pipeline_settings(args: argparse.Namespace):  # PipelineSettings
    from facebatch.engines.pipeline.face_pipeline import PipelineSettings

    return PipelineSettings(
        args.det_thresh,
        args.nms_thresh,
        args.max_faces,
        args.batch_size,
        getattr(args, "embed_batch_size", None),
        args.workers,
        args.reduced_decode,
        args.lanes,
        args.max_photo_pixels,
    )


def runner_options(args: argparse.Namespace):  # RunnerOptions
    """The pipeline's runtimes as the flags say: --threads each, no spin-waiting (the detector and the
    embedder take turns on the same cores; spinning threads would slow each other)."""
    from facebatch.engines.runners.registry import RunnerOptions

    return RunnerOptions(threads=args.threads, spin_wait=False)


def open_pipeline(args: argparse.Namespace, detector, embedder):  # (ModelFile, ModelFile | None) → ctx[FacePipeline]
    """The face pipeline over ``detector`` and ``embedder`` with the flags' backend, settings and threads."""
    from facebatch.engines.pipeline.face_pipeline import open_pipeline as open_faces

    return open_faces(detector, embedder, args.backend, pipeline_settings(args), runner_options(args))


def reference_factory(args: argparse.Namespace):  # ReferenceFactory | None
    if args.reference is None:
        if args.reference_weights is not None or args.reference_config is not None:
            raise SpecError("--reference-weights and --reference-config need --reference torch")
        return None
    from facebatch.exporter.torch_reference import reference_from_argument

    return reference_from_argument(args.reference, args.reference_weights, args.reference_config)


# the arguments that name what a command writes; every other path argument names something it reads
OUTPUT_DESTS = frozenset(
    {"json", "markdown", "junit", "output", "output_file", "plot", "draw", "out", "log", "trt_cache", "timing_cache"}
)
# input folders read whole (a gallery, a model repository, a release, a python environment); other input
# folders are read for their photos
WHOLE_FOLDER_DESTS = frozenset({"gallery", "repository", "check", "python_env"})


def input_files(args: argparse.Namespace, photos: Sequence[Path] = (), folders: Sequence[Path] = ()):  # InputFiles
    """Everything a command reads, from its arguments: each path argument but the outputs (a folder of
    photos by its photos' suffixes, a gallery or repository whole), plus ``photos`` and ``folders`` (read
    whole) the command found itself. What ``check_output_file`` refuses to write over."""
    from facebatch.core.atomic import InputFiles
    from facebatch.engines.pipeline.preprocess import IMAGE_SUFFIXES

    files, photo_folders, whole = list(photos), [], list(folders)
    for dest, value in vars(args).items():
        if dest in OUTPUT_DESTS:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            path = Path(item) if dest == "reference" and isinstance(item, str) and item != "torch" else item
            if not isinstance(path, Path) or path == STDOUT:
                continue
            if path.is_dir():
                (whole if dest in WHOLE_FOLDER_DESTS else photo_folders).append(path)
            elif path.exists():
                files.append(path)
    return InputFiles(files, [(f, IMAGE_SUFFIXES) for f in photo_folders] + [(f, None) for f in whole])


def check_report_targets(args: argparse.Namespace, inputs=None) -> None:  # inputs: InputFiles | None
    """Refuse --json/--markdown/--junit paths that are folders, inputs (default: ``input_files(args)``) or
    unwritable, before the slow work."""
    from facebatch.core.atomic import check_output_file

    inputs = input_files(args) if inputs is None else inputs
    for flag, target in (("--json", args.json), ("--markdown", args.markdown), ("--junit", args.junit)):
        if target is not None and target != STDOUT:
            check_output_file(target, flag, inputs)


def command_line(args: argparse.Namespace) -> str:
    """The command as typed, for reports."""
    return shlex.join(["facebatch", *args.argv])


def reports_to_stdout(args: argparse.Namespace) -> bool:
    return STDOUT in (getattr(args, "json", None), getattr(args, "markdown", None), getattr(args, "junit", None))
