"""``facebatch`` command line. Library errors become one line on stderr and a non-zero exit:
2 for bad input (files, names, sizes, weights), 1 when a check or export proof fails."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from facebatch import __version__
from facebatch.errors import FacebatchError, SpecError
from facebatch.progress import step

out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)  # pipes and CI logs: no truncation


def parse_size(text: str) -> tuple[int, int]:
    """'320' → (320, 320); '480x640' → (480, 640) as height x width."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or HxW (e.g. 320 or 480x640)") from None
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"size {text!r} is not N or HxW (e.g. 320 or 480x640)")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes {text!r} are not comma-separated integers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive integers, e.g. 1,2,7,32")
    return sizes


def parse_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text}")
    return value


def _photos(directory: Path | None) -> list[Path]:
    if directory is None:
        return []
    from facebatch.engines.preprocess import image_files

    photos = image_files(directory)
    if not photos:
        raise SpecError(f"--images {directory} holds no .jpg/.png files")
    return photos


def _onnx_family(path: Path) -> str:
    """"scrfd" or "arcface" for ONNX weights given without a model name: detectors have a
    score/bbox(/kps) output per stride, embedders one output."""
    from facebatch.errors import WeightsError
    from facebatch.onnx_graph import load_onnx

    return "arcface" if len(load_onnx(path, "weights file", WeightsError).graph.output) == 1 else "scrfd"


def _export_family(args: argparse.Namespace) -> str:
    from facebatch.configs.arcface import is_arcface_name

    if args.model is not None:
        return "arcface" if is_arcface_name(args.model) else "scrfd"
    if args.config is not None:
        return "scrfd"
    if args.weights is not None and args.weights.suffix.lower() == ".onnx" and args.weights.is_file():
        return _onnx_family(args.weights)
    raise SpecError("name a model (see 'facebatch models'), or pass --config FILE.py or ONNX --weights")


def _export_settings(args: argparse.Namespace) -> dict:
    """The ``ExportSettings`` fields, common to every family's request."""
    return dict(out_dir=args.out, name=args.name, opset=args.opset, parity_batch_sizes=args.parity_batch_sizes,
                photos=_photos(args.images), seed=args.seed)  # fmt: skip


def _export_arcface(args: argparse.Namespace):  # noqa: ANN202 - ExportResult, imported lazily
    from facebatch.configs.arcface import ARCFACE_INPUT_SIZE
    from facebatch.exporter.arcface_export import ArcFaceExportRequest, export_arcface

    if args.size is not None and args.size != (ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE):
        raise SpecError(f"ArcFace networks take {ARCFACE_INPUT_SIZE}x{ARCFACE_INPUT_SIZE} (their fc expects a 7x7 grid); drop --size")
    if args.config is not None or args.dynamic_size:
        raise SpecError("--config and --dynamic-size apply to SCRFD detectors only")
    request = ArcFaceExportRequest(
        network=args.model,
        weights=args.weights,
        embedding_size=args.embedding_size,
        **_export_settings(args),
    )
    return export_arcface(request)


def _export_scrfd(args: argparse.Namespace):  # noqa: ANN202 - ExportResult, imported lazily
    from facebatch.configs.scrfd import DEFAULT_SCRFD_SIZE
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd

    if args.embedding_size != 512:
        raise SpecError("--embedding-size applies to ArcFace networks only")
    height, width = args.size or (DEFAULT_SCRFD_SIZE, DEFAULT_SCRFD_SIZE)
    request = ScrfdExportRequest(
        variant=args.model,
        config=args.config,
        height=height,
        width=width,
        dynamic_size=args.dynamic_size,
        weights=args.weights,
        **_export_settings(args),
    )
    return export_scrfd(request)


def cmd_export(args: argparse.Namespace) -> int:
    family = _export_family(args)
    result = _export_arcface(args) if family == "arcface" else _export_scrfd(args)

    table = Table(title=f"exported {result.spec.name}", show_header=False, title_justify="left")
    table.add_row("artifact", str(result.onnx_path))
    table.add_row("sidecar", str(result.sidecar_path))
    table.add_row("input", f"{result.spec.input.name} {list(result.spec.input.dims)}")
    table.add_row("outputs", ", ".join(f"{t.name} {list(t.dims)}" for t in result.spec.outputs))
    table.add_row("weights", result.weights.describe())
    if result.weights.proof is not None:
        table.add_row("import proof", result.weights.proof.summary())
    gate = f"≤ {result.parity_atol:.3g} (seeded)" if result.parity_atol else "≤ spec atol 1e-4"
    rows = []
    for report in result.parity:
        cosines = [d.min_cosine for d in report.diffs if d.min_cosine is not None]
        cosine = f", cos ≥ {min(cosines):.7f}" if cosines else ""
        rows.append(f"{report.label}: {report.max_abs_diff:.2e}{cosine}")
    table.add_row(f"parity torch vs ORT {gate}", "; ".join(rows))
    out.print(table)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from facebatch.configs.scrfd import SCRFD_CONFIGS, HeadLayout
    from facebatch.exporter.scrfd import build_scrfd

    table = Table(title="SCRFD variants (insightface configs/scrfd)")
    for column in ("variant", "backbone", "head norm", "landmarks", "params"):
        table.add_column(column)
    for name, cfg in SCRFD_CONFIGS.items():
        params = sum(p.numel() for p in build_scrfd(**cfg).parameters())
        head = cfg["bbox_head"]
        table.add_row(
            name,
            cfg["backbone"]["type"],
            head["norm_cfg"]["type"],
            "yes" if HeadLayout.from_config(cfg).use_kps else "no",
            f"{params / 1e6:.3f}M",
        )
    out.print(table)

    from facebatch.configs.arcface import ARCFACE_CONFIGS, IResNetConfig, arcface_spec
    from facebatch.exporter.arcface import build_arcface

    table = Table(title="ArcFace networks (arcface_torch backbones; 112x112 input)")
    for column in ("model", "backbone", "layers", "embedding", "params", "default artifact"):
        table.add_column(column)
    for network, config in ARCFACE_CONFIGS.items():
        params = sum(p.numel() for p in build_arcface(network).parameters())
        spec = arcface_spec(network)
        layers = config.layers if isinstance(config, IResNetConfig) else config.blocks
        table.add_row(spec.name, type(config).__name__.removesuffix("Config"), "-".join(map(str, layers)),
                      str(spec.details["embedding_size"]), f"{params / 1e6:.2f}M", spec.default_filename)  # fmt: skip
    out.print(table)
    return 0


def add_verify_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What the verifier runs on and where its reports go (verify, and fix after its repair)."""
    from facebatch.engines.scrfd_decode import DET_THRESH, NMS_THRESH
    from facebatch.verify.independence import DEFAULT_BATCH_SIZES

    sizes = ",".join(map(str, DEFAULT_BATCH_SIZES))
    parser.add_argument("--batch-sizes", type=parse_batch_sizes, default=DEFAULT_BATCH_SIZES, metavar="LIST",
                        help=f"batch sizes the verifier tests (default {sizes})")  # fmt: skip
    parser.add_argument("--images", type=Path, metavar="DIR", help="photos used as frames (seeded noise frames fill the rest)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the noise frames (default 0)")
    parser.add_argument("--det-thresh", type=parse_fraction, default=DET_THRESH, metavar="P",
                        help=f"check 3 (SCRFD): score threshold of the decoded detections (default {DET_THRESH:g}, as insightface)")  # fmt: skip
    parser.add_argument("--nms-thresh", type=parse_fraction, default=NMS_THRESH, metavar="IOU",
                        help=f"check 3 (SCRFD): NMS IoU threshold (default {NMS_THRESH:g}, as insightface)")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the full verify report as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the verify report as Markdown")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write the verify report as JUnit XML, one testcase per check")


def add_reference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", metavar="torch|FILE.onnx",
                        help="check 4: compare with the torch model this artifact was exported from ('torch': rebuilt "
                        "from its metadata and weights), or with another ONNX file run one frame at a time (e.g. the "
                        "official batch-1 model; its 2-D head layout is unfolded)")  # fmt: skip
    parser.add_argument("--reference-weights", type=Path, metavar="FILE",
                        help="with --reference torch: the weights the artifact was exported from, when its sidecar "
                        ".json does not name them (checked against the recorded sha256)")  # fmt: skip
    parser.add_argument("--reference-config", type=Path, metavar="FILE.py",
                        help="with --reference torch: the SCRFD config .py of a custom-trained detector")  # fmt: skip


def _reference_request(args: argparse.Namespace):  # noqa: ANN202 - ReferenceRequest | None, imported lazily
    from facebatch.verify.reference import ReferenceRequest

    if args.reference is None:
        if args.reference_weights is not None or args.reference_config is not None:
            raise SpecError("--reference-weights and --reference-config need --reference torch")
        return None
    return ReferenceRequest(args.reference, args.reference_weights, args.reference_config)


def add_embedder_arguments(parser: argparse.ArgumentParser) -> None:
    """Describe a foreign embedder: a YAML spec, and/or single values that override it."""
    group = parser.add_argument_group("foreign embedder (any ONNX with an [N,3,H,W] input)")
    group.add_argument("--embedder-spec", type=Path, metavar="FILE.yaml",
                       help="YAML with input_size, mean, std, color_order, embedding_size (see 'facebatch describe')")  # fmt: skip
    group.add_argument("--input-size", type=parse_size, metavar="N|HxW",
                       help="input height x width (also the size a detector with a symbolic size is checked at)")
    group.add_argument("--mean", type=_floats, metavar="M|R,G,B", help="pixel mean (default 127.5)")
    group.add_argument("--std", type=_floats, metavar="S|R,G,B", help="pixel std (default 127.5)")
    group.add_argument("--color-order", choices=("RGB", "BGR"), type=str.upper, help="channel order the model wants (default RGB)")
    group.add_argument("--embedding-size", dest="embedder_embedding_size", type=int, metavar="N",
                       help="values per frame in the embedding output")  # fmt: skip
    group.add_argument("--input", dest="embedder_input", metavar="NAME", help="graph input, when there are several")
    group.add_argument("--output", dest="embedder_output", metavar="NAME", help="embedding output, when there are several")


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or R,G,B numbers") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: give one number or three (R,G,B)")
    return values


def embedder_description_from_args(args: argparse.Namespace):  # noqa: ANN201 - EmbedderDescription, lazy
    from facebatch.configs.embedder import EmbedderDescription, read_embedder_description

    base = read_embedder_description(args.embedder_spec) if args.embedder_spec else EmbedderDescription()
    mapping = base.to_mapping()
    overrides = {
        "input_size": list(args.input_size) if args.input_size else None,
        "mean": list(args.mean) if args.mean else None,
        "std": list(args.std) if args.std else None,
        "color_order": args.color_order,
        "embedding_size": args.embedder_embedding_size,
        "input": args.embedder_input,
        "output": args.embedder_output,
    }
    mapping.update({k: v for k, v in overrides.items() if v is not None})
    return EmbedderDescription.from_mapping(mapping, "command line")


def cmd_describe(args: argparse.Namespace) -> int:
    import yaml

    from facebatch.atomic import write_text_atomic
    from facebatch.configs.embedder import embedder_spec
    from facebatch.onnx_graph import load_onnx

    description = embedder_description_from_args(args)
    spec = embedder_spec(load_onnx(args.model_file, "model file", SpecError), description, args.model_file.name)
    resolved = description.with_overrides(
        name=description.name or spec.name,
        input_size=tuple(spec.details["input_size"]),
        embedding_size=spec.details["embedding_size"],
        input=spec.input.name,
        output=spec.outputs[0].name,
    )
    text = f"# embedder spec for {args.model_file.name}, checked against its graph by facebatch\n"
    text += yaml.safe_dump(resolved.to_mapping(), sort_keys=False, default_flow_style=None)
    if args.output_file is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output_file, text)
        out.print(f"wrote {args.output_file}")
    return 0


def _check_report_targets(args: argparse.Namespace) -> None:
    """Refuse unwritable --json/--markdown/--junit paths before the slow work."""
    from facebatch.atomic import ensure_writable_dir

    for target in (args.json, args.markdown, args.junit):
        if target is not None:
            ensure_writable_dir(target.parent if str(target.parent) else Path("."))


def cmd_verify(args: argparse.Namespace) -> int:
    from facebatch.verify.verify_job import VerifyOptions, verify_model

    embedder = None
    if any(getattr(args, k) is not None for k in ("embedder_spec", "mean", "std", "color_order", "embedder_embedding_size",
                                                   "embedder_input", "embedder_output")):  # fmt: skip
        embedder = embedder_description_from_args(args)
    _check_report_targets(args)
    options = VerifyOptions(
        batch_sizes=args.batch_sizes, photos=_photos(args.images), seed=args.seed, embedder=embedder, size=args.input_size,
        reference=_reference_request(args), det_thresh=args.det_thresh, nms_thresh=args.nms_thresh,
    )  # fmt: skip
    report = verify_model(args.model_file, options)
    _show_and_write_report(report, args)
    return 0


def _show_and_write_report(report, args: argparse.Namespace) -> None:  # noqa: ANN001 - VerifyReport, lazy
    from facebatch.atomic import write_text_atomic
    from facebatch.errors import VerificationFailed

    table = Table(title=f"facebatch verify {report.model}: {report.verdict}", title_justify="left")
    for column in ("#", "check", "result", "summary"):
        table.add_column(column)
    colours = {"pass": "green", "fail": "red", "skip": "dim"}
    for check in report.checks:
        table.add_row(str(check.number), check.name, f"[{colours[check.status]}]{check.status.upper()}[/]", check.summary)
    out.print(table)
    for note in report.notes:
        out.print(f"note: {note}")
    for check in report.checks:
        if check.failed and check.details:
            out.print(f"[bold]{check.number}. {check.name}[/bold]")
            for line in check.details:
                out.print(f"  - {line}")
    for target, text in ((args.json, report.to_json), (args.markdown, report.to_markdown), (args.junit, report.to_junit)):
        if target is not None:
            write_text_atomic(target, text())
            out.print(f"wrote {target}")
    if not report.passed:
        failed = ", ".join(f"{c.number} {c.name}" for c in report.checks if c.failed)
        raise VerificationFailed(f"{report.model} fails check(s) {failed}")


def cmd_fix(args: argparse.Namespace) -> int:
    from facebatch.exporter.repair import fix_onnx
    from facebatch.verify.reference import ReferenceRequest
    from facebatch.verify.verify_job import VerifyOptions, verify_model

    if args.output_file.resolve() == args.model_file.resolve():
        raise SpecError("-o must name a new file; facebatch fix never overwrites its input")
    _check_report_targets(args)
    with step(f"repair {args.model_file.name} by graph surgery and prove it frame by frame"):
        result = fix_onnx(args.model_file, args.output_file)
    for change in result.changes:
        out.print(f"fixed: {change}")
    if result.renamed:
        out.print("renamed outputs: " + ", ".join(f"{a} → {b}" for a, b in result.renamed.items()))
    out.print(f"proof: repaired per-frame outputs vs original single-frame outputs, max abs diff {result.proof_max_diff:.3g} (≤ 1e-5)")
    out.print(f"wrote {result.path}")
    # check 4 compares the repaired file with the original, one frame at a time
    options = VerifyOptions(batch_sizes=args.batch_sizes, photos=_photos(args.images), seed=args.seed,
                            reference=ReferenceRequest(str(args.model_file)), det_thresh=args.det_thresh,
                            nms_thresh=args.nms_thresh)  # fmt: skip
    _show_and_write_report(verify_model(result.path, options), args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facebatch",
        description="Batch-safe ONNX re-exports of InsightFace SCRFD face detectors and ArcFace embedders, proven before they are written.",
    )
    parser.add_argument("--version", action="version", version=f"facebatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="rebuild an SCRFD detector or ArcFace embedder in PyTorch and export a batch-safe ONNX",
        description="Rebuild an SCRFD detector or an ArcFace embedder in PyTorch, load its weights, export "
        "ONNX with a symbolic batch axis, simplify it, prove parity with the torch model at several batch "
        "sizes, and write the .onnx with a sidecar .json. Without --weights the weights are seeded random "
        "(for verification and benchmarking only).",
    )
    export.add_argument("model", nargs="?", help="e.g. scrfd_10g_bnkps or arcface_r50 (see 'facebatch models'); "
                        "optional with ONNX --weights (inferred) or --config")  # fmt: skip
    export.add_argument("--size", type=parse_size, default=None, metavar="N|HxW",
                        help="SCRFD input size, multiples of 32 (default 320); ArcFace is always 112")  # fmt: skip
    export.add_argument("--dynamic-size", action="store_true",
                        help="make height and width symbolic too (parity is still checked at --size)")  # fmt: skip
    export.add_argument("--weights", type=Path, metavar="FILE",
                        help="SCRFD: mmdet .pth checkpoint or SCRFD ONNX (official model-pack layout or a "
                        "batch-keeping re-export); ArcFace: arcface_torch backbone.pth or a recognition ONNX "
                        "(w600k_r50.onnx, w600k_mbf.onnx, glintr100.onnx). .pth files load with weights_only")  # fmt: skip
    export.add_argument("--embedding-size", type=int, default=512, metavar="N",
                        help="ArcFace embedding size for checkpoints and seeded weights (default 512)")  # fmt: skip
    export.add_argument("--config", type=Path, metavar="FILE.py",
                        help="insightface SCRFD config file, for custom-trained detectors")  # fmt: skip
    export.add_argument("--out", type=Path, default=Path("build/onnx"), metavar="DIR",
                        help="output directory (default build/onnx)")  # fmt: skip
    export.add_argument("--name", metavar="FILE.onnx",
                        help="output file name (default e.g. scrfd_10g_320_batch.onnx, arcface_w600k_r50_batch.onnx)")  # fmt: skip
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--images", type=Path, metavar="DIR",
                        help="photos for the parity and import proofs (seeded noise frames fill the rest)")  # fmt: skip
    export.add_argument("--parity-batch-sizes", type=parse_batch_sizes, default=(1, 2, 7, 32), metavar="LIST",
                        help="batch sizes of the torch-vs-onnxruntime parity check (default 1,2,7,32)")  # fmt: skip
    export.add_argument("--seed", type=int, default=0, help="seed for random weights and noise frames (default 0)")
    export.set_defaults(handler=cmd_export)

    models = commands.add_parser("models", help="list the SCRFD variants and ArcFace networks",
                                 description="List the SCRFD variants and ArcFace networks with their parameter counts.")  # fmt: skip
    models.set_defaults(handler=cmd_models)

    verify = commands.add_parser(
        "verify",
        help="prove an SCRFD or embedder ONNX keeps frames independent (the release gate)",
        description="Verify any SCRFD detector or face embedder ONNX, ours or someone else's: (1) batch "
        "independence on distinct frames at every --batch-sizes (max abs diff < 1e-5), (2) layout of every "
        "output and axis, (3) SCRFD: each frame's decoded faces (decode + NMS) alone equal those inside a batch, "
        "(4) parity with --reference (torch or another ONNX) within the spec's tolerances, (5) the first node that "
        "mixes or folds frames when (1) or (3) fails, (6) a static lint of Reshape/Transpose/Flatten/reductions. "
        "Exit 0 only when every check passes, 1 when one fails, 2 for bad input.",
    )
    verify.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    add_verify_run_arguments(verify)
    add_reference_arguments(verify)
    add_embedder_arguments(verify)
    verify.set_defaults(handler=cmd_verify)

    fix = commands.add_parser(
        "fix",
        help="repair an official batch-1 SCRFD or recognition ONNX into a batch-keeping one, then verify it",
        description="Graph surgery without PyTorch: the official SCRFD head (Transpose perm [2,3,0,1] → Reshape "
        "[-1,K]) keeps the batch, Reshape constants that fix dim 0 to 1 copy it instead, the input batch becomes "
        "symbolic, SCRFD outputs are renamed score_8 … kps_32. The repair is proven (each frame's outputs equal the "
        "original's single-frame outputs, ≤ 1e-5), written atomically, then verified like 'facebatch verify' with the "
        "original as the check-4 reference.",
    )
    fix.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    fix.add_argument("-o", "--out", dest="output_file", type=Path, required=True, metavar="OUT.onnx")
    add_verify_run_arguments(fix)
    fix.set_defaults(handler=cmd_fix)

    describe = commands.add_parser(
        "describe",
        help="write the spec of a foreign ONNX face embedder (YAML) for verify and bench",
        description="Describe any ONNX face embedder with an [N,3,H,W] input (e.g. mobilefacenet_128d.onnx): "
        "the values you give (or a YAML you started) are checked against the graph, the rest is read from it, "
        "and the result is printed or written as YAML for --embedder-spec.",
    )
    describe.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    describe.add_argument("-o", "--out", dest="output_file", type=Path, metavar="FILE.yaml", help="write here instead of printing")
    add_embedder_arguments(describe)
    describe.set_defaults(handler=cmd_describe)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except FacebatchError as exc:
        print(f"facebatch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facebatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
