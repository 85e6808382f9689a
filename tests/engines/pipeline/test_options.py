"""The pipeline's options and models refuse bad values before any work, each refusal about one field
(the name the command line's flag sets: the CLI names the flag, facebatch/cli/errors.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.options import FaceModels, PipelineOptions, PipelineSettings


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"lanes": 0}, "lanes", "lanes must be at least 1, got 0"),
        ({"batch_size": 0}, "batch_size", "batch_size must be at least 1, got 0"),
        ({"embed_batch_size": 0}, "embed_batch_size", "embed_batch_size must be at least 1, got 0"),
        ({"read_workers": -1}, "workers", "workers cannot be negative (read_workers=-1)"),
        ({"max_faces": -2}, "max_faces", "max_faces cannot be negative, got -2"),
        ({"max_photo_pixels": 0}, "max_photo_pixels", "max_photo_pixels must be at least 1, got 0"),
        ({"det_thresh": 0.0}, "det_thresh", "det_thresh must be a number in (0, 1], got 0.0"),
        ({"nms_thresh": 1.5}, "nms_thresh", "nms_thresh must be a number in (0, 1], got 1.5"),
        ({"det_thresh": "0.5"}, "det_thresh", "det_thresh must be a number in (0, 1], got '0.5'"),
    ],
)
def test_each_bad_option_is_refused_naming_its_field(options: dict, field: str, message: str):
    with pytest.raises(SpecError) as refused:
        PipelineOptions(**options)
    assert (refused.value.field, str(refused.value)) == (field, message)


def test_the_fields_are_the_flags_dests_so_the_command_line_names_its_flags():
    from facebatch.cli import build_parser
    from facebatch.cli.errors import error_line

    embed = build_parser()._subparsers._group_actions[0].choices["embed"]
    with pytest.raises(SpecError) as refused:
        PipelineOptions(read_workers=-1)
    assert error_line(refused.value, embed) == "--workers cannot be negative (read_workers=-1)"
    with pytest.raises(SpecError) as refused:
        PipelineOptions(embed_batch_size=0)
    assert error_line(refused.value, embed) == "--embed-batch-size must be at least 1, got 0"


def test_models_that_do_not_fit_name_the_model_to_change(real_detector: Path, batch_embedder: Path):
    detector, embedder = read_model_file(real_detector), read_model_file(batch_embedder)
    with pytest.raises(SpecError, match="is not a face detector; pass an SCRFD model") as refused:
        FaceModels(embedder.spec, (112, 112))
    assert refused.value.field == "detector" and str(refused.value).startswith("detector ")
    with pytest.raises(SpecError, match="is not an embedder") as refused:
        FaceModels(detector.spec, (640, 640), detector.spec)
    assert refused.value.field == "embedder" and str(refused.value).startswith("embedder ")
    oblong = replace(embedder.spec, input_size=(112, 96))
    with pytest.raises(
        SpecError, match="^embedder .*: faces are aligned onto square crops; this embedder takes 112x96"
    ):
        FaceModels(detector.spec, (640, 640), oblong)
    assert FaceModels(detector.spec, (640, 640), embedder.spec).alignment_template().shape == (5, 2)


def test_the_old_name_is_the_same_class_for_one_release():
    assert PipelineSettings is PipelineOptions
