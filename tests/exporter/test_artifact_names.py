"""Default artifact names: two different weight files exported at one size never take one name; the
model's own release files and seeded weights keep the names the docs show."""

from __future__ import annotations

from facebatch.configs.arcface import arcface_spec
from facebatch.configs.scrfd import released_head_layout, scrfd_spec
from facebatch.exporter.export_job import artifact_name
from facebatch.exporter.metadata import WeightsInfo


def detector(seeded: bool = False):
    return scrfd_spec("scrfd_10g_bnkps", released_head_layout(True), 320, 320, seeded=seeded)


def test_different_weights_at_one_size_get_different_default_names() -> None:
    mine = WeightsInfo("checkpoint", "/runs/a/my_finetune.pth", "1" * 64)
    theirs = WeightsInfo("checkpoint", "/runs/b/crowd-v2.pth", "2" * 64)
    names = {artifact_name(detector(), None, w) for w in (mine, theirs)}
    assert names == {"scrfd_10g_320_my_finetune_batch.onnx", "scrfd_10g_320_crowd-v2_batch.onnx"}
    # arcface_torch names every checkpoint backbone.pth: its sha256 tells them apart
    runs = [
        WeightsInfo("checkpoint", f"/work_dirs/{run}/backbone.pth", digit * 64)
        for run, digit in (("a", "3"), ("b", "4"))
    ]
    assert [artifact_name(arcface_spec("r18"), None, w) for w in runs] == [
        "arcface_r18_backbone-33333333_batch.onnx",
        "arcface_r18_backbone-44444444_batch.onnx",
    ]


def test_the_model_s_own_files_seeded_weights_and_a_given_name_keep_their_names() -> None:
    for path in ("models/det_10g.onnx", "scrfd_10g_bnkps.pth", "scrfd_10g.pth"):
        assert artifact_name(detector(), None, WeightsInfo("onnx", path, "5" * 64)) == "scrfd_10g_320_batch.onnx"
    assert (
        artifact_name(detector(seeded=True), None, WeightsInfo("seeded", seed=0)) == "scrfd_10g_320_seeded_batch.onnx"
    )
    official = WeightsInfo("onnx", "w600k_r50.onnx", "6" * 64)
    assert artifact_name(arcface_spec("r50"), None, official) == "arcface_w600k_r50_batch.onnx"
    assert artifact_name(detector(), "mine", WeightsInfo("checkpoint", "x.pth", "7" * 64)) == "mine.onnx"
