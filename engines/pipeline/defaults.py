"""The face pipeline's defaults, kept free of heavy imports so that the command line can show
them in ``--help`` without loading OpenCV or a runtime."""

DEFAULT_DETECT_BATCH = (
    8  # photos per detector call: on 2 CPU cores batching gains nothing, and smaller batches overlap reading sooner
)
DEFAULT_EMBED_BATCH = (
    8  # faces per embedder call: measured fastest per face for MobileFaceNet on 2 cores (3.0 ms vs 3.5 at 1)
)
DEFAULT_READ_WORKERS = 2  # threads reading and letterboxing photos ahead of the detector
# Cosine at or above which two faces are the same person: compare's verdict and search's match (the one default of
# both). Measured on 300 labelled same/different pairs of 64 unseen photos (mobilefacenet_128d, SCRFD-2.5G): 0.35 called
# all 300 right, 0.3 called two pairs of different people "same". ArcFace-loss embedders put one person's photos above
# ~0.4 and different people below ~0.3 (the fixtures: obama/obama 0.72-0.78, obama/biden 0.07); check it on pairs you
# know with another embedder (compare's pairs report gives the best threshold).
DEFAULT_MATCH_THRESHOLD = 0.35
DEFAULT_BACKEND = "ort-cpu"  # the pipeline's runtime when none is named
PRECISIONS = ("fp32", "int8", "bf16")  # FP32, each model's gated INT8 twin, or BF16 where proven (openvino)
DEFAULT_PRECISION = "fp32"
DEFAULT_MAX_FACES = 0  # faces kept per photo; 0 keeps all (insightface's max_num)
DEFAULT_FRAME_SEED = 0  # the seed of the noise frames that fill a proof's batch beside the photos
