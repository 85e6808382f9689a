"""ArcFace specs and bring-your-own embedder specs (YAML or command line), checked against
the real mobilefacenet_128d.onnx fixture."""

from pathlib import Path

import onnx
import pytest

from facebatch.cli import main
from facebatch.configs.arcface import ARCFACE_CONFIGS, arcface_network, arcface_spec
from facebatch.configs.embedder import EmbedderDescription, embedder_spec, read_embedder_description
from facebatch.core.errors import SpecError


@pytest.mark.parametrize("network", list(ARCFACE_CONFIGS))
def test_every_arcface_spec_keeps_the_batch_and_names_its_tensors(network: str):
    spec = arcface_spec(network)
    assert spec.input.name == "input.1" and spec.input.dims == ("batch", 3, 112, 112)
    (embedding,) = spec.outputs
    assert embedding.name == "embedding" and embedding.dims == ("batch", 512)
    assert embedding.atol == 1e-4 and embedding.min_cosine == 0.99999
    assert spec.normalize.mean == (127.5,) * 3 and spec.normalize.std == (127.5,) * 3 and spec.normalize.rgb
    assert spec.dynamic_axes() == {"input.1": {0: "batch"}, "embedding": {0: "batch"}}


def test_release_names_and_unknown_networks():
    assert arcface_spec("arcface_r50").default_filename == "arcface_w600k_r50_batch.onnx"
    assert arcface_spec("r100").default_filename == "arcface_glint360k_r100_batch.onnx"
    assert arcface_spec("r50", embedding_size=256).default_filename == "arcface_r50_batch.onnx"
    assert (
        arcface_spec("r50", seeded=True).default_filename == "arcface_r50_seeded_batch.onnx"
    )  # not the w600k model's name
    assert arcface_network("arcface_mbf") == "mbf"
    with pytest.raises(SpecError, match="did you mean arcface_r100"):
        arcface_network("arcface_r10")


@pytest.fixture(scope="module")
def mbf128(models_dir: Path) -> onnx.ModelProto:
    return onnx.load(str(models_dir / "mobilefacenet_128d.onnx"))


def test_foreign_embedder_spec_reads_what_the_yaml_leaves_out(mbf128, tmp_path: Path):
    (tmp_path / "m.yaml").write_text("name: mfn\nmean: 127.5\nstd: [128, 128, 128]\ncolor_order: bgr\n")
    spec = embedder_spec(mbf128, read_embedder_description(tmp_path / "m.yaml"), "mobilefacenet_128d.onnx")
    assert spec.family == "embedder" and spec.name == "mfn"
    assert spec.input.name == "input" and spec.input.dims == ("batch", 3, 112, 112)
    assert spec.outputs[0].name == "output" and spec.outputs[0].dims == ("batch", 128)
    assert spec.normalize.std == (128.0,) * 3 and not spec.normalize.rgb


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("embedding_size: 512\n", "holds 128 values per frame, the spec says 512"),
        ("input_size: 128\n", "fixed to height 112, the spec says 128"),
        ("colour_order: RGB\n", "unknown keys colour_order"),
        ("std: 0\n", "positive numbers"),
        ("color_order: YUV\n", "RGB or BGR"),
        ("output: emb\n", "has no output 'emb'"),
        ("mean: [1, 2\n", "not valid YAML at line"),
        ("- 112\n", "must be a mapping"),
    ],
)
def test_bad_embedder_specs_say_what_to_change(mbf128, tmp_path: Path, yaml_text: str, message: str):
    (tmp_path / "bad.yaml").write_text(yaml_text)
    with pytest.raises(SpecError, match=message):
        embedder_spec(mbf128, read_embedder_description(tmp_path / "bad.yaml"), "mobilefacenet_128d.onnx")


def test_describe_writes_a_yaml_that_reads_back_to_the_same_spec(models_dir: Path, mbf128, tmp_path: Path):
    target = tmp_path / "mfn.yaml"
    assert (
        main(["describe", str(models_dir / "mobilefacenet_128d.onnx"), "--embedding-size", "128", "-o", str(target)])
        == 0
    )
    description = read_embedder_description(target)
    assert description == EmbedderDescription(
        name="mobilefacenet_128d", input_size=(112, 112), embedding_size=128, input="input", output="output"
    )
    assert embedder_spec(mbf128, description, "x.onnx") == embedder_spec(
        mbf128, EmbedderDescription(), "mobilefacenet_128d.onnx"
    )


def test_describe_refuses_a_wrong_size_in_one_line(models_dir: Path, capsys):
    assert main(["describe", str(models_dir / "mobilefacenet_128d.onnx"), "--embedding-size", "512"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]
    assert len(errors) == 1 and "the spec says 512" in errors[0]
