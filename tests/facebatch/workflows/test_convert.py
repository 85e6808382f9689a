"""convert --fp16: proven before it is written, at FP16 tolerances, with a sidecar; a graph
that loses too much in FP16 leaves nothing behind."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facebatch.configs.model_file import OUR_SPEC, read_model_file
from facebatch.configs.precision import FP16_INDEPENDENCE_ATOL, Precision
from facebatch.core.errors import SpecError
from facebatch.verify.reference import onnx_reference
from facebatch.verify.verify_job import VerifyOptions
from facebatch.verify.verify_job import run_checks as verify_model
from facebatch.workflows.convert import ConvertOptions, convert_fp16, default_fp16_path
from facebatch.workflows.fix import fix_onnx
from tests.conftest import slow_fixture


@pytest.fixture(scope="module")
def converted(small_detector: Path, photos, tmp_path_factory: pytest.TempPathFactory):
    source = tmp_path_factory.mktemp("convert") / small_detector.name
    source.write_bytes(small_detector.read_bytes())
    source.with_suffix(".json").write_bytes(small_detector.with_suffix(".json").read_bytes())
    return convert_fp16(source, options=ConvertOptions(photos=photos, batch_sizes=(1, 2, 8))), source


def test_a_real_detector_converts_passes_its_gate_and_is_written_with_a_sidecar(converted):
    result, source = converted
    assert result.written and result.path == default_fp16_path(source) and result.path.is_file()
    assert result.report.passed and result.report.precision == "fp16" and result.report.strict
    check4 = next(c for c in result.report.checks if c.number == 4)
    decoded = check4.data["decoded"]
    assert decoded and decoded[0]["passed"] and "decoded faces" in check4.summary  # trained weights: faces compared
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["precision"] == "fp16" and sidecar["source"]["sha256"] == read_model_file(source).sha256
    assert sidecar["conversion"]["fp16_io"] is False and "Resize" in sidecar["conversion"]["kept_fp32_in_graph"]
    assert sidecar["tolerances"]["score_8"]["atol"] == 0.01 and sidecar["proof"]["passed"]
    assert sidecar["weights"]["kind"] == "onnx"  # carried over, so verify --reference torch can rebuild the model


def test_verify_reads_the_precision_and_applies_the_fp16_gate(converted, photos):
    result, source = converted
    report = verify_model(
        result.path, VerifyOptions(batch_sizes=(1, 2), photos=photos[:2], reference=onnx_reference(source))
    )
    assert report.passed and report.precision == "fp16" and report.options["atol"] == FP16_INDEPENDENCE_ATOL
    fp32 = verify_model(source, VerifyOptions(batch_sizes=(1, 2), photos=photos[:2]))
    assert fp32.precision == "fp32" and fp32.options["atol"] == 1e-5


def test_a_foreign_batch1_embedder_is_refused_until_fixed_then_converts(models_dir: Path, photos, tmp_path: Path):
    out = tmp_path / "mobilefacenet_fp16.onnx"
    refused = convert_fp16(models_dir / "mobilefacenet_128d.onnx", out, ConvertOptions(batch_sizes=(1, 4)))
    assert not refused.written and "2 layout" in refused.report.failure_line() and not out.exists()  # batch fixed to 1
    fixed = fix_onnx(models_dir / "mobilefacenet_128d.onnx", tmp_path / "mobilefacenet_batch.onnx").path
    result = convert_fp16(fixed, out, ConvertOptions(photos=photos, batch_sizes=(1, 4)))
    assert result.written, result.report.failure_line()
    check4 = next(c for c in result.report.checks if c.number == 4)
    cosine = min(d["min_cosine"] for r in check4.data["reports"] for d in r["outputs"])
    assert cosine >= 0.999
    again = read_model_file(out)
    assert again.source == OUR_SPEC and again.spec.precision is Precision.FP16 and again.spec.embedding_size == 128


def overflowing_embedder(path: Path) -> Path:
    """An 'embedder' whose first weight (5e4) FP16 clamps to 1e4: the embedding's direction changes."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 112, 112])
    y = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 3])
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Mul", ["flat", "w"], ["embedding"]),
    ]
    weights = numpy_helper.from_array(np.array([5e4, 1e3, 1e3], np.float32), "w")
    model = helper.make_model(
        helper.make_graph(nodes, "clamped", [x], [y], [weights]),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    onnx.save(model, path)
    return path


def test_a_graph_that_loses_too_much_in_fp16_is_refused_and_nothing_is_replaced(tmp_path: Path):
    source = overflowing_embedder(tmp_path / "clamped.onnx")
    out = tmp_path / "clamped_fp16.onnx"
    out.write_bytes(b"an earlier file")
    result = convert_fp16(source, out, ConvertOptions(batch_sizes=(1, 2)))
    assert not result.written and result.conversion.clamped == 1
    assert "4 reference parity" in result.report.failure_line()
    assert out.read_bytes() == b"an earlier file" and not result.sidecar.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clamped.onnx", "clamped_fp16.onnx"]  # no temp file left


@pytest.fixture(scope="module")
@slow_fixture("exports a model from torch")
def real_500m_320(models_dir: Path, photos, tmp_path_factory: pytest.TempPathFactory):
    """The real SCRFD-500M at 320 and its FP16 ONNX, proven on every fixture photo at batch 1 and 32: the case whose
    FP16 background boxes (0.16 stride units off at batch 32, 45 elements) an element-wise gate failed."""
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd

    out = tmp_path_factory.mktemp("real_500m_320")
    source = export_scrfd(
        ScrfdExportRequest(
            weights=models_dir / "det_500m.onnx",
            height=320,
            width=320,
            out_dir=out,
            photos=photos,
            parity_batch_sizes=(1, 2),
        )
    ).onnx_path
    return source, convert_fp16(source, options=ConvertOptions(photos=photos, batch_sizes=(1, 32)))


def test_fp16_of_a_real_detector_is_judged_where_faces_can_come_from(real_500m_320):
    source, result = real_500m_320
    assert result.written, result.report.failure_line()
    check4 = next(c for c in result.report.checks if c.number == 4)
    assert "anchors scoring >= 0.02" in " ".join(check4.data["notes"])
    assert check4.data["decoded"][0]["passed"] and "the same" in check4.summary


def clamp_one_conv(fp16: Path, out: Path, conv: int = 10, fraction: float = 0.5) -> Path:
    """The FP16 graph with one conv's weights clamped at ``fraction`` of their largest magnitude (what an overflowing
    conversion does to a layer): an error that reaches real faces."""
    model = onnx.load(str(fp16))
    name = [n for n in model.graph.node if n.op_type == "Conv"][conv].input[1]
    weight = next(i for i in model.graph.initializer if i.name == name)
    values = numpy_helper.to_array(weight)
    limit = fraction * np.abs(values).max()
    weight.CopyFrom(numpy_helper.from_array(np.clip(values, -limit, limit).astype(values.dtype), name))
    onnx.save(model, str(out))
    return out


def test_an_fp16_detector_with_a_clamped_weight_still_fails(real_500m_320, photos, tmp_path: Path):
    source, result = real_500m_320
    broken = clamp_one_conv(result.path, tmp_path / "clamped_fp16.onnx")
    report = verify_model(broken, VerifyOptions(batch_sizes=(1, 32), photos=photos, reference=onnx_reference(source)))
    check4 = next(c for c in report.checks if c.number == 4)
    assert not report.passed and check4.status == "fail"
    failed = [d for r in check4.data["reports"] for d in r["outputs"] if not d["passed"]]
    assert any(
        d["name"].startswith("bbox") and "anchors scoring" in d["judged"] for d in failed
    )  # boxes of real faces moved
    assert not all(d["passed"] for d in check4.data["decoded"])  # and the decoded faces differ


def test_convert_never_overwrites_its_source_and_refuses_fp16_input(converted):
    result, source = converted
    with pytest.raises(SpecError, match="never overwrites its source"):
        convert_fp16(source, source)
    with pytest.raises(SpecError, match="already fp16"):
        convert_fp16(result.path, result.path.with_name("again.onnx"))
    with pytest.raises(SpecError, match="out must name an .onnx file, not "):
        convert_fp16(source, source.with_suffix(".plan"))
