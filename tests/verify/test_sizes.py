"""The input sizes verify checks at: the graph's own, a second one for a symbolic size (non-square, or square
where one symbol names height and width), each given one refused when the graph cannot run it."""

from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import SpecError
from facebatch.verify.sizes import check_sizes, non_square_size
from facebatch.verify.verify_job import VerifyOptions, run_checks
from tests.data.graphs import batch_mean_leak


def test_check_sizes_and_the_batch_size_rule(models_dir: Path, tmp_path: Path):
    assert non_square_size((320, 320), 32) == (320, 480) and non_square_size((256, 320), 32) == (320, 256)
    official = read_model_file(models_dir / "det_500m.onnx")
    assert check_sizes(official, None) == [(640, 640), (320, 320)]  # a shared symbol: checked at two square sizes
    with pytest.raises(SpecError, match="not a positive multiple of 32"):
        check_sizes(official, [(640, 640), (300, 300)])
    embedder = read_model_file(models_dir / "mobilefacenet_128d.onnx")
    assert check_sizes(embedder, None) == [(112, 112)]
    with pytest.raises(SpecError, match="runs at 112x112 only; drop size 128x128"):
        check_sizes(embedder, [(128, 128)])
    with pytest.raises(SpecError, match="give at least one batch size of 2 or more"):
        run_checks(batch_mean_leak(tmp_path / "leak.onnx"), VerifyOptions(batch_sizes=(1,)))
    with pytest.raises(SpecError, match="is an embedder: it takes one input size, got 112x112, 128x128") as refused:
        check_sizes(embedder, [(112, 112), (128, 128)])
    assert refused.value.field == "sizes"
