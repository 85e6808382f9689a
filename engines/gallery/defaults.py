"""Gallery defaults, in one place (the CLI imports them; nothing heavy is imported here)."""

from __future__ import annotations

MANIFEST = "manifest.json"
SHARDS = "shards"  # shard-00000.parquet, …: one row per face, and one per photo without a face
INDEX_FILE = "index.faiss"
LOCK = ".lock"  # the one writer's lock
QUARANTINE = "quarantine"  # shards that could not be read as committed: moved here, never deleted
STAGING_PREFIX = ".ray-staging-"  # + the driver's pid + '-' + tempfile's 8 random characters: Ray's workers write here
GALLERY_FORMAT = 1  # a format 1 manifest may carry each shard's sha256 (written by facebatch since it records them)

# The names facebatch writes in a gallery: a manifest may name no other shard, a clean-up removes nothing else.
SHARD_NAME = r"shard-[0-9]{5,}\.parquet"  # next_shard_name: shard-00000.parquet, … (a sixth digit past 99999)
TEMP_RANDOM = r"[a-z0-9_]{8}"  # the random part of tempfile's names (atomic writes, Ray's staging folder)

# Galleries hold biometric data (embeddings, names, photo paths): private to their owner unless chmod says otherwise
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600

PHOTOS_PER_SHARD = 256  # a shard is committed (and survives a kill) every this many photos
FACES_MODES = ("best", "all")  # best: the highest-scoring face of each photo (enrolment); all: every face
DEFAULT_FACES = "all"

INDEX_TYPES = ("flat", "hnsw", "ivf", "ivfpq")
DEFAULT_INDEX = "flat"  # exact inner product (IndexFlatIP): embeddings are unit length, so it ranks by cosine
# Each approximate index's parameters and their defaults (--index-param NAME=VALUE)
INDEX_PARAMETERS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"m": 32, "ef_construction": 80, "ef_search": 64},
    "ivf": {"nlist": 0, "nprobe": 16},  # nlist 0: 4·√N, at least 1 and at most N/39 (FAISS wants ~39 per list)
    "ivfpq": {"nlist": 0, "nprobe": 16, "m": 0, "nbits": 8},  # m 0: D/8 sub-quantisers (16 bytes per 128-d vector)
}
# A face in index.faiss takes at least its 8-byte id: a manifest claiming more faces than that allows is a lie
INDEX_MIN_BYTES_PER_FACE = 8

DEFAULT_TOP_K = 5
# cosine below which a gallery face is no match ("unknown"). ArcFace-loss embedders put one person's photos above
# ~0.4 and different people below ~0.3 (the fixtures: obama/obama 0.72, obama/biden 0.07 with mobilefacenet_128d)
DEFAULT_THRESHOLD = 0.35
RAY_CONNECT_TIMEOUT_S = 30.0  # a Ray address that does not answer is refused within this
RAY_LOOPBACK = "127.0.0.1"  # where a local Ray instance that facebatch starts listens and registers its node
