"""ArcFace embedders as values: the arcface_torch networks, their
preprocessing (§5.4), the alignment template (§5.8), and the spec of an exported embedder.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from facebatch.configs.spec import BATCH, SEEDED_TAG, Family, ModelSpec, Normalize, TensorSpec, fp32_output
from facebatch.core.errors import SpecError

ARCFACE_NORMALIZE = Normalize(mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5), rgb=True)
ARCFACE_INPUT_SIZE = 112
EMBEDDING_SIZE = 512
INPUT_NAME = "input.1"  # the name the released recognition files use
EMBEDDING_NAME = "embedding"

# insightface utils/face_align.py arcface_dst: where the 5 landmarks (eyes, nose, mouth
# corners; x, y) land in a 112×112 crop.
ALIGNMENT_TEMPLATE_112 = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


@dataclass(frozen=True)
class IResNetConfig:
    layers: tuple[int, int, int, int]


@dataclass(frozen=True)
class MobileFaceNetConfig:
    blocks: tuple[int, int, int, int]
    scale: int


ArcFaceConfig = IResNetConfig | MobileFaceNetConfig

# arcface_torch get_model names. mbf_large is not reproduced: its layers.1
# layout is not pinned down in the facts sheet, and no released file uses it.
ARCFACE_CONFIGS: dict[str, ArcFaceConfig] = {
    "r18": IResNetConfig((2, 2, 2, 2)),
    "r34": IResNetConfig((3, 4, 6, 3)),
    "r50": IResNetConfig((3, 4, 14, 3)),
    "r100": IResNetConfig((3, 13, 30, 3)),
    "r200": IResNetConfig((6, 26, 60, 6)),
    "mbf": MobileFaceNetConfig((1, 4, 6, 2), scale=2),
}

# The released model each network is best known by (model packs); it names the
# default artifact, e.g. arcface_w600k_r50_batch.onnx. Other networks: arcface_r18_batch.onnx.
RELEASES = {"r50": "w600k", "mbf": "w600k", "r100": "glint360k"}
DEFAULT_ARCFACE = "arcface_r50"
MODEL_PREFIX = "arcface_"


def arcface_network(name: str) -> str:
    """``arcface_r50`` or ``r50`` → ``r50``; unknown names suggest the close ones."""
    network = name[len(MODEL_PREFIX) :] if name.startswith(MODEL_PREFIX) else name
    if network in ARCFACE_CONFIGS:
        return network
    known = [MODEL_PREFIX + n for n in ARCFACE_CONFIGS]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise SpecError(f"unknown ArcFace network {name!r}; {hint}known: {', '.join(known)}", field="model")


def is_arcface_name(name: str) -> bool:
    return name.startswith(MODEL_PREFIX) or name in ARCFACE_CONFIGS


def embedder_outputs(name: str, embedding_size: int) -> tuple[TensorSpec, ...]:
    return (fp32_output(name, (BATCH, embedding_size), embedder=True),)


ALIGNMENT_DESCRIPTION = "5-point similarity transform (Umeyama) onto alignment_template, warpAffine, black border"
EMBEDDER_DESCRIPTIONS = {
    "alignment": ALIGNMENT_DESCRIPTION,
    "output_layout": "[batch, embedding_size] unnormalised; L2-normalise for cosine similarity",
}


def arcface_spec(network: str, embedding_size: int = EMBEDDING_SIZE, seeded: bool = False) -> ModelSpec:
    """Input ``input.1`` [batch,3,112,112] → ``embedding`` [batch, embedding_size] (unnormalised;
    L2-normalise for cosine similarity). The default file name carries the release the network
    is known by (w600k_r50) only for real weights of the released size; ``seeded`` weights are
    named so."""
    network = arcface_network(network)
    if embedding_size < 1:
        raise SpecError(f"embedding size must be positive, got {embedding_size}", field="embedding_size")
    release = RELEASES.get(network) if embedding_size == EMBEDDING_SIZE and not seeded else None
    stem = f"arcface_{release}_{network}" if release else f"arcface_{network}"
    size = ARCFACE_INPUT_SIZE
    return ModelSpec(
        name=MODEL_PREFIX + network,
        family=Family.ARCFACE,
        inputs=(TensorSpec(INPUT_NAME, (BATCH, 3, size, size)),),
        outputs=embedder_outputs(EMBEDDING_NAME, embedding_size),
        normalize=ARCFACE_NORMALIZE,
        input_size=(size, size),
        default_filename=f"{stem}{SEEDED_TAG if seeded else ''}_batch.onnx",
        embedding_size=embedding_size,
        alignment_template=ALIGNMENT_TEMPLATE_112,
        descriptions=EMBEDDER_DESCRIPTIONS,
    )
