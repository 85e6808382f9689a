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
# FP32, each model's gated INT8 twin, BF16 where proven (openvino), or auto: per model the first of AUTO_ORDER proven
PRECISIONS = ("fp32", "int8", "bf16", "auto")
# auto's order, fastest first, as measured on OpenVINO: det_2.5g at 640, the 17 fixture photos, 2 threads, 1 lane,
# the four alternating in one process, 8 rounds (2-core AMD EPYC Zen 5, AVX-512 BF16, OpenVINO 2026.4.1, a shared
# machine): fp32 11.3-17.6 photos/s, bf16 20.4-29.7 (1.3-1.8x fp32 in each round), int8 27.4-59.0 (1.1-2.6x bf16).
# An INT8 file with BF16 for its kept layers was not faster than INT8 (0.36-1.21x, median 0.91x): not offered.
AUTO_ORDER = ("int8", "bf16", "fp32")
# auto: with no INT8 twin beside a model and no BF16 proof it is fp32. Galleries stay consistent: a manifest records
# each model's precision and search follows it or refuses; an embed .npz records it too (docs/gallery.md)
DEFAULT_PRECISION = "auto"
DEFAULT_MAX_FACES = 0  # faces kept per photo; 0 keeps all (insightface's max_num)
DEFAULT_FRAME_SEED = 0  # the seed of the noise frames that fill a proof's batch beside the photos
