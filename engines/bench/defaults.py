"""What bench measures unless told otherwise; free of runtime imports (the CLI reads it for --help)."""

DEFAULT_BENCH_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
DEFAULT_BACKENDS = ("ort-cpu",)
DEFAULT_PROCESS_RUNS = 2  # the face pipeline: whole-process runs of each side (facebatch embed, the insightface script)
DEFAULT_PIPELINE_ROUNDS = 3  # the face pipeline: timed passes over the folder per run, the runs taking turns
DEFAULT_REQUEST_BATCH = 1  # a served model: photos or frames per request (Triton's batcher merges requests)
