"""The face pipeline's defaults, kept free of heavy imports so that the command line can show
them in ``--help`` without loading OpenCV or a runtime."""

DEFAULT_DETECT_BATCH = (
    8  # photos per detector call: on 2 CPU cores batching gains nothing, and smaller batches overlap reading sooner
)
DEFAULT_EMBED_BATCH = (
    8  # faces per embedder call: measured fastest per face for MobileFaceNet on 2 cores (3.0 ms vs 3.5 at 1)
)
DEFAULT_READ_WORKERS = 2  # threads reading and letterboxing photos ahead of the detector
DEFAULT_MATCH_THRESHOLD = 0.3  # cosine above which two faces are called the same person (ArcFace-style embedders)
DEFAULT_BACKEND = "ort-cpu"  # the pipeline's runtime when none is named
PRECISIONS = ("fp32", "int8")  # what the pipeline may run: FP32, or each model's gated INT8 twin
DEFAULT_PRECISION = "fp32"
DEFAULT_MAX_FACES = 0  # faces kept per photo; 0 keeps all (insightface's max_num)
DEFAULT_FRAME_SEED = 0  # the seed of the noise frames that fill a proof's batch beside the photos
