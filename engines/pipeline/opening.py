"""``open_pipeline``: a face pipeline over ONNX files on a backend, in lanes. It builds each lane's
runners through the one runner factory and applies the CPU policy: how many lanes, and the threads
of each runtime (``LaneScheduler.plan``), with no spin-waiting (two sessions take turns)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from facebatch.configs.model_file import ModelFile
from facebatch.engines.pipeline.face_pipeline import FacePipeline
from facebatch.engines.pipeline.lanes import LaneScheduler
from facebatch.engines.pipeline.options import FaceModels, PipelineOptions
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner


@contextlib.contextmanager
def open_pipeline(
    detector: ModelFile,
    embedder: ModelFile | None = None,
    backend: str = "ort-cpu",
    settings: PipelineOptions | None = None,
    runner_options: RunnerOptions | None = None,
    detector_size: tuple[int, int] | None = None,
) -> Iterator[FacePipeline]:
    """A pipeline over ONNX files (ours, or any SCRFD / described embedder) on a backend that
    runs ONNX, in ``LaneScheduler.plan``'s lanes (each its own runners; ``run`` shares the photos among
    them, the stage methods run on the first); its runners live as long as the ``with`` block.
    ``settings`` are the pipeline's options (the keyword keeps its name for the callers of this release)."""
    size = detector.checked_size(detector_size)
    models = FaceModels(detector.spec, size, embedder.spec if embedder is not None else None)
    options = settings or PipelineOptions()
    # the detector and the embedder take turns: spinning threads would slow each other
    runners = runner_options or RunnerOptions(spin_wait=False, compile_cache=options.compile_cache)
    lanes, threads = LaneScheduler.plan(options.lanes, backend, runners.threads)
    runners = dataclasses.replace(runners, threads=threads)
    with contextlib.ExitStack() as stack:
        pipelines = []
        for _ in range(lanes):
            det_runner = stack.enter_context(make_onnx_runner(backend, detector, size, runners))
            emb_runner = None
            if embedder is not None:
                emb_runner = stack.enter_context(make_onnx_runner(backend, embedder, embedder.spec.input_size, runners))
            pipelines.append(FacePipeline(models, det_runner, emb_runner, options))
        pipelines[0].other_lanes = pipelines[1:]
        yield pipelines[0]
