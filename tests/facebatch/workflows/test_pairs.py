"""compare over a CSV of pairs (``facebatch.workflows.pairs``): every photo embedded once, a verdict per pair,
labelled pairs scored; each bad row refused in one line naming it, before the pipeline starts; a photo with no
face gives its pairs that verdict and the other pairs are still judged. On the fixture photos (several of the same
people) with the official detector and embedder files, which run as they are."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.face_pipeline import FacePipeline
from facebatch.workflows.faces import PipelineRun
from facebatch.workflows.models import ModelOptions
from facebatch.workflows.pairs import PairsOptions, compare_pairs, read_pairs

SAME = [("obama_1.jpg", "obama_2.jpg"), ("biden_1.jpg", "biden_2.jpg"), ("rob_lowe_1.jpg", "rob_lowe_2.jpg")]
DIFFERENT = [("obama_1.jpg", "biden_1.jpg"), ("obama_2.jpg", "rob_lowe_1.jpg"), ("biden_2.jpg", "rob_lowe_2.jpg")]


def labelled_pairs(photos: list[Path], folder: Path, extra: str = "", header: bool = True) -> Path:
    """A labelled CSV of the fixture photos, with paths relative to the CSV's folder (the fixtures stay where they are)."""
    images = photos[0].parent
    relative = {p.stem: os.path.relpath(p, folder) for p in images.iterdir()}  # {obama_1} in ``extra``
    rows = [f"{relative[Path(a).stem]},{relative[Path(b).stem]},1" for a, b in SAME]
    rows += [f"{relative[Path(a).stem]},{relative[Path(b).stem]},different" for a, b in DIFFERENT]
    csv = folder / "pairs.csv"
    csv.write_text(("file_x,file_y,label\n" if header else "") + "\n".join(rows) + "\n" + extra.format(**relative))
    return csv


def official_run(models_dir: Path) -> PipelineRun:
    models = ModelOptions(models_dir / "det_500m.onnx", models_dir / "mobilefacenet_128d.onnx")
    return PipelineRun(models, threads=1)


def test_labelled_pairs_are_judged_and_scored_each_photo_embedded_once(
    models_dir: Path, photos: list[Path], tmp_path: Path, monkeypatch
):
    runs: list[list[Path]] = []
    original = FacePipeline.run

    def counted_run(self, paths, *args, **kwargs):
        runs.append(list(paths))
        return original(self, paths, *args, **kwargs)

    monkeypatch.setattr(FacePipeline, "run", counted_run)
    csv = labelled_pairs(photos, tmp_path, extra="{obama_1},{no_face},0\n")
    result = compare_pairs(PairsOptions(csv, run=official_run(models_dir), json=tmp_path / "r.json"))
    assert len(runs) == 1 and sorted(p.name for p in runs[0]) == sorted(
        {"no_face.png"} | {name for pair in SAME + DIFFERENT for name in pair}
    )  # one pipeline run, each distinct photo once
    verdicts = [(v.pair.row, v.verdict, v.correct) for v in result.verdicts]
    assert verdicts[:6] == [(r, "same person", True) for r in (2, 3, 4)] + [
        (r, "different people", True) for r in (5, 6, 7)
    ]
    assert verdicts[6] == (8, "no face", None) and result.no_face == [str(photos[0].parent / "no_face.png")]
    assert not result.complete and result.photos == 7
    scores = result.scores
    assert scores is not None and (scores.pairs, scores.correct, scores.roc_auc) == (6, 6, 1.0)
    assert scores.threshold == 0.35 and scores.best_accuracy == 1.0 and 0.0 < scores.best_threshold < 0.58
    written = json.loads((tmp_path / "r.json").read_text())
    assert written == result.to_dict() and written["pairs"][6]["verdict"] == "no face"
    assert "ROC AUC 1.0000" in result.to_markdown()


def test_unlabelled_pairs_get_verdicts_and_no_scores(models_dir: Path, photos: list[Path], tmp_path: Path):
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"{photos[0].parent / 'obama_1.jpg'},{photos[0].parent / 'obama_2.jpg'}\n")  # absolute, no header
    result = compare_pairs(PairsOptions(csv, run=official_run(models_dir)))
    assert [v.verdict for v in result.verdicts] == ["same person"] and result.scores is None and result.complete


@pytest.mark.parametrize(
    "rows, message",
    [
        ("{obama_1},missing.jpg,1\n", "pairs.csv row 8: {tmp}/missing.jpg does not exist"),
        ("{obama_1}\n", "pairs.csv row 8 is malformed ('{obama_1}'); each row is file_x,file_y"),
        ("{obama_1},{obama_2},1,extra\n", "row 8 is malformed"),
        ("{obama_1},{obama_2},yes\n", "pairs.csv row 8: label 'yes' is not one; a label is 1 or same, 0 or"),
        ("{obama_1},{obama_2}\n", "pairs.csv row 8 has no label while other rows have one; label every row"),
        ("{obama_1},.,0\n", "row 8: {tmp} is a folder; a pair names two photos"),
    ],
)
def test_a_bad_row_is_refused_in_one_line_naming_it(rows, message, photos: list[Path], tmp_path: Path):
    csv = labelled_pairs(photos, tmp_path, extra=rows)
    relative = {p.stem: os.path.relpath(p, tmp_path) for p in photos[0].parent.iterdir()}
    with pytest.raises(SpecError) as refused:
        read_pairs(csv)
    assert message.format(tmp=tmp_path, **relative) in str(refused.value) and refused.value.field == "pairs"
    assert "\n" not in str(refused.value)


def test_a_header_is_optional_and_an_empty_file_is_refused(photos: list[Path], tmp_path: Path):
    assert [r.row for r in read_pairs(labelled_pairs(photos, tmp_path, header=False))] == [1, 2, 3, 4, 5, 6]
    assert [r.row for r in read_pairs(labelled_pairs(photos, tmp_path))][0] == 2  # rows count the header's line
    (tmp_path / "empty.csv").write_text("file_x,file_y,label\n")
    with pytest.raises(SpecError, match="holds no pair"):
        read_pairs(tmp_path / "empty.csv")
    with pytest.raises(SpecError, match="is not a file; pass a CSV"):
        read_pairs(tmp_path / "absent.csv")


def test_bad_rows_are_refused_before_the_pipeline_starts(photos: list[Path], tmp_path: Path):
    csv = labelled_pairs(photos, tmp_path, extra="a.jpg,b.jpg,1\n")
    run = PipelineRun(ModelOptions(tmp_path / "no-detector.onnx", tmp_path / "no-embedder.onnx"))
    with pytest.raises(SpecError, match="row 8: .*a.jpg does not exist"):  # not the missing models
        compare_pairs(PairsOptions(csv, run=run))
    with pytest.raises(SpecError, match="threshold is a cosine between -1 and 1, got 2"):
        PairsOptions(csv, threshold=2)


def test_the_precision_each_model_ran_in_is_recorded_as_compare_records_it(
    models_dir: Path, photos: list[Path], tmp_path: Path
):
    """Under auto (the default), with no twin and no BF16 proof beside the official files: fp32, and why."""
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"{photos[0]},{photos[1]}\n")
    result = compare_pairs(PairsOptions(csv, run=official_run(models_dir), json=tmp_path / "r.json"))
    recorded = json.loads((tmp_path / "r.json").read_text())["precision"]
    assert {role: (r["file"], r["precision"]) for role, r in recorded.items()} == {
        "detector": ("det_500m.onnx", "fp32"),
        "embedder": ("mobilefacenet_128d.onnx", "fp32"),
    }
    assert "not bf16: BF16 runs on the openvino backend only, not on ort-cpu" in recorded["embedder"]["why"]
    assert result.to_dict()["precision"] == recorded
