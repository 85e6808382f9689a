"""Triton defaults, in one place (the CLI imports them; nothing repeats them)."""

from __future__ import annotations

RUNTIMES = ("onnxruntime", "tensorrt", "python")
DEVICES = ("cpu", "gpu")  # where a model's instances run (Triton's KIND_CPU, KIND_GPU)
DEFAULT_INSTANCES = 1
DEFAULT_QUEUE_DELAY_US = 2000  # how long the batcher may hold a request for company
# Each model's queue is bounded: beyond it a request is rejected at once (Triton's "Exceeds maximum queue size"),
# and one that waited longer than the timeout is rejected too, so overload is answered, not piled up
DEFAULT_MAX_QUEUE_SIZE = 64  # requests waiting per model
DEFAULT_QUEUE_TIMEOUT_MS = 5000
MANIFEST = ".facebatch-triton.json"  # the files facebatch wrote into a repository

# face_search (--pipeline with a gallery): its code is engines/served_search's, which reads galleries (a layer above
# this package); its folder holds 1/search.json: the gallery's absolute path and the models' sha256 it must match
SEARCH_MODEL = "face_search"
SEARCH_FILE = "search.json"
PIPELINE_MODEL = "face_pipeline"
PIPELINE_FILE = "pipeline.json"  # the detector's and the embedder's specs and served tensors
IMAGES_INPUT = "IMAGES"  # encoded photos (JPEG, PNG, …), one per batch row
# per face: which photo of the request, box (x1, y1, x2, y2), score, 5 landmarks (x, y), unit-length embedding
FACE_OUTPUTS = ("FACE_IMAGE_INDEX", "BOXES", "SCORES", "LANDMARKS", "EMBEDDINGS")

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002
DEFAULT_ADDRESS = "127.0.0.1"  # loopback: other hosts reach a served model only when --address says so
# Triton's APIs that change what the server runs, maps or writes (model-repository: load a model, with files
# and a config sent by the client, unload, index; shared-memory: map a region; logging and trace: their
# settings and files) answer only requests that carry this header with the server's per-run key. Inference,
# health, metadata, model-config (read only) and statistics (read only; bench --triton reads it) stay open.
RESTRICTED_APIS = ("model-repository", "shared-memory", "logging", "trace")
KEY_HEADER = "facebatch-admin-key"
READY_TIMEOUT_S = 180.0  # a python-backend model imports onnxruntime and OpenCV in its own process
STOP_TIMEOUT_S = 30.0
DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16)
