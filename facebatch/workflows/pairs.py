"""``compare`` over a CSV of pairs: every distinct photo embedded once (one pipeline run), each pair's cosine of
the best faces and its verdict, and, when the pairs are labelled, accuracy at the threshold, the best threshold
and the ROC AUC — a verification report. Every refusal (a missing photo, a malformed row, a label that is not
one) comes before the pipeline starts; a photo with no face (or unreadable) gives its pairs that verdict and is
named, the other pairs are still judged."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebatch.core.atomic import check_output_file, write_text_atomic
from facebatch.core.errors import SpecError
from facebatch.core.progress import progress_bar, warn
from facebatch.core.words import counted, natural_key, percent
from facebatch.engines.pipeline.compare import PairScores, cosine_similarity, score_pairs
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.photo_files import IMAGE_SUFFIXES
from facebatch.workflows.faces import PipelineRun, check_cosine, open_models, photo_inputs
from facebatch.workflows.models import PipelineModels, choose_models

LABELS = {"1": True, "same": True, "0": False, "different": False}  # a pair's label, lower-cased
SAME, DIFFERENT, NO_FACE, UNREADABLE = "same person", "different people", "no face", "unreadable"


@dataclass(frozen=True)
class PairsOptions:
    pairs: Path  # a CSV of file_x,file_y[,label] rows (header optional; paths relative to its folder)
    threshold: float = DEFAULT_MATCH_THRESHOLD  # cosine at or above which a pair is the same person
    run: PipelineRun = field(default_factory=PipelineRun)
    json: Path | None = None
    markdown: Path | None = None

    def __post_init__(self) -> None:
        check_cosine(self.threshold, "threshold")


@dataclass(frozen=True)
class PairRow:
    """One row of the CSV: its line number (the header counts), the two photos as written and as found."""

    row: int
    first: str
    second: str
    label: bool | None  # True: same person; None: unlabelled
    first_path: Path
    second_path: Path


@dataclass(frozen=True)
class PairVerdict:
    pair: PairRow
    cosine: float | None  # None where a photo has no face or could not be read
    verdict: str  # same person, different people, no face, unreadable

    @property
    def correct(self) -> bool | None:
        if self.pair.label is None or self.cosine is None:
            return None
        return (self.verdict == SAME) == self.pair.label

    def to_dict(self) -> dict[str, Any]:
        label = None if self.pair.label is None else "same" if self.pair.label else "different"
        cosine = None if self.cosine is None else round(self.cosine, 5)
        return {"row": self.pair.row, "first": self.pair.first, "second": self.pair.second, "cosine": cosine} | {
            "verdict": self.verdict,
            "label": label,
            "correct": self.correct,
        }


@dataclass
class PairsResult:
    """Every pair's verdict; the scores where the pairs are labelled; the photos with no face and those that
    could not be read (their pairs are not scored)."""

    pairs_file: Path
    threshold: float
    verdicts: list[PairVerdict]
    photos: int  # distinct photos embedded
    scores: PairScores | None = None  # None: no labels, or no labelled pair with two faces
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    precision: dict[str, Any] = field(default_factory=dict)  # per model: the precision it ran in and why (compare's)

    @property
    def complete(self) -> bool:
        """Every pair was judged (each photo read and showed a face)."""
        return not self.no_face and not self.unreadable

    @property
    def labelled(self) -> bool:
        return any(v.pair.label is not None for v in self.verdicts)

    def summary(self) -> list[str]:
        """The lines a person reads under the pairs: what was scored, accuracy, best threshold, AUC."""
        lines = [f"{counted(len(self.verdicts), 'pair')} of {counted(self.photos, 'photo')}, each embedded once"]
        skipped = [v for v in self.verdicts if v.cosine is None]
        if skipped:
            lines.append(f"{counted(len(skipped), 'pair')} not judged: {', '.join(self.no_face + self.unreadable)}")
        s = self.scores
        if s is not None:
            auc = "n/a (one class only)" if s.roc_auc is None else f"{s.roc_auc:.4f}"
            lines += [
                f"accuracy at {s.threshold:g}: {percent(s.accuracy)} ({s.correct}/{s.pairs} labelled pairs, "
                f"{s.same_pairs} same, {s.pairs - s.same_pairs} different)",
                f"best threshold {s.best_threshold:.4f}: {percent(s.best_accuracy)}; ROC AUC {auc}",
            ]
        elif self.labelled:
            lines.append("no labelled pair could be scored")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs_file": str(self.pairs_file),
            "threshold": self.threshold,
            "photos": self.photos,
            "pairs": [v.to_dict() for v in self.verdicts],
            "scores": None if self.scores is None else self.scores.to_dict(),
            "no_face": self.no_face,
            "unreadable": self.unreadable,
        } | ({"precision": self.precision} if self.precision else {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = ["| row | photo A | photo B | cosine | verdict | label |", "|---:|---|---|---:|---|---|"]
        for v in self.verdicts:
            cosine = "-" if v.cosine is None else f"{v.cosine:.4f}"
            label = v.to_dict()["label"] or "-"
            mark = "" if v.correct is None else " ✓" if v.correct else " ✗"
            lines.append(
                f"| {v.pair.row} | {v.pair.first} | {v.pair.second} | {cosine} | {v.verdict}{mark} | {label} |"
            )
        return "\n".join(lines) + "\n\n" + "".join(f"- {line}\n" for line in self.summary())


def compare_pairs(options: PairsOptions) -> PairsResult:
    """Each pair of the CSV judged at the threshold, every distinct photo embedded once; labelled pairs scored."""
    rows = read_pairs(Path(options.pairs))
    photos = sorted({p for row in rows for p in (row.first_path, row.second_path)}, key=natural_key)
    inputs = photo_inputs([*photos, Path(options.pairs)], options.run)
    for name, target in (("json", options.json), ("markdown", options.markdown)):
        if target is not None:
            check_output_file(target, name, inputs)
    chosen = choose_models(options.run.models, True, options.run.backend)  # auto: said in notes, recorded
    found = _embed_once(photos, options.run, chosen)
    verdicts = [_judge(row, found[row.first_path], found[row.second_path], options.threshold) for row in rows]
    result = PairsResult(Path(options.pairs), options.threshold, verdicts, len(photos), precision=chosen.to_dict())
    result.no_face = [str(p) for p in photos if found[p].ok and not len(found[p])]
    result.unreadable = [str(p) for p in photos if not found[p].ok]
    scored = [v for v in verdicts if v.pair.label is not None and v.cosine is not None]
    if scored:
        cosines = np.array([v.cosine for v in scored])
        result.scores = score_pairs(cosines, np.array([v.pair.label for v in scored]), options.threshold)
    for name, target, render in (
        ("json", options.json, result.to_json),
        ("markdown", options.markdown, result.to_markdown),
    ):
        if target is not None:
            write_text_atomic(target, render(), name)
    return result


def read_pairs(path: Path) -> list[PairRow]:
    """The CSV's rows, refused in one line naming the row: a missing photo, a malformed row, a label that is not
    1/0/same/different, labels on some rows only. A first row whose two cells name no file and no photo is a header."""
    if not path.is_file():
        raise SpecError(f"pairs {path} is not a file; pass a CSV of file_x,file_y[,label] rows", field="pairs")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            lines = [
                (number, cells) for number, cells in enumerate(csv.reader(handle), 1) if any(c.strip() for c in cells)
            ]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(
            f"pairs {path} is not a CSV of text ({exc}); pass file_x,file_y[,label] rows", field="pairs"
        ) from None
    if lines and _is_header(lines[0][1], path.parent):
        lines = lines[1:]
    if not lines:
        raise SpecError(f"pairs {path} holds no pair; write one file_x,file_y[,label] row per pair", field="pairs")
    rows = [_pair_row(number, [c.strip() for c in cells], path) for number, cells in lines]
    unlabelled = [r.row for r in rows if r.label is None]
    if unlabelled and len(unlabelled) < len(rows):
        raise SpecError(
            f"pairs {path} row {unlabelled[0]} has no label while other rows have one; label every row or none",
            field="pairs",
        )
    return rows


def _is_header(cells: list[str], folder: Path) -> bool:
    named = [c.strip() for c in cells[:2]]
    return not any((folder / c).exists() or Path(c).suffix.lower() in IMAGE_SUFFIXES for c in named if c)


def _pair_row(number: int, cells: list[str], path: Path) -> PairRow:
    where = f"pairs {path} row {number}"
    if len(cells) not in (2, 3) or not cells[0] or not cells[1]:
        raise SpecError(
            f"{where} is malformed ({','.join(cells)!r}); each row is file_x,file_y or file_x,file_y,label",
            field="pairs",
        )
    label = None
    if len(cells) == 3:
        if cells[2].lower() not in LABELS:
            raise SpecError(
                f"{where}: label {cells[2]!r} is not one; a label is 1 or same, 0 or different", field="pairs"
            )
        label = LABELS[cells[2].lower()]
    found = []
    for cell in cells[:2]:
        photo = Path(os.path.normpath(path.parent / cell))  # an absolute path stays itself; one name per photo
        if not photo.is_file():
            what = "is a folder" if photo.is_dir() else "does not exist"
            raise SpecError(
                f"{where}: {photo} {what}; a pair names two photos, relative to the CSV's folder", field="pairs"
            )
        found.append(photo)
    return PairRow(number, cells[0], cells[1], label, found[0], found[1])


def _embed_once(photos: list[Path], run: PipelineRun, chosen: PipelineModels) -> dict[Path, ImageFaces]:
    found: dict[Path, ImageFaces] = {}
    with open_models(chosen, run) as pipeline, progress_bar(len(photos), "compare") as advance:
        for photo, result in zip(photos, pipeline.run(photos), strict=True):
            found[photo] = result
            if not result.ok:
                warn(f"skipped {result.path}: {result.error}", result.error_field)
            advance(
                f"{result.path.name}: {counted(len(result), 'face')}" if result.ok else f"{result.path.name}: skipped"
            )
    return found


def _judge(pair: PairRow, first: ImageFaces, second: ImageFaces, threshold: float) -> PairVerdict:
    if not first.ok or not second.ok:
        return PairVerdict(pair, None, UNREADABLE)
    if first.embeddings is None or second.embeddings is None or not len(first) or not len(second):
        return PairVerdict(pair, None, NO_FACE)
    cosine = cosine_similarity(first.embeddings[0], second.embeddings[0])  # the best (highest-scoring) faces
    return PairVerdict(pair, cosine, SAME if cosine >= threshold else DIFFERENT)
