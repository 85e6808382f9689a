"""quantize's recipe search: each recipe suited to this CPU class makes a ``Candidate`` (quantised, saved
under its final name in the draft folder, judged by the accuracy gate), the most accurate is kept; with
``mixed``, an embedder no recipe keeps within the gate gets a search for the layers that can run in INT8
(engines/build/int8_mixed.py), the others staying FP32."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.core.progress import step
from facebatch.engines.bench.flops import node_flops
from facebatch.engines.build.int8 import Int8Quantization, quantize_to_int8, stamp_int8
from facebatch.engines.build.int8_mixed import search_int8_nodes
from facebatch.engines.build.int8_recipes import Int8Recipe, mixed_recipe
from facebatch.verify.accuracy import EmbedderAccuracy
from facebatch.workflows.quantize_gate import Evidence, Judgement

# A mixed search keeps a layer in INT8 only while the worst face keeps a fifth of the allowed drop unused
# (min cosine 0.992 for the gate's 0.99): the search and the gate see the same faces, and the margin
# keeps the choice from fitting them to the last digit.
MIXED_MARGIN = 0.8

# The activation ranges of the source on the calibration frames, shared by every candidate (in the draft folder)
CALIBRATION_CACHE = "calibration-ranges.json"


@dataclass
class Candidate:
    """One INT8 model tried: how it was quantised, where it was saved, how the gate judged it, how long it took."""

    quantization: Int8Quantization
    path: Path  # in the draft folder, under the final file name (bench and reports name it)
    judgement: Judgement
    seconds: float = 0.0  # quantising and judging

    @property
    def recipe(self) -> Int8Recipe:
        return self.quantization.recipe

    @property
    def passed(self) -> bool:
        return self.judgement.passed

    def rank(self) -> tuple:
        """Which candidate is more accurate: passing the gate first; then embedders by their lowest cosine to
        FP32, detectors by labelled recall, fewest missed faces, then mean landmark error."""
        accuracy = self.judgement.accuracy
        if isinstance(accuracy, EmbedderAccuracy):
            return (self.passed, accuracy.min_cosine)
        errors = accuracy.landmark_errors_px
        return (
            self.passed,
            accuracy.recall_candidate,
            -len(accuracy.missed),
            -(float(np.mean(errors)) if errors else 0.0),
        )

    def summary(self) -> str:
        accuracy = self.judgement.accuracy
        if isinstance(accuracy, EmbedderAccuracy):
            text = f"min cosine {accuracy.min_cosine:.4f}"
        else:
            errors = accuracy.landmark_errors_px or [0.0]
            text = (
                f"recall {accuracy.recall_candidate}/{accuracy.labelled}, {len(accuracy.missed)} of "
                f"{accuracy.reference_faces} missed, landmarks max {max(errors):.2f} px, mean {np.mean(errors):.2f} px"
            )
        failures = self.judgement.failures
        return text + ("; " + "; ".join(failures) if failures else "; passes")

    def record(self) -> dict[str, Any]:
        """What the report and the sidecar say about this candidate."""
        return {
            "recipe": self.recipe.name,
            "description": self.recipe.describe(),
            "passed": self.passed,
            "summary": self.summary(),
            "accuracy": self.judgement.accuracy.to_dict(),
            "seconds": round(self.seconds, 2),
        }


@dataclass
class SearchOutcome:
    best: Candidate
    tried: list[Candidate]
    mixed_note: str = ""  # what the mixed search found, when one ran


@dataclass
class RecipeSearch:
    """What every candidate shares: the FP32 source, its calibration frames, the gate's evidence, where
    the candidates are saved (``folder``, each under ``name``), and the gate's settings."""

    source: ModelFile
    calibration: np.ndarray
    calibration_sha256: str
    evidence: Evidence
    folder: Path
    name: str
    cpu_class: str
    per_channel: bool = True
    max_drop: float | None = None
    accepted: float | None = None  # embedders: the lowest cosine the INT8 file will carry in its spec
    tried: list[Candidate] = field(default_factory=list)

    def attempt(
        self, recipe: Int8Recipe, int8_nodes: Sequence[str] = (), folder: str = "", quiet: bool = False
    ) -> Candidate:
        """One candidate: quantised the ``recipe`` way, saved under its final name, judged."""
        began = time.perf_counter()
        label = (
            f"quantise {self.source.path.name} to INT8 ({recipe.name}, calibrated on {len(self.calibration)} frames)"
        )
        with nullcontext() if quiet else step(label):
            quantization = quantize_to_int8(
                self.source.path,
                self.source.spec,
                self.calibration,
                self.per_channel,
                self.accepted,
                recipe,
                self.cpu_class,
                int8_nodes,
                self.folder / CALIBRATION_CACHE,
            )
        path = self.folder / (folder or recipe.name) / self.name
        path.parent.mkdir(exist_ok=True)
        stamped = stamp_int8(
            quantization, self.source.props, self.source.path.name, self.source.sha256, self.calibration_sha256
        )
        onnx.save(stamped, path)
        with nullcontext() if quiet else step(f"compare the INT8 model ({recipe.name}) with FP32 on the photos"):
            judgement = self.evidence.judge(read_model_file(path), self.max_drop)
        return Candidate(quantization, path, judgement, time.perf_counter() - began)

    def keep(self, candidate: Candidate) -> None:
        self.tried.append(candidate)

    @property
    def best(self) -> Candidate:
        return max(self.tried, key=Candidate.rank)  # the first of equals: the order the recipes were tried in

    def mixed(self) -> str:
        """The layers that can run in INT8 within the gate, searched from the best recipe; what was found, in words."""
        assert self.accepted is not None  # embedders only
        recipe = mixed_recipe(self.best.recipe)
        floor = 1.0 - MIXED_MARGIN * (1.0 - self.accepted)

        def passes(int8_nodes: Sequence[str]) -> bool:
            candidate = self.attempt(recipe, int8_nodes, folder="search", quiet=True)
            return candidate.passed and candidate.judgement.accuracy.min_cosine >= floor  # type: ignore[union-attr]

        search = search_int8_nodes(node_flops(self.source.path, self.source.spec.input_size), passes)
        if not search.int8_nodes:
            return f"{recipe.name}: no layer can run in INT8 within the gate (searched {search.steps})"
        self.keep(self.attempt(recipe, search.int8_nodes))
        return f"{recipe.name}: {search.describe()}"

    def run(self, recipes: Sequence[Int8Recipe], mixed: bool) -> SearchOutcome:
        """Every recipe, then (``mixed``, for an embedder none keeps within the gate) the mixed search."""
        for recipe in recipes:
            self.keep(self.attempt(recipe))
        note = self.mixed() if mixed and not self.best.passed and self.accepted is not None else ""
        return SearchOutcome(self.best, list(self.tried), note)
