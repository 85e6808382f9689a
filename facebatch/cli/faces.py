"""What detect, embed and compare share: run the pipeline over the photos with a progress
bar, name and skip photos that cannot be read, write the outputs atomically. The pipeline
itself lives in ``engines/pipeline``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for, show_faces
from facebatch.cli.terminal import literal, visible
from facebatch.core.errors import OutputError, SpecError
from facebatch.core.progress import progress_bar, warn
from facebatch.core.words import counted


def _about(args: argparse.Namespace, pipeline) -> dict:  # FacePipeline
    about = {
        "command": arguments.command_line(args),
        "detector": str(pipeline.detector.label),
        "backend": args.backend,
        "provider": pipeline.detector.provider,
        "det_thresh": args.det_thresh,
        "nms_thresh": args.nms_thresh,
    }
    if pipeline.embedder is not None:
        about["embedder"] = str(pipeline.embedder.label)
    return about


def _check_targets(args: argparse.Namespace, embed: bool, photos: list[Path]) -> None:
    """Refuse, before the slow work, outputs that are folders, unwritable, or would replace one of
    the ``photos`` (an annotated copy written over its own original, say)."""
    from facebatch.core.atomic import check_not_input, check_output_file, check_output_folder
    from facebatch.engines.pipeline.results import drawn_name

    inputs = arguments.input_files(args, photos)
    targets = [("--json", args.json)] + ([("--output", args.output)] if embed else [])
    for flag, target in targets:
        if target is not None and target != arguments.STDOUT:
            check_output_file(target, flag, inputs)
    if getattr(args, "draw", None) is not None:
        check_output_folder(args.draw, "--draw")
        taken: set[str] = set()
        for photo in photos:  # each annotated copy's name: refused where it is a photo being read
            target = args.draw / drawn_name(photo, taken)
            if target in inputs:
                raise OutputError(
                    f"--draw {args.draw} would write the annotated copy of {photo.name} over {target}, one of the "
                    "photos being read; facebatch never overwrites an input: pass another folder"
                )
            check_not_input(target, "--draw", ())  # a folder where the copy goes (the inputs were just asked)


def run_pipeline_command(args: argparse.Namespace, embed: bool) -> int:
    from facebatch.core.atomic import write_bytes_atomic, write_text_atomic
    from facebatch.engines.pipeline.preprocess import collect_images
    from facebatch.engines.pipeline.results import (
        detections_json,
        draw_faces,
        drawn_name,
        embeddings_index,
        embeddings_npz,
        encode_image,
    )

    paths = collect_images(args.images)
    _check_targets(args, embed, paths)
    detector, embedder = arguments.pipeline_models(args, embed)
    drawn: set[str] = set()
    with arguments.open_pipeline(args, detector, embedder) as pipeline:
        results = []
        with progress_bar(len(paths), "embed" if embed else "detect") as advance:
            for result in pipeline.run(paths):
                results.append(result)
                if not result.ok:
                    warn(f"skipped {result.path}: {result.error}")
                elif args.draw is not None:
                    from facebatch.engines.pipeline.preprocess import load_image

                    name = drawn_name(result.path, drawn)
                    write_bytes_atomic(
                        args.draw / name,
                        encode_image(draw_faces(load_image(result.path, args.max_photo_pixels), result), name),
                        "--draw",
                    )
                advance(
                    f"{result.path.name}: {counted(len(result), 'face')}"
                    if result.ok
                    else f"{result.path.name}: skipped"
                )
        about = _about(args, pipeline)
        times = pipeline.times
    console = console_for(args)
    show_faces(console, results, times)
    if embed:
        models = {"detector": detector.sha256, "embedder": embedder.sha256} if embedder is not None else {}
        write_bytes_atomic(args.output, embeddings_npz(results, models), "--output")
        console.print(f"wrote {args.output} ({sum(len(r) for r in results)} embeddings)")
        if args.json is not None:
            write_text_atomic(args.json, embeddings_index(results, args.output.name, about), "--json")
            console.print(f"wrote {args.json}")
    elif args.json == arguments.STDOUT:
        sys.stdout.write(detections_json(results, about))
    elif args.json is not None:
        write_text_atomic(args.json, detections_json(results, about), "--json")
        console.print(f"wrote {args.json}")
    if args.draw is not None:
        console.print(f"wrote {len(drawn)} annotated copies to {args.draw}")
    failed = [r for r in results if not r.ok]
    if failed:
        print(
            f"facebatch: error: {len(failed)} of {counted(len(results), 'photo')} could not be read: "
            + ", ".join(visible(str(r.path)) for r in failed),
            file=sys.stderr,
        )
        return 1
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from facebatch.core.atomic import write_text_atomic
    from facebatch.engines.pipeline.face_pipeline import match_best_faces

    for path in (args.first, args.second):
        if not path.is_file():
            raise SpecError(f"{path} is not a file; compare takes two photos")
    _check_targets(args, embed=False, photos=[args.first, args.second])
    detector, embedder = arguments.pipeline_models(args, embed=True)
    with arguments.open_pipeline(args, detector, embedder) as pipeline:
        first, second = pipeline.run([args.first, args.second])
    match = match_best_faces(first, second, args.threshold)
    console = console_for(args)
    verdict = "same person" if match.same else "different people"
    console.print(
        f"{literal(args.first.name)} ({counted(len(first), 'face')}) vs {literal(args.second.name)} "
        f"({counted(len(second), 'face')}), best face of each: "
        f"cosine {match.cosine:.4f} → {verdict} (threshold {args.threshold:g})"
    )
    if args.json == arguments.STDOUT:
        sys.stdout.write(json.dumps(match.to_dict(), indent=2) + "\n")
    elif args.json is not None:
        write_text_atomic(args.json, json.dumps(match.to_dict(), indent=2) + "\n", "--json")
    return 0
