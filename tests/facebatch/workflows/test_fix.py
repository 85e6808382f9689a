"""``facebatch fix``: graph surgery that makes batch-1 graphs batch-keeping, proven frame by
frame before anything is written, then verified against the original."""

import json
from dataclasses import replace
from pathlib import Path

import onnx
import pytest

from facebatch.cli import main
from facebatch.core.errors import VerificationFailed
from facebatch.core.onnx_graph import io_dims
from facebatch.verify.lint import lint_graph
from facebatch.verify.reference import onnx_reference
from facebatch.verify.verify_job import VerifyOptions
from facebatch.verify.verify_job import run_checks as verify_model
from facebatch.workflows.fix import fix_onnx, repair_hint
from facebatch.workflows.fix_surgery import plan_repair
from tests.data.graphs import (
    batch_mean_leak,
    concat_pinned_reshape,
    constant_joined,
    dynamic_fold,
    expand_joined,
    fixed_size_resize,
    folded_head,
    frame_picker,
    with_symbolic_batch,
)

QUICK = VerifyOptions(batch_sizes=(1, 2, 3), sizes=((320, 320),))


def statuses(report) -> dict[int, str]:
    return {c.number: c.status for c in report.checks}


def test_only_graphs_fix_can_repair_get_the_hint(tmp_path: Path):
    leak = batch_mean_leak(tmp_path / "leak.onnx")  # mixes frames by value: no surgery repairs that
    assert not plan_repair(onnx.load(str(leak))).repairs_everything
    assert repair_hint(leak) is None
    folded_head(tmp_path / "head.onnx", batch=1)
    hint = repair_hint(tmp_path / "head.onnx")
    assert (
        hint is not None and hint.startswith("fix repairs this graph by surgery (") and "into head_batch.onnx" in hint
    )


def test_a_detector_that_keeps_a_batch_of_1_gets_the_hint_and_fix_says_what_it_changed(
    models_dir: Path, tmp_path: Path
):
    """Outputs [1, HW*2, C], Reshapes that keep the batch: only the declarations pin it. verify gave no hint and
    fix wrote the file with ``"repairs": []`` and no line saying what it changed."""
    source = models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx"
    report = verify_model(source, VerifyOptions(batch_sizes=(1, 2)))
    assert statuses(report)[2] == "fail" and not report.passed
    assert repair_hint(source) is not None and repair_hint(source).startswith("fix repairs this graph by surgery (2 ")
    result = fix_onnx(source, tmp_path / "kb.onnx")
    fixed = [line for line in result.lines() if line.startswith("fixed: ")]
    assert fixed == [
        "fixed: input images dim 0 fixed to 1 → symbolic dim 0 'batch': it takes any number of frames",
        "fixed: outputs out0, out1, out2, out3, out4, out5, out6, out7, out8 dim 0 fixed to 1 → symbolic dim 0 "
        "'batch': one result per frame on axis 0",
    ]
    assert len(json.loads(result.sidecar.read_text())["repairs"]) == 2
    assert verify_model(result.path, VerifyOptions(batch_sizes=(1, 2))).passed


@pytest.mark.parametrize("name", ["det_500m.onnx", "det_2.5g.onnx"])
def test_naively_batched_official_detectors_pass_after_fix(
    models_dir: Path, photos: list[Path], tmp_path: Path, name: str
):
    naive = with_symbolic_batch(models_dir / name, tmp_path / name)
    with_faces = replace(QUICK, photos=photos[:3])  # biden_1, biden_2, gauss: one face each
    assert not verify_model(naive, with_faces).passed
    fixed = fix_onnx(naive, tmp_path / "fixed.onnx", size=(320, 320))
    assert fixed.proof_max_diff <= 1e-5
    assert list(fixed.renamed.values())[:3] == ["score_8", "score_16", "score_32"]
    after = verify_model(fixed.path, replace(with_faces, reference=onnx_reference(models_dir / name), strict=True))
    assert after.passed, [c.summary for c in after.checks]
    assert statuses(after) == {1: "pass", 2: "pass", 3: "pass", 4: "pass", 5: "n/a", 6: "pass"}
    decoded = next(c for c in after.checks if c.number == 3)
    assert decoded.data["detections_alone"] == 3 and "max box diff 0 px" in decoded.summary


@pytest.mark.parametrize("name", ["det_500m.onnx", "mobilefacenet_128d.onnx"])
def test_fix_repairs_batch_1_graphs_and_proves_it(models_dir: Path, tmp_path: Path, name: str):
    options = QUICK if name.startswith("det") else VerifyOptions(batch_sizes=(1, 2, 3))
    before = verify_model(models_dir / name, options)
    assert not before.passed
    result = fix_onnx(models_dir / name, tmp_path / "fixed.onnx", size=options.sizes[0] if options.sizes else None)
    assert result.changes and result.proof_max_diff <= 1e-5
    assert verify_model(result.path, options).passed


def test_a_repair_that_cannot_be_proven_writes_nothing(tmp_path: Path):
    source = dynamic_fold(tmp_path / "fold.onnx")  # the frames fold into the rows through a shape computed at run time
    target = tmp_path / "out.onnx"
    target.write_bytes(b"yesterday's good file")
    with pytest.raises(VerificationFailed, match=r"outputs by inf \(> 1e-05\); nothing was written"):
        fix_onnx(source, target)
    assert target.read_bytes() == b"yesterday's good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold.onnx", "out.onnx"]


@pytest.mark.parametrize(
    "build, finding, change",
    [
        (
            fixed_size_resize,
            "Resize to constant sizes [1, 3, 8, 8] fixes dim 0 to 1",
            "sizes [1, 3, 8, 8] → [N, 3, 8, 8]",
        ),
        (
            concat_pinned_reshape,
            "Reshape's shape is Concat view_shape of a constant 1",
            "starts with the constant 1 (leading_one) → starts with 0",
        ),
        (
            expand_joined,
            "Concat joins the frames with Expand prior_expand's output, whose dim 0 is fixed by its constant shape (dim 0: 1)",
            "Expand prior_expand shape [1, 2, 4, 4] → [N, …]",
        ),
    ],
)
def test_constants_that_pin_the_batch_are_flagged_and_repaired(tmp_path: Path, build, finding: str, change: str):
    source = build(tmp_path / "pinned.onnx")
    naive = with_symbolic_batch(source, tmp_path / "naive.onnx")
    findings = [f.message for f in lint_graph(onnx.load(str(naive))) if f.check == "lint"]
    assert any(finding in message for message in findings), findings
    options = VerifyOptions(batch_sizes=(1, 2, 3))
    assert not verify_model(naive, options).passed
    result = fix_onnx(source, tmp_path / "fixed.onnx")
    assert any(change in c for c in result.changes), result.changes
    assert result.proof_max_diff <= 1e-5
    assert not [f for f in lint_graph(onnx.load(str(result.path))) if f.check == "lint"]
    assert verify_model(result.path, options).passed


def test_fix_refuses_to_overwrite_its_input(models_dir: Path, capsys):
    assert main(["fix", str(models_dir / "det_500m.onnx"), "-o", str(models_dir / "det_500m.onnx")]) == 2
    assert "never overwrites an input" in capsys.readouterr().err


def test_fix_cli_verifies_the_repair_against_its_original(models_dir: Path, photos: list[Path], tmp_path: Path, capsys):
    out = tmp_path / "det_500m_batch.onnx"
    argv = [
        "fix",
        str(models_dir / "det_500m.onnx"),
        "-o",
        str(out),
        "--batch-sizes",
        "1,3",
        "--size",
        "320",
        "--images",
        str(photos[0].parent),
        "--json",
        str(tmp_path / "fix.json"),
        "--strict",
    ]
    assert main(argv) == 0
    report = json.loads((tmp_path / "fix.json").read_text())
    checks = {c["number"]: c for c in report["checks"]}
    assert (
        report["passed"]
        and checks[4]["status"] == "pass"
        and "det_500m.onnx (run one frame at a time" in checks[4]["summary"]
    )
    assert checks[3]["status"] == "pass" and checks[3]["data"]["detections_per_frame_alone"][:3] == [1, 1, 1]
    assert "(≤ 1e-05)" in capsys.readouterr().out
    assert main(["fix", str(models_dir / "det_500m.onnx"), "-o", str(tmp_path / "x.onnx"), "--det-thresh", "1.5"]) == 2
    assert "--det-thresh must be a number in (0, 1], got 1.5" in capsys.readouterr().err


@pytest.mark.slow  # exports a model from torch
def test_an_scrfd_exported_at_a_fixed_size_and_naively_batched_is_repaired(models_dir: Path, tmp_path: Path):
    """det_500m's real weights in our torch SCRFD, exported the mmdet way (TorchScript at 1×3×640×640,
    then onnxsim), then its batch merely renamed: verify fails it, lint names both upsampling Resizes and
    the nine head Reshapes, fix repairs all eleven, and the repaired file passes verify."""
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, scrfd_model_with_weights
    from tests.data.official_layout import export_fixed_size_simplified

    model, _, _ = scrfd_model_with_weights(
        ScrfdExportRequest(weights=models_dir / "det_500m.onnx", height=640, width=640)
    )
    source = export_fixed_size_simplified(model, tmp_path / "scrfd_500m_640_fixed.onnx", 640)
    naive = with_symbolic_batch(source, tmp_path / "naive.onnx")
    findings = [f for f in lint_graph(onnx.load(str(naive))) if f.check == "lint"]
    assert sorted(f.op_type for f in findings) == ["Reshape"] * 9 + ["Resize"] * 2
    options = VerifyOptions(batch_sizes=(1, 2, 3))
    assert not verify_model(naive, options).passed
    result = fix_onnx(source, tmp_path / "fixed.onnx")
    assert len(result.changes) == 11 + 2 and sum("sizes [1, " in c for c in result.changes) == 2
    assert [c.split(" dim 0 ")[0] for c in result.changes[-2:]] == [
        "input input.1",
        "outputs " + ", ".join(o.name for o in onnx.load(str(source)).graph.output),
    ]  # the nodes, then the declared batch: the input's and the outputs' dim 0 fixed to 1 became symbolic
    assert result.proof_max_diff <= 1e-5
    assert verify_model(result.path, options).passed
    # fix of the naively batched file from the command line: its check runs the contaminated source one frame at a
    # time, as the proof does (batched, it used to end "output of shape [1, 38400, 1] matches no stride", exit 2)
    assert main(["fix", str(naive), "-o", str(tmp_path / "naive_fixed.onnx"), "--batch-sizes", "1,3"]) == 0


def test_fix_leaves_a_record_and_a_batched_file_has_nothing_to_fix(models_dir: Path, tmp_path: Path, capsys):
    result = fix_onnx(models_dir / "mobilefacenet_128d.onnx", tmp_path / "mfn.onnx")
    record = json.loads(onnx.load(str(result.path)).metadata_props[-1].value)
    sidecar = json.loads(result.sidecar.read_text())
    assert record["source"]["sha256"] == sidecar["source"]["sha256"] == result.source_sha256
    assert record["repairs"] and {"node", "before", "after", "why"} <= set(record["repairs"][0])
    assert sidecar["proof"]["max_abs_diff"] <= 1e-5 and sidecar["proof"]["frames"] == 4
    again = fix_onnx(result.path, tmp_path / "again.onnx")  # already batch-keeping: nothing to fix
    assert not again.written and not again.repairs and not (tmp_path / "again.onnx").exists()
    assert main(["fix", str(result.path), "-o", str(tmp_path / "again.onnx")]) == 0
    assert "nothing to fix" in capsys.readouterr().out and not (tmp_path / "again.onnx").exists()


@pytest.mark.parametrize("op", ["Slice", "Gather", "Split"])
def test_picking_frames_on_axis_0_is_flagged_and_refused_by_name(tmp_path: Path, op: str):
    source = frame_picker(tmp_path / "pick.onnx", op)
    naive = with_symbolic_batch(source, tmp_path / "naive.onnx")
    assert [f.message for f in lint_graph(onnx.load(str(naive))) if f.check == "lint"] == [
        f"{op} on the batch axis picks fixed frames"
    ]
    with pytest.raises(
        VerificationFailed,
        match=f"cannot repair by surgery; first: {op} pick: {op} on the batch axis picks fixed frames",
    ):
        fix_onnx(source, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_a_constant_of_shape_joined_with_the_frames_is_repaired_and_a_tile_is_refused(tmp_path: Path):
    fixable = constant_joined(tmp_path / "cos.onnx", "ConstantOfShape")
    finding = "Concat joins the frames with ConstantOfShape made's output, whose dim 0 is fixed by its constant shape"
    assert any(finding in f.message for f in lint_graph(onnx.load(str(fixable))))
    result = fix_onnx(fixable, tmp_path / "cos_fixed.onnx")
    assert "ConstantOfShape made shape [1, 2, 4, 4] → [N, …]" in result.changes[0] and result.proof_max_diff <= 1e-5
    assert verify_model(result.path, VerifyOptions(batch_sizes=(1, 2, 3))).passed
    refused = constant_joined(
        tmp_path / "tile.onnx", "Tile"
    )  # tiles two rows, not one frame: no surgery makes it follow N
    with pytest.raises(
        VerificationFailed, match="cannot repair by surgery; first: Concat join: Concat joins the frames with Tile made"
    ):
        fix_onnx(refused, tmp_path / "tile_fixed.onnx")


@pytest.mark.slow  # exports a model from torch
def test_a_torchscript_export_whose_reshapes_come_from_shape_is_fixed_without_a_crash(models_dir: Path, tmp_path: Path):
    """The TorchScript exporter at batch 1 without onnxsim computes every reshape from Shape: only
    the declared output dims ([1, 12800, 1] …) pin the batch. fix relaxes them, keeps the graph
    valid ONNX (it used to crash in onnx.checker) and proves it."""
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, scrfd_model_with_weights
    from tests.data.official_layout import export_fixed_size_simplified

    model, _, _ = scrfd_model_with_weights(
        ScrfdExportRequest(weights=models_dir / "det_500m.onnx", height=640, width=640)
    )
    source = export_fixed_size_simplified(model, tmp_path / "shape_based.onnx", 640, simplify=False)
    result = fix_onnx(source, tmp_path / "fixed.onnx")
    assert result.written and result.proof_max_diff <= 1e-5
    assert all(dims[0] == "batch" for dims in io_dims(onnx.load(str(result.path))).values())
    assert verify_model(result.path, VerifyOptions(batch_sizes=(1, 2, 3))).passed
