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
