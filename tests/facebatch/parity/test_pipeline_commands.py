"""detect, embed, compare, index and search both ways — the command line and the Python API — on the real
fixtures: the same results, and the same refusals (an unproven INT8 file, a classifier as the embedder, an
unreadable query photo named, not dropped)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from facebatch import api
from facebatch.cli import main
from facebatch.core.errors import SpecError
from tests.facebatch.parity.both_ways import assert_same_refusal, error_lines

FAST = ["--threads", "1", "--lanes", "1"]  # one lane: the same batches both ways, and a quiet machine


def _unproven_int8(model: Path, folder: Path) -> Path:
    """A copy of ``model`` that says it is INT8 and has no proof (no sidecar of its own): what the pipeline
    must refuse, whatever made the file."""
    loaded = onnx.load(str(model))
    props = {p.key: p for p in loaded.metadata_props}
    if "precision" in props:
        props["precision"].value = "int8"
    else:
        loaded.metadata_props.add(key="precision", value="int8")
    target = folder / f"{model.stem}_int8.onnx"
    onnx.save(loaded, str(target))
    return target


def test_detect_and_embed_give_the_same_files(
    real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path
):
    few = [str(p) for p in photos[:3]]
    models = ["--detector", str(real_detector), "--embedder", str(batch_embedder)]
    assert main(["detect", *few, "--detector", str(real_detector), "--json", str(tmp_path / "cli.json"), *FAST]) == 0
    found = api.detect(
        few, real_detector, json=tmp_path / "api.json", threads=1, settings=api.PipelineSettings(lanes=1)
    )
    cli_json, api_json = (json.loads((tmp_path / f"{w}.json").read_text()) for w in ("cli", "api"))
    cli_json.pop("command")
    assert cli_json == api_json and len(found.photos) == 3 and not found.failed

    assert main(["embed", *few, *models, "-o", str(tmp_path / "cli.npz"), *FAST]) == 0
    api.embed(
        few, tmp_path / "api.npz", real_detector, batch_embedder, threads=1, settings=api.PipelineSettings(lanes=1)
    )
    with np.load(tmp_path / "cli.npz") as ours, np.load(tmp_path / "api.npz") as theirs:
        assert ours.files == theirs.files
        for name in ours.files:
            assert np.array_equal(ours[name], theirs[name]), name


def test_compare_gives_the_same_verdict(real_detector: Path, batch_embedder: Path, photos: list[Path], capsys):
    first, second = photos[0], photos[1]
    models = ["--detector", str(real_detector), "--embedder", str(batch_embedder)]
    assert main(["compare", str(first), str(second), *models, "--json", "-", *FAST]) == 0
    printed = json.loads(capsys.readouterr().out)
    result = api.compare(
        first, second, real_detector, batch_embedder, threads=1, settings=api.PipelineSettings(lanes=1)
    )
    assert result.to_dict() == printed


def test_an_unproven_int8_file_is_refused_both_ways(
    real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, capsys
):
    """Before: the API ran an INT8 file whose gate never passed (the refusal lived in the CLI only)."""
    int8 = _unproven_int8(real_detector, tmp_path)
    photo = str(photos[0])
    error = assert_same_refusal(["detect", photo, "--detector", str(int8)], lambda: api.detect([photo], int8), capsys)
    assert error.field == "detector" and "has no sidecar .json of its own" in str(error)
    with pytest.raises(SpecError, match="has no sidecar .json of its own"):
        with api.open_pipeline(int8, batch_embedder):
            pass
    out = tmp_path / "gallery"
    assert_same_refusal(
        ["index", photo, "--out", str(out), "--detector", str(int8), "--embedder", str(batch_embedder)],
        lambda: api.index([photo], out, detector=int8, embedder=batch_embedder),
        capsys,
    )
    assert not out.exists()  # refused before the gallery was made


def test_a_classifier_is_not_taken_for_a_face_embedder_both_ways(
    real_detector: Path, models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    """Before: api.open_pipeline / api.index ran any embedder; the doubt check lived in the CLI only."""
    from tests.facebatch.cli.test_new_user import classifier as make_classifier  # 10 classes, an [N,3,H,W] input

    classifier = make_classifier(tmp_path / "classifier.onnx")
    photo = str(photos[0])
    error = assert_same_refusal(
        [
            "embed",
            photo,
            "--detector",
            str(real_detector),
            "--embedder",
            str(classifier),
            "-o",
            str(tmp_path / "x.npz"),
        ],
        lambda: api.embed([photo], tmp_path / "x.npz", real_detector, classifier),
        capsys,
    )
    assert error.field == "embedder" and "does not look like a face embedder" in str(error)
    with pytest.raises(SpecError, match="does not look like a face embedder"):
        with api.open_pipeline(real_detector, classifier):
            pass


@pytest.fixture(scope="module")
def gallery(real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path_factory) -> Path:
    pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
    out = tmp_path_factory.mktemp("parity") / "gallery"
    api.index(photos[:4], out, detector=real_detector, embedder=batch_embedder, threads=1)
    return out


def test_index_gives_the_same_gallery(
    real_detector: Path, batch_embedder: Path, photos: list[Path], gallery: Path, tmp_path: Path
):
    out = tmp_path / "cli-gallery"
    models = ["--detector", str(real_detector), "--embedder", str(batch_embedder)]
    assert main(["index", *(str(p) for p in photos[:4]), "--out", str(out), *models, "--threads", "1"]) == 0
    ours, theirs = (json.loads((g / "manifest.json").read_text()) for g in (out, gallery))
    for key in ("models", "embedding_size", "faces_mode", "settings", "counts", "failed"):
        assert ours[key] == theirs[key], key
    assert {k: v for k, v in ours["index"].items() if k != "built"} == {
        k: v for k, v in theirs["index"].items() if k != "built"
    }


def test_index_refuses_a_recall_that_is_no_fraction_both_ways(
    real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, capsys
):
    out = tmp_path / "never"
    models = ["--detector", str(real_detector), "--embedder", str(batch_embedder)]
    error = assert_same_refusal(
        ["index", str(photos[0]), "--out", str(out), *models, "--recall", "1.5"],
        lambda: api.index([photos[0]], out, detector=real_detector, embedder=batch_embedder, recall=1.5),
        capsys,
    )
    assert error.field == "recall" and not out.exists()


def test_search_names_an_unreadable_photo_both_ways(gallery: Path, photos: list[Path], tmp_path: Path, capsys):
    """Before: api.search dropped a query photo it could not read without a word; the CLI named it, exit 1."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all")
    queries = [str(photos[0]), str(broken)]
    code = main(["search", *queries, "--gallery", str(gallery), "--json", str(tmp_path / "cli.json"), *FAST])
    lines = error_lines(capsys)
    assert code == 1 and len(lines) == 1 and "broken.jpg" in lines[0] and "could not be read" in lines[0]
    result = api.search(queries, gallery, threads=1, settings=api.PipelineSettings(lanes=1))
    assert not result.complete and [u["photo"] for u in result.unreadable] == [str(broken)]
    assert result.to_dict() == json.loads((tmp_path / "cli.json").read_text())
    assert len(result) == len(result.faces) > 0 and result[0].matches  # still the list of query faces it was


def test_search_refuses_another_detector_both_ways(gallery: Path, models_dir: Path, photos: list[Path], capsys):
    other = models_dir / "det_500m.onnx"
    photo = str(photos[0])
    assert_same_refusal(
        ["search", photo, "--gallery", str(gallery), "--detector", str(other)],
        lambda: api.search([photo], gallery, detector=other),
        capsys,
    )


def test_embed_prints_the_index_it_writes(
    real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, capsys
):
    """Before: embed --json - printed the detections document, while --json FILE wrote the .npz rows' index."""
    few = [str(photos[0])]
    models = ["--detector", str(real_detector), "--embedder", str(batch_embedder)]
    assert main(["embed", *few, *models, "-o", str(tmp_path / "a.npz"), "--json", "-", *FAST]) == 0
    printed = json.loads(capsys.readouterr().out)
    settings = api.PipelineSettings(lanes=1)
    api.embed(
        few, tmp_path / "a.npz", real_detector, batch_embedder, json=tmp_path / "a.json", threads=1, settings=settings
    )
    written = json.loads((tmp_path / "a.json").read_text())
    printed.pop("command", None)
    assert printed == written and written["embeddings"] == "a.npz"


def test_compare_pairs_gives_the_same_report_and_refusal_both_ways(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    from tests.facebatch.workflows.test_pairs import labelled_pairs

    detector, embedder = models_dir / "det_500m.onnx", models_dir / "mobilefacenet_128d.onnx"
    models = ["--detector", str(detector), "--embedder", str(embedder)]
    csv = labelled_pairs(photos, tmp_path, extra="{obama_1},{no_face},0\n")
    assert main(["compare", "--pairs", str(csv), *models, "--json", "-", *FAST]) == 1  # the photo with no face
    printed = json.loads(capsys.readouterr().out)
    result = api.compare_pairs(csv, detector, embedder, threads=1, settings=api.PipelineSettings(lanes=1))
    assert result.to_dict() == printed and not result.complete and printed["scores"]["accuracy"] == 1.0
    bad = labelled_pairs(photos, tmp_path, extra="{obama_1},{obama_2},maybe\n")
    error = assert_same_refusal(
        ["compare", "--pairs", str(bad), *models], lambda: api.compare_pairs(bad, detector, embedder), capsys
    )
    assert error.field == "pairs" and "row 8: label 'maybe' is not one" in str(error)
