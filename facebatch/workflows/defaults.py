"""What the workflows do unless told otherwise, free of heavy imports: the command line reads
these for its defaults and --help, the workflows' options dataclasses for theirs."""

from __future__ import annotations

# quantize: the FP32-vs-INT8 bench it runs beside the accuracy gate
QUANTIZE_BENCH_BACKENDS = ("ort-cpu", "openvino")
QUANTIZE_BENCH_BATCH_SIZES = (1, 8)
QUANTIZE_BENCH_WARMUP_S = 0.5
QUANTIZE_BENCH_SECONDS = 2.0
