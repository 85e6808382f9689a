"""Build a serialized TensorRT engine from an ONNX file through Polygraphy's TensorRT
backend (imported on use). The recipe (``engine_record.build_recipe``) decides, per
TensorRT major version, whether the network is strongly typed (≥ 11, from the FP16 ONNX)
or built with the FP16 flag (10, from the FP32 ONNX); the one optimisation profile comes
from ``engine_profile``. Polygraphy's own logging is silenced to errors: the command line
shows our progress and one line on failure, and only while the build runs (Polygraphy's logger
is one object for the whole process: another user of it keeps its own severity).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.runners.base import first_line
from facebatch.engines.runners.engine_record import BuildRecipe, EngineProfile
from facebatch.engines.runners.tensorrt_runner import import_tensorrt


@dataclass(frozen=True)
class BuilderOptions:
    workspace_gib: float | None = None  # None: TensorRT's default (the GPU's memory)
    timing_cache: Path | None = None  # read when it exists, written back after the build

    def __post_init__(self) -> None:
        if self.workspace_gib is not None and not self.workspace_gib > 0:
            raise SpecError(f"workspace_gib must be positive, got {self.workspace_gib:g} GiB", field="workspace_gib")

    def to_dict(self) -> dict[str, object]:
        return {
            "workspace_gib": self.workspace_gib,
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
        }


@dataclass
class BuiltEngine:
    data: bytes
    tensorrt_version: str
    seconds: float


@contextlib.contextmanager
def polygraphy_quiet() -> Iterator[None]:
    """Polygraphy's logger held to errors inside the block, and given back as it was after it, however it ends."""
    from polygraphy.logger import G_LOGGER

    with G_LOGGER.verbosity(G_LOGGER.ERROR):
        yield


def build_engine(onnx_path: Path, recipe: BuildRecipe, profile: EngineProfile, settings: BuilderOptions) -> BuiltEngine:
    trt = import_tensorrt()
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile
    from polygraphy.exception import PolygraphyException

    trt_profile = Profile()
    for name, (low, opt, high) in profile.shapes.items():
        trt_profile.add(name, min=low, opt=opt, max=high)
    pools = {trt.MemoryPoolType.WORKSPACE: int(settings.workspace_gib * (1 << 30))} if settings.workspace_gib else None
    cache = settings.timing_cache
    config = CreateConfig(
        fp16=recipe.fp16_flag or None,
        profiles=[trt_profile],
        memory_pool_limits=pools,
        load_timing_cache=str(cache) if cache is not None and cache.is_file() else None,
    )
    network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=recipe.strongly_typed or None)
    started = time.perf_counter()
    try:
        with polygraphy_quiet():
            data = EngineBytesFromNetwork(
                network, config=config, save_timing_cache=str(cache) if cache is not None else None
            )()
    except PolygraphyException as exc:
        raise EngineError(f"TensorRT could not build {onnx_path.name}: {first_line(exc)}") from None
    return BuiltEngine(bytes(data), trt.__version__, time.perf_counter() - started)
