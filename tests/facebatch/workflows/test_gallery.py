"""Galleries and precisions (``index``/``search`` under ``auto``, the default): a manifest records the precision
each model computed in, ``index`` never picks BF16 under auto and refuses to add rows in another precision than the
gallery's, ``search`` follows the gallery's record under auto (its INT8 twin, BF16 where recorded) and refuses
another precision asked for, an ``embed`` .npz records its precisions and is refused in a gallery of others. Every
case ends in the gallery's own models and precisions, or in one line. The BF16 records are written by
``write_record`` with stated figures for a stated CPU (``HERE``), so these run on any CPU; nothing here computes in
BF16."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import FacebatchError, SpecError
from facebatch.engines.gallery.defaults import MANIFEST
from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.manifest import read_manifest
from facebatch.engines.gallery.search import check_gallery_models
from facebatch.engines.gallery.store import Gallery
from facebatch.engines.pipeline.options import PipelineOptions
from facebatch.workflows.faces import EmbedOptions, PipelineRun, embed
from facebatch.workflows.gallery import IndexOptions, SearchOptions, index, search
from facebatch.workflows.models import ModelOptions, choose_models
from tests.facebatch.workflows.test_models import (
    DETECTOR_FIGURES,
    EMBEDDER_FIGURES,
    HERE,
    NO_BF16,
    SIZE,
    recorded,
)


def run(detector: Path | None, embedder: Path | None, precision: str = "auto", **how) -> PipelineRun:
    """One lane, one thread; ``how``: backend, openvino (the CPU the BF16 proofs are judged for)."""
    models = ModelOptions(detector, embedder, size=SIZE, precision=precision, openvino=how.get("openvino", HERE))
    return PipelineRun(models, how.get("backend", "ort-cpu"), PipelineOptions(lanes=1), threads=1)


@pytest.fixture(scope="module")
def models(models_dir: Path, batch_embedder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """det_500m with a passing BF16 proof (at 160, for ``HERE``) and mobilefacenet with a failing one."""
    folder = tmp_path_factory.mktemp("gallery_models")
    detector = Path(shutil.copyfile(models_dir / "det_500m.onnx", folder / "det_500m.onnx"))
    embedder = Path(shutil.copyfile(batch_embedder, folder / batch_embedder.name))
    recorded(detector, False, DETECTOR_FIGURES, True, [])
    recorded(embedder, True, EMBEDDER_FIGURES, False, ["a face's cosine to its FP32 embedding is 0.9860, below 0.999"])
    return detector, embedder


@pytest.fixture(scope="module")
def indexed(models, photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three fixture photos indexed under auto on openvino, where the detector's BF16 proof passes for ``HERE``."""
    out = tmp_path_factory.mktemp("gallery_auto") / "gallery"
    index(IndexOptions(photos[:3], out, run=run(*models, backend="openvino")))
    return out


def gallery_in(indexed: Path, tmp_path: Path, **precisions: str) -> Path:
    """A copy of the indexed gallery whose manifest records ``precisions`` per role ("" drops the record, as a
    gallery written before it was recorded)."""
    gallery = Path(shutil.copytree(indexed, tmp_path / "gallery"))
    data = json.loads((gallery / MANIFEST).read_text())
    for role, precision in precisions.items():
        data["models"][role].pop("precision", None)
        data["models"][role] |= {"precision": precision} if precision else {}
    (gallery / MANIFEST).write_text(json.dumps(data))
    return gallery


def one_line(error: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(error.value)
    return str(error.value)


def test_auto_is_the_default_precision_of_the_pipeline_options():
    assert ModelOptions().precision == "auto" and PipelineRun().models.precision == "auto"


def test_index_records_what_each_model_computed_in_and_auto_never_picks_bf16(indexed: Path, models):
    recorded_models = json.loads((indexed / MANIFEST).read_text())["models"]
    assert (recorded_models["detector"]["precision"], recorded_models["embedder"]["precision"]) == ("fp32", "fp32")
    manifest = read_manifest(indexed)
    assert manifest.detector.sha256 == read_model_file(models[0]).sha256
    # the same options embedding photos (not a gallery) would run the detector in BF16: only galleries refrain
    assert choose_models(run(*models).models, backend="openvino").detector.precision == "bf16"


def test_search_under_auto_follows_the_gallerys_record(indexed: Path, photos: list[Path], models, tmp_path: Path):
    found = search(SearchOptions([photos[0]], indexed, run=run(None, None)))
    assert len(found) and found[0].matches[0].cosine > 0.99  # the photo finds its own faces
    from facebatch.workflows.gallery import gallery_precisions

    root = gallery_in(indexed, tmp_path, detector="bf16")
    bf16 = Gallery(root, read_manifest(root))
    asked = gallery_precisions("auto", bf16)
    assert asked == {"detector": "bf16", "embedder": "fp32"}
    chosen = choose_models(run(*models).models, asked=asked)
    assert (chosen.detector.precision, chosen.embedder.precision) == ("bf16", "fp32")
    assert gallery_precisions("fp32", bf16) == {}  # asked for: checked against the record instead


def test_search_refuses_another_precision_than_the_gallerys_in_one_line(
    indexed: Path, photos: list[Path], tmp_path: Path
):
    bf16 = gallery_in(indexed, tmp_path, detector="bf16")
    with pytest.raises(SpecError) as refused:
        search(SearchOptions([photos[0]], bf16, run=run(None, None, "fp32")))
    assert refused.value.field == "precision"
    assert one_line(refused).startswith(
        "the gallery's detector 'det_500m' computed in bf16 when it was indexed; search would compute it in fp32: "
        "embeddings of two precisions must not mix; search with precision bf16 (on the openvino backend)"
    )
    with pytest.raises(SpecError) as refused:  # auto follows the record: on a CPU without BF16 that is refused
        search(SearchOptions([photos[0]], bf16, run=run(None, None, openvino=NO_BF16)))
    assert refused.value.field == "precision" and "cannot run in precision bf16" in one_line(refused)
    with pytest.raises(SpecError, match="precision bf16 runs on the openvino backend only, not on ort-cpu"):
        search(SearchOptions([photos[0]], bf16, run=run(None, None)))  # proven here, but not on this backend


def test_search_in_bf16_of_a_gallery_indexed_in_fp32_is_refused(indexed: Path, photos: list[Path], models):
    with pytest.raises(SpecError) as refused:  # both models asked in bf16: the embedder's failed proof first
        search(SearchOptions([photos[0]], indexed, run=run(*models, "bf16", backend="openvino")))
    assert "embedder mobilefacenet_128d_batch.onnx cannot run in precision bf16" in one_line(refused)
    files = [read_model_file(models[0], size=SIZE), read_model_file(models[1])]
    with pytest.raises(SpecError) as refused:  # a detector proven in bf16 beside an fp32 embedder: still refused
        check_gallery_models(Gallery(indexed, read_manifest(indexed)), *files, {"detector": "bf16"})
    assert one_line(refused).startswith(
        "the gallery's detector 'det_500m' computed in fp32 when it was indexed; search would compute it in bf16: "
    )
    assert one_line(refused).endswith("search with precision fp32, int8 or auto")


def test_index_into_a_gallery_of_another_precision_is_refused(
    indexed: Path, photos: list[Path], tmp_path: Path, models
):
    bf16 = gallery_in(indexed, tmp_path, detector="bf16")
    before = (bf16 / MANIFEST).read_text()
    with pytest.raises(GalleryError) as refused:
        index(IndexOptions(photos[3:4], bf16, run=run(*models)))
    assert refused.value.field == "precision" and "index with precision bf16" in one_line(refused)
    assert (bf16 / MANIFEST).read_text() == before  # refused before any work


def test_a_gallery_written_before_the_record_reads_as_the_files_own_and_gets_it(
    indexed: Path, photos: list[Path], tmp_path: Path, models
):
    older = gallery_in(indexed, tmp_path, detector="", embedder="")
    assert read_manifest(older).detector.precision == ""
    assert len(search(SearchOptions([photos[0]], older, run=run(None, None))))  # auto: the files as they are
    index(IndexOptions(photos[3:4], older, run=run(*models)))
    assert read_manifest(older).detector.precision == "fp32"  # recorded with the next commit


def npz_with(path: Path, **arrays: str) -> Path:
    """``path`` rewritten with ``arrays`` set ("" removes one: an .npz of an older facebatch)."""
    with np.load(path, allow_pickle=False) as data:
        kept = {name: data[name] for name in data.files}
    for name, value in arrays.items():
        kept.pop(name, None)
        kept |= {name: np.array(value)} if value else {}
    np.savez(path, **kept)
    return path


def test_embeds_npz_records_its_precisions_and_search_checks_them(
    indexed: Path, photos: list[Path], tmp_path: Path, models
):
    npz = tmp_path / "query.npz"
    embed(EmbedOptions([photos[0]], npz, run=run(*models)))
    with zipfile.ZipFile(npz) as archive:
        assert {"detector_precision.npy", "embedder_precision.npy"} <= set(archive.namelist())
    with np.load(npz) as data:
        assert (str(data["detector_precision"]), str(data["embedder_precision"])) == ("fp32", "fp32")
    assert len(search(SearchOptions([npz], indexed)))
    with pytest.raises(SpecError) as refused:  # computed in FP32, searched in a gallery computed in BF16
        search(SearchOptions([npz], gallery_in(indexed, tmp_path, detector="bf16")))
    assert refused.value.field == "precision"
    assert f"query {npz} computed it in fp32: embeddings of two precisions must not mix; embed the photos again " in (
        one_line(refused)
    )
    with pytest.raises(FacebatchError, match="query .* computed it in bf16"):
        search(SearchOptions([npz_with(npz, detector_precision="bf16")], indexed))
    with pytest.raises(SpecError, match="records a detector precision facebatch does not write"):
        search(SearchOptions([npz_with(npz, detector_precision="bf17")], indexed))
    older = npz_with(npz, detector_precision="", embedder_precision="")
    assert len(search(SearchOptions([older], indexed)))  # an older .npz: the files' own precision


@pytest.mark.slow
def test_an_int8_twin_gallery_is_searched_with_the_twin_or_refused_on_another_cpu_class(
    small_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, monkeypatch
):
    """Quantized for real (SCRFD-500M at 64, 4 photos, a loose gate): index under auto records the twin (its
    sha256, int8); search under auto with the FP32 file named runs the twin; on another CPU class, where the twin's
    gate did not pass, search is refused in one line."""
    from facebatch.workflows.quantize import QuantizeOptions, quantize_int8

    fp32 = Path(shutil.copyfile(small_detector, tmp_path / small_detector.name))
    shutil.copyfile(small_detector.with_suffix(".json"), fp32.with_suffix(".json"))
    quantizing = QuantizeOptions(photos=photos[:4], bench=False, max_drop=0.5, recipes=("u8s8",))
    twin = quantize_int8(fp32, quantizing, tmp_path / f"{fp32.stem}_int8.onnx")
    assert twin.passed
    how = PipelineRun(ModelOptions(fp32, batch_embedder), pipeline=PipelineOptions(lanes=1), threads=1)
    out = tmp_path / "gallery"
    index(IndexOptions(photos[:2], out, run=how))
    detector = read_manifest(out).detector
    assert (detector.sha256, detector.precision) == (read_model_file(twin.path).sha256, "int8")
    named = search(SearchOptions([photos[0]], out, run=how)).to_dict()["faces"]  # the twin, by the gallery's sha256
    assert named == search(SearchOptions([photos[0]], out, run=PipelineRun(threads=1))).to_dict()["faces"]
    with pytest.raises(SpecError, match="is not the one the gallery was built with"):
        search(SearchOptions([photos[0]], out, run=PipelineRun(ModelOptions(fp32, batch_embedder, precision="fp32"))))
    monkeypatch.setattr("facebatch.workflows.models.int8_cpu_class", lambda: "another_class")
    with pytest.raises(SpecError) as refused:
        search(SearchOptions([photos[0]], out, run=PipelineRun(ModelOptions(), threads=1)))
    assert refused.value.field == "detector" and "the pipeline runs INT8 only where the gate passed" in one_line(
        refused
    )
