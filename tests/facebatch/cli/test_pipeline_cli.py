"""``facebatch detect``, ``embed``, ``compare`` and ``bench --pipeline`` end to end on real
weights and photos; bad input is one line and exit 2, an unreadable photo exit 1 after the
rest completed, and nothing half-written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facebatch.cli import main
from facebatch.configs.model_file import default_artifact


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]


@pytest.fixture(scope="module")
def spec_file(batch_embedder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A described embedder that names its ONNX file: --embedder SPEC.yaml."""
    spec = tmp_path_factory.mktemp("spec") / "mobilefacenet.yaml"
    spec.write_text(
        f"model: {batch_embedder}\nname: mobilefacenet_128d\nmean: 127.5\nstd: 127.5\ncolor_order: RGB\nembedding_size: 128\n"
    )
    return spec


def test_detect_writes_json_and_annotated_copies(real_detector: Path, photos: list[Path], tmp_path: Path, capsys):
    wanted = [p for p in photos if p.name in ("t1.jpg", "no_face.png", "newton.png")]
    argv = [
        "detect",
        *map(str, wanted),
        "--detector",
        str(real_detector),
        "--json",
        str(tmp_path / "faces.json"),
        "--draw",
        str(tmp_path / "drawn"),
    ]
    assert main(argv) == 0
    data = json.loads((tmp_path / "faces.json").read_text())
    counts = {Path(i["path"]).name: len(i["faces"]) for i in data["images"]}
    assert counts == {"t1.jpg": 6, "no_face.png": 0, "newton.png": 1} and data["failed"] == []
    face = data["images"][[Path(i["path"]).name for i in data["images"]].index("newton.png")]["faces"][0]
    assert len(face["bbox"]) == 4 and len(face["landmarks"]) == 5 and 0.5 <= face["score"] <= 1
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["newton.png", "no_face.png", "t1.jpg"]
    assert "6" in capsys.readouterr().out


def test_embed_writes_npz_and_index(real_detector: Path, spec_file: Path, photos: list[Path], tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("obama_1.jpg", "two_people.jpg", "view_no_face.jpg"):
        shutil.copy(photos[0].parent / name, folder)
    argv = [
        "embed",
        str(folder),
        "--detector",
        str(real_detector),
        "--embedder",
        str(spec_file),
        "-o",
        str(tmp_path / "e.npz"),
        "--json",
        str(tmp_path / "index.json"),
    ]
    assert main(argv) == 0
    data = np.load(tmp_path / "e.npz")
    assert (
        data["embeddings"].shape == (3, 128) and data["boxes"].shape == (3, 4) and data["landmarks"].shape == (3, 5, 2)
    )
    assert [Path(p).name for p in data["images"][data["image_index"]]] == [
        "obama_1.jpg",
        "two_people.jpg",
        "two_people.jpg",
    ]
    np.testing.assert_allclose(np.linalg.norm(data["embeddings"], axis=1), 1, atol=1e-5)
    index = json.loads((tmp_path / "index.json").read_text())
    assert [f["row"] for f in index["faces"]] == [0, 1, 2] and index["embeddings"] == "e.npz"


def test_compare_tells_same_from_different(
    real_detector: Path, spec_file: Path, photos: list[Path], tmp_path: Path, capsys
):
    images = photos[0].parent
    common = ["--detector", str(real_detector), "--embedder", str(spec_file)]
    assert (
        main(
            [
                "compare",
                str(images / "obama_1.jpg"),
                str(images / "obama_2.jpg"),
                *common,
                "--json",
                str(tmp_path / "c.json"),
            ]
        )
        == 0
    )
    assert "same person" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["same_person"] is True
    assert main(["compare", str(images / "obama_1.jpg"), str(images / "biden_1.jpg"), *common]) == 0
    assert "different people" in capsys.readouterr().out
    assert main(["compare", str(images / "obama_1.jpg"), str(images / "no_face.png"), *common]) == 1
    assert error_lines(capsys) == [
        f"facebatch: error: no face found in {images / 'no_face.png'}; try a lower --det-thresh, or another photo"
    ]


def test_an_unreadable_photo_is_named_skipped_and_exits_1(
    real_detector: Path, photos: list[Path], tmp_path: Path, capsys
):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(photos[0].parent / "obama_1.jpg", folder)
    (folder / "broken.jpg").write_bytes((photos[0].parent / "obama_2.jpg").read_bytes()[:20000])
    assert main(["detect", str(folder), "--detector", str(real_detector), "--json", str(tmp_path / "out.json")]) == 1
    err = capsys.readouterr().err
    assert f"skipped {folder / 'broken.jpg'}" in " ".join(err.split())
    assert err.strip().splitlines()[-1] == f"facebatch: error: 1 of 2 photos could not be read: {folder / 'broken.jpg'}"
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["failed"] == [str(folder / "broken.jpg")] and len(data["images"][1]["faces"]) == 1


def test_bad_arguments_are_one_line_and_exit_2(
    real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, capsys
):
    photo = str(photos[0])
    unnamed = tmp_path / "unnamed.yaml"
    unnamed.write_text("mean: 127.5\n")
    cases = [
        (["detect", str(tmp_path / "nowhere")], "does not exist; pass a photo or a folder of photos"),
        (["detect", str(tmp_path)], f"no photos (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in {tmp_path} or its"),
        (["detect", photo, "--detector", str(tmp_path / "missing.onnx")], "missing.onnx"),
        (
            ["detect", photo, "--detector", str(batch_embedder)],
            "--detector mobilefacenet_128d_batch.onnx is an embedder; pass an SCRFD detector",
        ),
        (
            [
                "embed",
                photo,
                "--detector",
                str(real_detector),
                "--embedder",
                str(real_detector),
                "-o",
                str(tmp_path / "x.npz"),
            ],
            "--embedder scrfd_2.5g_640_batch.onnx is an SCRFD face detector; pass an embedder",
        ),
        (
            ["detect", photo, "--detector", str(real_detector), "--batch-size", "64"],
            "outside scrfd_2.5g_bnkps's profile 1–32",
        ),
        (
            [
                "embed",
                photo,
                "--detector",
                str(real_detector),
                "--embedder",
                str(unnamed),
                "-o",
                str(tmp_path / "x.npz"),
            ],
            "does not name its ONNX file; add 'model: FILE.onnx'",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        lines = error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], (argv, lines)
    assert not (tmp_path / "x.npz").exists()


def test_the_default_models_are_real_ones_from_build_onnx(real_detector: Path, tmp_path: Path):
    seeded = tmp_path / "seeded"
    seeded.mkdir()
    sidecar = json.loads(real_detector.with_suffix(".json").read_text())
    (seeded / "scrfd_seeded.onnx").write_bytes(b"")  # discovery reads sidecars only
    (seeded / "scrfd_seeded.json").write_text(
        json.dumps({**sidecar, "artifact": "scrfd_seeded.onnx", "weights": {"kind": "seeded"}})
    )
    with pytest.raises(Exception, match="holds only scrfd_seeded.onnx, exported with seeded random weights"):
        default_artifact("detector", seeded)
    assert default_artifact("detector", real_detector.parent) == real_detector
    with pytest.raises(Exception, match="no embedder artifact in"):
        default_artifact("embedder", real_detector.parent)


def test_bench_pipeline_sets_the_pipeline_beside_the_loop_and_insightface(
    real_detector: Path, spec_file: Path, photos: list[Path], tmp_path: Path, capsys
):
    folder = tmp_path / "few"
    folder.mkdir()
    for name in ("t1.jpg", "obama_1.jpg", "no_face.png"):
        shutil.copy(photos[0].parent / name, folder)
    argv = [
        "bench",
        "--pipeline",
        str(folder),
        "--detector",
        str(real_detector),
        "--embedder",
        str(spec_file),
        "--rounds",
        "1",
        "--process-runs",
        "1",
        "--json",
        str(tmp_path / "p.json"),
        "--markdown",
        str(tmp_path / "p.md"),
    ]
    assert main(argv) == 0
    data = json.loads((tmp_path / "p.json").read_text())
    # whole processes, start-up included: facebatch embed (and the insightface script) over the folder and its first photo
    processes = {p["name"]: p for p in data["processes"]}
    assert {"facebatch embed (folder)", "facebatch embed (first photo)"} <= set(processes)
    assert (
        processes["facebatch embed (folder)"]["photos"] == 3
        and processes["facebatch embed (first photo)"]["photos"] == 1
    )
    assert all(len(p["seconds"]) == 1 and p["seconds"][0] > 0 for p in processes.values())
    # each run's arithmetic against this CPU's peak (the measured GEMM, or the nominal estimate where more)
    assert data["peak"]["gflops_per_second"] > 0 and set(data["flops_per_frame"]) == {"detector", "embedder"}
    assert all(share > 0 for share in data["share_of_peak"].values())  # below 1 or not: the benchmark's to say
    names = [c["name"] for c in data["contenders"]]
    assert names[:2] == ["facebatch pipeline", "per-image loop"]
    assert all(c["faces"] == 7 and c["images"] == 3 and len(c["pass_seconds"]) == 1 for c in data["contenders"])
    assert data["passed"] and {m["role"] for m in data["model_only"]} == {"detector", "embedder"}
    assert set(data["contenders"][0]["stages_per_pass"]) == {
        "read",
        "letterbox",
        "detect",
        "postprocess",
        "align",
        "embed",
    }
    if "insightface FaceAnalysis" in names:  # the 'compare' extra, installed by the Makefile
        assert (
            data["agreements"][1]["label"] == "facebatch pipeline vs insightface FaceAnalysis"
            and data["agreements"][1]["passed"]
        )
        assert data["ratios"]["insightface FaceAnalysis"] > 0
        assert "insightface script (folder)" in processes and data["process_ratios"]["folder"] > 0
    markdown = (tmp_path / "p.md").read_text()
    assert "## Where the pipeline's time goes" in markdown and "## Same faces?" in markdown
    assert "## Whole process (fresh interpreter, start-up included)" in markdown and "| of peak |" in markdown


def test_the_detect_table_gives_sizes_as_height_x_width_like_size(real_detector: Path, photos: list[Path], capsys):
    import cv2

    photo = next(p for p in photos if p.name == "rob_lowe_1.jpg")
    wide = next(p for p in photos if cv2.imread(str(p)).shape[0] != cv2.imread(str(p)).shape[1])
    assert main(["detect", str(photo), str(wide), "--detector", str(real_detector)]) == 0
    out = capsys.readouterr().out
    height, width = cv2.imread(str(wide)).shape[:2]
    assert "size (HxW)" in out and f"{height}x{width}" in out


def test_embed_imports_only_what_its_run_uses(real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path):
    """Start-up (issue 25, lever 5): embed runs onnxruntime and OpenCV; torch, onnxsim, the gallery's
    tools, plotting and the peers stay unimported (torch alone costs ~1.5 s of start-up)."""
    import subprocess
    import sys

    unused = ("torch", "onnxsim", "onnxscript", "faiss", "ray", "pyarrow", "matplotlib", "insightface", "openvino")
    argv = ["embed", str(photos[0]), "-o", str(tmp_path / "e.npz"), "--detector", str(real_detector)]
    argv += ["--embedder", str(batch_embedder), "--backend", "ort-cpu"]
    probe = (
        f"import sys; from facebatch.cli import main; code = main({argv!r}); "
        f"print([m for m in {unused!r} if m in sys.modules], code)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[] 0", done.stdout + done.stderr


# -- photos fail closed ------------------------------------------------------------------------------------------------
ROUTINE_BOMBS = ("jpeg2000.jpg", "avif.jpg", "tiles.tif", "pnm.png", "radiance.jpg", "huge.png", "zero.png")


def test_detect_and_index_skip_each_bomb_by_name_and_exit_1(
    real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, capsys
):
    from tests.engines.pipeline.bombs import write_bombs

    folder = tmp_path / "photos"
    bombs = write_bombs(folder, ROUTINE_BOMBS)
    shutil.copy(photos[0].parent / "obama_1.jpg", folder)
    assert main(["detect", str(folder), "--detector", str(real_detector), "--json", str(tmp_path / "out.json")]) == 1
    err = " ".join(capsys.readouterr().err.split())
    for bomb in bombs:
        assert f"skipped {bomb}: image {str(bomb)!r} " in err, bomb.name
    assert "is JPEG 2000, a format facebatch does not decode" in err
    assert "is 12000x12000 (144 MP), above the limit of 100 MP; shrink it, or pass a larger --max-photo-pixels" in err
    assert f"facebatch: error: {len(bombs)} of {len(bombs) + 1} photos could not be read" in err
    data = json.loads((tmp_path / "out.json").read_text())
    assert sorted(data["failed"]) == sorted(map(str, bombs))
    assert [len(i["faces"]) for i in data["images"] if i["path"].endswith("obama_1.jpg")] == [1]

    pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
    out = tmp_path / "gallery"
    argv = [
        "index",
        str(folder),
        "--out",
        str(out),
        "--detector",
        str(real_detector),
        "--embedder",
        str(batch_embedder),
    ]
    assert main(argv) == 1
    (line,) = error_lines(capsys)
    assert f"{len(bombs)} of {len(bombs) + 1} photos could not be read" in line
    assert all(bomb.name in line for bomb in bombs)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["photos"] == 1 and len(manifest["failed"]) == len(bombs)


def test_max_photo_pixels_is_a_flag_of_every_photo_command(real_detector: Path, photos: list[Path], capsys):
    photo = photos[0].parent / "t1.jpg"  # 1280x886
    argv = ["detect", str(photo), "--detector", str(real_detector), "--max-photo-pixels", "1000000"]
    assert main(argv) == 1
    assert "is 1280x886 (1.13 MP), above the limit of 1 MP" in " ".join(capsys.readouterr().err.split())
    assert main([*argv[:-1], "1134080"]) == 0
    capsys.readouterr()
    assert main([*argv[:-1], "0"]) == 2
    assert error_lines(capsys) == ["facebatch: error: --max-photo-pixels must be at least 1, got 0"]


# facebatch's command line, then its own peak resident memory: VmHWM belongs to the process's address space, which
# exec makes anew (rusage's ru_maxrss would carry over the forking parent's, pytest's, high-water mark)
_MEASURED_MAIN = (
    "import sys\n"
    "from facebatch.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "sys.stderr.write(f'\\nVmHWM {hwm}\\n')\n"
    "sys.exit(code)\n"
)


def _peak_rss_of(argv: list[str]) -> int:
    """Peak resident bytes of ``facebatch ARGV`` run as a process of its own."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MEASURED_MAIN, *argv], capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return int(done.stderr.rstrip().splitlines()[-1].split()[1]) * 1024


def test_detects_peak_memory_on_a_folder_of_bombs_stays_within_1_5x_of_one_photo(
    real_detector: Path, photos: list[Path], tmp_path: Path
):
    from tests.engines.pipeline.bombs import write_bombs

    normal, bombed = tmp_path / "normal", tmp_path / "bombed"
    normal.mkdir()
    shutil.copy(photos[0].parent / "obama_1.jpg", normal)
    write_bombs(bombed)  # every bomb, the junk-JPEG that decodes to 30000x30000 among them
    shutil.copy(photos[0].parent / "obama_1.jpg", bombed)
    model = ["--detector", str(real_detector)]
    baseline = _peak_rss_of(["detect", str(normal), *model])
    peak = _peak_rss_of(["detect", str(bombed), *model])
    print(f"\nfacebatch detect peak RSS: one photo {baseline / 2**20:.0f} MiB, with the bombs {peak / 2**20:.0f} MiB")
    assert peak <= 1.5 * baseline, (baseline, peak)
