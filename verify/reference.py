"""Check 4: does the file compute what its reference computes?

A ``Reference`` is anything with a runner over the same preprocessed frames:

* another ONNX file (``onnx_reference``), e.g. the official batch-1 model: it runs one frame
  at a time and both sides are mapped to one layout (``canonical_outputs`` unfolds the
  official 2-D heads);
* the PyTorch model an artifact was exported from: rebuilt by the exporter
  (``facebatch.exporter.torch_reference``), which is why references reach verify as
  factories: verify runs them without knowing how they are built.

Per-output atol/rtol come from the spec (cosine for embeddings); a reference may set a gate of
its own (seeded torch weights) that loosens an output's atol where the spec's is smaller; every
output and batch size is compared before the check decides.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from facebatch.configs.model_file import ModelFile, load_model, shared_size_symbol
from facebatch.configs.precision import SCORING_ANCHOR_FLOOR, Precision
from facebatch.configs.scrfd import OUTPUT_CHANNELS
from facebatch.configs.spec import TensorSpec
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import graph_input
from facebatch.core.progress import step
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.engines.pipeline.scrfd_layout import canonical_outputs
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.verify.decoded_parity import DecodedAgreement, decoded_agreement, scoring_anchors
from facebatch.verify.parity import ParityReport, compare_outputs


class Reference(ABC):
    """What check 4 compares with."""

    description: str  # in words, for the report
    name: str = "the reference"  # short, for one-line messages
    one_frame_at_a_time: bool = False  # batch-1 references (the official files)
    shared_size_symbol: str | None = None  # its height and width share one symbol: it runs square inputs only

    @abstractmethod
    def runner(self) -> Runner:
        """A fresh, not yet active runner."""

    def gate(self, frames: np.ndarray) -> tuple[float | None, str | None]:
        """(atol, why) for these frames: an output whose spec atol is smaller is held to it instead
        (a gate loosens, never tightens: ``parity.compare_outputs``); (None, None) keeps the spec's."""
        return None, None


# Builds the reference of one target; the photos serve proofs a rebuild may need.
ReferenceFactory = Callable[[ModelFile, Sequence[Path]], Reference]


@dataclass
class ReferenceResult:
    description: str  # what the file was compared with, in words
    reports: list[ParityReport] = field(default_factory=list)
    decoded: list[DecodedAgreement] = field(default_factory=list)  # detectors: the faces after decode and NMS
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.reports) and all(r.passed for r in self.reports) and all(d.passed for d in self.decoded)


class OnnxFileReference(Reference):
    """Another ONNX file on onnxruntime: batched when its batch axis is symbolic (e.g. the
    FP32 source of an FP16 artifact), one frame at a time when it is fixed (the official files)."""

    def __init__(self, path: Path, model: onnx.ModelProto | None = None, one_frame_at_a_time: bool = False) -> None:
        self.path = Path(path)
        self.name = self.path.name
        dims = graph_input(model if model is not None else load_model(self.path), SpecError)[1]
        self.one_frame_at_a_time = one_frame_at_a_time or not (dims and isinstance(dims[0], str))
        self.shared_size_symbol = shared_size_symbol(model if model is not None else load_model(self.path))
        how = "one frame at a time" if self.one_frame_at_a_time else "batched"
        self.description = f"{self.path.name} (run {how} on the same preprocessed frames)"

    def runner(self) -> Runner:
        return OnnxRuntimeRunner(self.path)


def onnx_reference(path: Path, one_frame_at_a_time: bool = False) -> ReferenceFactory:
    """Another ONNX file as the reference; refused now if it cannot be read. ``one_frame_at_a_time``:
    run it at batch 1 even when its batch is symbolic (the source of a repair may mix frames)."""
    path = Path(path)
    try:
        model = load_model(path)
    except SpecError as exc:
        raise SpecError(f"reference {exc}", field="reference") from exc
    reference = OnnxFileReference(path, model, one_frame_at_a_time)
    return lambda target, photos: reference


def parity_batch_sizes(batch_sizes: Sequence[int]) -> tuple[int, ...]:
    """The smallest and the largest tested batch: check 1 already ties every size in between
    to the single-frame run."""
    return tuple(sorted({min(batch_sizes), max(batch_sizes)}))


def _reference_input(runner: Runner, size: tuple[int, int]) -> str:
    if len(runner.inputs) != 1:
        raise SpecError(f"reference {runner.label} has {len(runner.inputs)} inputs; a detector or embedder has one")
    (source,) = runner.inputs
    if len(source.shape) != 4:
        raise SpecError(f"reference {runner.label} input {source.name} has {len(source.shape)} dims, expected NCHW")
    batch = source.shape[0]
    if isinstance(batch, int) and batch > 1:
        raise SpecError(f"reference {runner.label} is fixed to batch {batch}; it must take one frame")
    for label, have, want in zip(("height", "width"), source.shape[2:], size, strict=False):
        if isinstance(have, int) and have > 0 and have != want:
            raise SpecError(f"reference {runner.label} is fixed to {label} {have}; the model under test takes {want}")
    return source.name


def _named(
    raw: Mapping[str, np.ndarray], target: ModelFile, size: tuple[int, int], batch: int, source: str
) -> dict[str, np.ndarray]:
    """Both sides in one vocabulary: SCRFD → score_8 … kps_32; an embedder → its spec name."""
    if target.spec.head is not None:
        return canonical_outputs(list(raw.values()), target.spec.head, size[0], size[1], batch)
    if len(raw) != 1:
        raise SpecError(f"{source} has {len(raw)} outputs; an embedder has one")
    return {target.spec.outputs[0].name: next(iter(raw.values()))}


def _comparison_specs(target: ModelFile) -> list[TensorSpec]:
    """The spec's tolerances under the shared names. SCRFD specs of foreign files name their
    outputs as the graph does, so a shared name they lack takes the tolerances of an output of
    the same role (its channels: score, box or landmarks)."""
    specs = list(target.spec.outputs)
    if target.spec.head is None:
        return specs
    by_name = {s.name: s for s in specs}
    by_channels = {s.dims[-1]: s for s in reversed(specs)}
    wanted = [(name, OUTPUT_CHANNELS[name.split("_")[0]]) for name in target.spec.head.output_names()]
    return [by_name.get(name) or replace(by_channels[channels], name=name) for name, channels in wanted]


def compare_with_reference(
    target: ModelFile,
    runner: Runner,
    frames: np.ndarray,
    reference: Reference,
    batches: Sequence[int],
    size: tuple[int, int],
    det_thresh: float = DET_THRESH,
    nms_thresh: float = NMS_THRESH,
) -> ReferenceResult:
    """The artifact (active ``runner``) against ``reference`` at each of ``batches`` (verify:
    ``parity_batch_sizes``), on frames of ``size``; a detector's decoded faces too (at the
    largest)."""
    batches = tuple(sorted(set(batches)))
    atol, why = reference.gate(frames)
    result = ReferenceResult(reference.description, notes=[why] if why else [])
    specs = _comparison_specs(target)
    # a reduced-precision detector: boxes and landmarks judged where a face can come from (configs.precision)
    reduced = target.spec.head if target.spec.head is not None and target.spec.precision is not Precision.FP32 else None
    if reduced is not None:
        result.notes.append(
            f"{target.spec.precision.value}: boxes and landmarks are judged at anchors scoring >= "
            f"{SCORING_ANCHOR_FLOOR:g} on either side (a lower score never becomes a face); scores everywhere"
        )
    (source,) = runner.inputs
    with reference.runner() as ref:
        ref_input = _reference_input(ref, size)
        expected: dict[str, np.ndarray] = {}
        if reference.one_frame_at_a_time:
            with step(f"run the reference {ref.label} on {max(batches)} frames, one at a time"):
                singles = [
                    _named(ref.infer({ref_input: frames[i : i + 1]}), target, size, 1, ref.label)
                    for i in range(max(batches))
                ]
            expected = {name: np.concatenate([s[name] for s in singles]) for name in singles[0]}
        with step(f"parity vs {ref.label} at batch {', '.join(map(str, batches))}"):
            for n in batches:
                if reference.one_frame_at_a_time:
                    wanted = {name: array[:n] for name, array in expected.items()}
                else:
                    wanted = _named(ref.infer({ref_input: frames[:n]}), target, size, n, ref.label)
                actual = _named(runner.infer({source.name: frames[:n]}), target, size, n, target.path.name)
                judged = None if reduced is None else scoring_anchors(actual, wanted, target.spec.head)
                result.reports.append(compare_outputs(f"batch {n}", actual, wanted, specs, atol, judged))
    if target.spec.head is not None and target.seeded:
        result.notes.append(
            "seeded weights detect nothing (thousands of random boxes per frame that tie in NMS): "
            "decoded faces are not compared, the raw outputs are"
        )
    elif target.spec.head is not None:  # the largest batch holds every frame of the smaller ones
        result.decoded.append(
            decoded_agreement(
                f"batch {n}", actual, wanted, target.spec.head, size, det_thresh, nms_thresh, target.spec.precision
            )
        )
    return result
