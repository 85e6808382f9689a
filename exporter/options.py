"""What every export has, whatever the model family: where the artifact goes, its name and opset,
and the frames of its proofs, with the checks that refuse a bad value before the slow work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facebatch.exporter.defaults import (
    DEFAULT_OPSET,
    DEFAULT_OUT_DIR,
    PARITY_BATCH_SIZES,
    check_opset,
    check_parity_batch_sizes,
)


@dataclass
class ArtifactOptions:
    out_dir: Path = DEFAULT_OUT_DIR
    name: str | None = None  # file name; default: the spec's (seeded weights say so in it)
    opset: int = DEFAULT_OPSET
    parity_batch_sizes: Sequence[int] = PARITY_BATCH_SIZES
    photos: Sequence[Path] = ()  # real frames for the proofs; seeded noise fills the rest
    seed: int = 0

    def check(self) -> None:
        """Everything that can be refused before the slow work starts."""
        check_opset(self.opset)
        check_parity_batch_sizes(self.parity_batch_sizes)


ExportSettings = ArtifactOptions  # alias for one release
