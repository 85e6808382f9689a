"""What is this file? Our artifacts by their metadata, anyone's SCRFD by its outputs, an
embedder by its one output; flags that would be silently ignored are refused; one family
rule (detect_family) for all."""

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from facebatch.configs.arcface import arcface_spec
from facebatch.configs.embedder import EmbedderDescription
from facebatch.configs.family import detect_family, scrfd_landmarks
from facebatch.configs.model_file import read_model_file
from facebatch.configs.scrfd import released_head_layout, scrfd_spec
from facebatch.configs.spec import Family
from facebatch.configs.spec_io import SPEC_PROP, spec_to_dict
from facebatch.core.errors import SpecError
from facebatch.verify.sizes import check_sizes
from tests.data.graphs import folded_head


def heads_only(path: Path, channels: list[int], size: int | str = "h") -> Path:
    """A graph whose outputs look like SCRFD heads (declared dims only; never run)."""
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])
    outs = [helper.make_tensor_value_info(f"o{i}", TensorProto.FLOAT, [None, c]) for i, c in enumerate(channels)]
    nodes = [helper.make_node("ReduceMean", ["input.1"], [f"o{i}"], keepdims=0) for i in range(len(channels))]
    onnx.save(helper.make_model(helper.make_graph(nodes, "heads", [x], outs)), str(path))
    return path


def ours(path: Path, spec) -> Path:
    """A small graph carrying one of our specs in its metadata, as the exporter stamps it."""
    model = folded_head(batch="batch")
    helper.set_model_props(model, {SPEC_PROP: json.dumps(spec_to_dict(spec))})
    onnx.save(model, str(path))
    return path


def test_one_family_rule(tmp_path: Path, models_dir: Path):
    assert detect_family(onnx.load(str(models_dir / "det_500m.onnx"))) is Family.SCRFD
    assert detect_family(onnx.load(str(models_dir / "mobilefacenet_128d.onnx"))) is Family.EMBEDDER
    assert scrfd_landmarks(onnx.load(str(heads_only(tmp_path / "six.onnx", [1, 1, 1, 4, 4, 4])))) is False
    assert detect_family(onnx.load(str(heads_only(tmp_path / "odd.onnx", [1, 1, 4, 4, 4, 4])))) is None
    stamped = ours(tmp_path / "a.onnx", arcface_spec("mbf"))
    assert detect_family(onnx.load(str(stamped))) is Family.ARCFACE  # the metadata wins over the graph's outputs


def test_our_artifacts_describe_themselves(tmp_path: Path):
    path = ours(tmp_path / "det.onnx", scrfd_spec("scrfd_500m_bnkps", released_head_layout(True), 320, 320))
    target = read_model_file(path)
    assert target.is_ours and target.fixed_size and target.spec.input_size == (320, 320)
    with pytest.raises(
        SpecError, match=r"runs at 320x320 only \(exported with a fixed height and width\); drop size 640x640"
    ) as refused:
        check_sizes(target, [(640, 640)])
    assert refused.value.field == "size"
    with pytest.raises(SpecError, match="carries its own facebatch spec; drop embedder_spec and the values") as refused:
        read_model_file(path, EmbedderDescription(color_order="BGR"))
    assert refused.value.field == "embedder_spec"
    dynamic = ours(
        tmp_path / "dyn.onnx", scrfd_spec("scrfd_500m_bnkps", released_head_layout(True), 320, 320, dynamic_size=True)
    )
    assert check_sizes(read_model_file(dynamic), [(736, 1280), (320, 480)]) == [(736, 1280), (320, 480)]


def test_foreign_detectors_default_to_insightfaces_size_and_refuse_embedder_flags(models_dir: Path, tmp_path: Path):
    target = read_model_file(models_dir / "det_500m.onnx")
    assert (
        target.spec.input_size == (640, 640)
        and not target.fixed_size
        and target.spec.head == released_head_layout(True)
    )
    assert "checking at 640x640, insightface's detection size (give another size to check at it)" in target.notes[0]
    assert read_model_file(models_dir / "det_500m.onnx", size=(320, 320)).spec.input_size == (320, 320)
    with pytest.raises(SpecError, match=r"takes square inputs only; pass a square size such as 480 instead of 320x480"):
        read_model_file(models_dir / "det_500m.onnx", size=(320, 480))  # insightface names height and width '?'
    with pytest.raises(SpecError, match="is an SCRFD face detector; drop embedder_spec"):
        read_model_file(models_dir / "det_500m.onnx", EmbedderDescription(mean=(0.0, 0.0, 0.0)))
    fixed = read_model_file(models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx")
    assert fixed.fixed_size and fixed.notes == []
    with pytest.raises(SpecError, match="scrfd_500m_bnkps_640_keepbatch.onnx runs at 640x640 only; drop size 320x320"):
        check_sizes(read_model_file(models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx", size=(320, 320)), [(320, 320)])


def test_embedders_and_files_that_are_neither(models_dir: Path, tmp_path: Path):
    assumed = read_model_file(models_dir / "mobilefacenet_128d.onnx")
    assert (
        assumed.family is Family.EMBEDDER
        and assumed.spec.embedding_size == 128
        and "assuming ArcFace preprocessing" in assumed.notes[0]
    )
    described = read_model_file(models_dir / "mobilefacenet_128d.onnx", EmbedderDescription(color_order="BGR"))
    assert described.notes == [] and not described.spec.normalize.rgb
    with pytest.raises(SpecError, match="is neither an SCRFD detector .* nor an embedder"):
        read_model_file(heads_only(tmp_path / "odd.onnx", [1, 4]))
