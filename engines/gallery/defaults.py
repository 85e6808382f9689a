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

INDEX_TYPES = ("auto", "flat", "hnsw", "ivf", "ivfpq", "ivfpq_refine")
# auto: flat (exact inner product, IndexFlatIP: embeddings are unit length, so it ranks by cosine) for a gallery of
# at most AUTO_FLAT_MAX_VALUES, else the approximate index of AUTO_CANDIDATES meeting the recall target fastest
DEFAULT_INDEX = "auto"
# Each index's parameters and their defaults (--index-param NAME=VALUE); 0 = chosen from the data, or tuned
INDEX_PARAMETERS: dict[str, dict[str, int]] = {
    "auto": {},
    "flat": {},
    "hnsw": {"m": 32, "ef_construction": 80, "ef_search": 0},  # ef_search 0: tuned to the recall target
    "ivf": {"nlist": 0, "nprobe": 0},  # nlist 0: 4·√N, at least 1 and at most N/39 (FAISS wants ~39 per list)
    "ivfpq": {"nlist": 0, "nprobe": 0, "m": 0, "nbits": 8},  # m 0: D/8 sub-quantisers (16 bytes per 128-d vector)
    # ivfpq's codes in memory, its best `rerank` candidates per query re-ranked exactly from the full vectors,
    # read from the index file on disk, only theirs (engines/gallery/refine.py): the memory-bounded index
    "ivfpq_refine": {"nlist": 0, "nprobe": 0, "m": 0, "nbits": 8, "rerank": 100},
}
# candidates an ivfpq_refine query may read from disk (8 MiB at 512-d): a manifest asking more is corrupt
MAX_RERANK = 4096
# rows handled at a time where the gallery's vectors are copied, masked or written (a block is copied, not 1M × 512)
ROW_BLOCK = 65536
# The search-time parameter each approximate index is tuned by: the smallest value whose measured recall@1
# reaches the target (engines/gallery/recall.py)
TUNED_PARAMETER = {"hnsw": "ef_search", "ivf": "nprobe", "ivfpq": "nprobe", "ivfpq_refine": "nprobe"}
DEFAULT_RECALL = 0.99  # recall@1 against exact search an approximate index must measure, or it is refused
RECALL_QUERIES = (
    1000  # held-out queries, leave one out (standard error 0.003 at recall 0.99; exact search over 1M × 512-d: seconds)
)
LATENCY_QUERIES = 100  # of them, searched one at a time for the per-query latency
RECALL_K = 10  # recall@10 is measured; HNSW's efSearch is tuned from this up (FAISS searches max(efSearch, k))
HNSW_MAX_EF_SEARCH = 4096
# auto takes flat up to rows × dimension = this: one exact query then takes ≤ ~3 ms. Measured on the 2-core Xeon
# (one FAISS thread, IndexFlatIP, p50 of 200 queries): 512-d 20k rows 1.2 ms, 50k 4.1 ms, 100k 7.6 ms; 128-d 50k
# 0.55 ms, 100k 1.9 ms, i.e. 0.10-0.16 ns per stored value: 20M values ≈ 2-3 ms (39k faces at 512-d, 156k at 128-d)
AUTO_FLAT_MAX_VALUES = 20_000_000
# auto builds these in turn and stops at the first that reaches the target within AUTO_FAST_ENOUGH_MS a query (else
# keeps the fastest that reaches it). Measured on the quiet 2-core EPYC, 512-d (docs/gallery.md, "Measured"): ivf
# answers 100k-300k in 0.05-0.8 ms; at 1M it needs 7.2 ms where ivfpq_refine needs 2.4 (in 5 % of the memory);
# hnsw builds 2-4× slower than either (419 s at 1M) and comes last
AUTO_CANDIDATES = ("ivf", "ivfpq_refine", "hnsw")
AUTO_FAST_ENOUGH_MS = 5.0  # the per-query latency the gallery's targets ask for at a million faces
# A face in index.faiss takes at least its 8-byte id: a manifest claiming more faces than that allows is a lie
INDEX_MIN_BYTES_PER_FACE = 8

DEFAULT_TOP_K = 5
# the cosine below which a gallery face is no match ("unknown") is compare's: DEFAULT_MATCH_THRESHOLD, in
# engines/pipeline/defaults.py with its measurement
RAY_CONNECT_TIMEOUT_S = 30.0  # a Ray address that does not answer is refused within this
RAY_LOOPBACK = "127.0.0.1"  # where a local Ray instance that facebatch starts listens and registers its node
