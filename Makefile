# facebatch — every target bootstraps .venv (torch==2.13.0 CPU build first, then the package).
# GPU=1: .venv-gpu instead, with onnxruntime-gpu and Polygraphy in place of onnxruntime (one runtime per venv: the two
# packages overwrite each other's files), e.g. 'make test GPU=1'.
PYTHON      ?= python3
GPU         ?=
RUNTIME     := $(if $(GPU),gpu,cpu)
ORT_DIST    := $(if $(GPU),onnxruntime-gpu,onnxruntime)
VENV        := $(if $(GPU),.venv-gpu,.venv)
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
BUILD       ?= build
FIXTURES    ?= ../shared/fixtures

DETECTOR         ?= scrfd_10g_bnkps
DETECTOR_SIZE    ?= 320
DETECTOR_WEIGHTS ?=
EMBEDDER         ?= arcface_r50
EMBEDDER_WEIGHTS ?=
# ONNX weights name their own variant or network (export infers it): the default name is then not passed;
# a .pth needs DETECTOR / EMBEDDER named.
NAMED_BY_WEIGHTS = $(if $(and $(filter %.onnx,$(2)),$(filter file,$(origin $(1)))),,$($(1)))
DETECTOR_NAME    = $(call NAMED_BY_WEIGHTS,DETECTOR,$(DETECTOR_WEIGHTS))
EMBEDDER_NAME    = $(call NAMED_BY_WEIGHTS,EMBEDDER,$(EMBEDDER_WEIGHTS))
# Real photos make the parity proof stronger; used when the fixtures are present.
PROOF_IMAGES     ?= $(wildcard $(FIXTURES)/images)
# Check 4 of make verify: 'torch' rebuilds each artifact's torch model; a path compares with that ONNX file.
REFERENCE        ?= torch
ENGINES          ?=

.DEFAULT_GOAL := help
.PHONY: help venv serve-env export fp16 engines verify bench bench-gallery large-photos release triton serve lint gpu-check test test-fast test-slow clean

help: ## list the targets
	@echo "facebatch — make targets:"
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-9s %s\n", $$1, $$2}'
	@echo "variables: DETECTOR=$(DETECTOR) DETECTOR_SIZE=$(DETECTOR_SIZE) DETECTOR_WEIGHTS=$(DETECTOR_WEIGHTS)"
	@echo "           EMBEDDER=$(EMBEDDER) EMBEDDER_WEIGHTS=$(EMBEDDER_WEIGHTS) BUILD=$(BUILD)"
	@echo "           ENGINES=$(ENGINES) (1: make export builds the TensorRT engines too, where TensorRT is installed)"
	@echo "           ARTIFACTS=$(ARTIFACTS) (what make verify and bench take; empty: every .onnx in $(BUILD)/onnx)"
	@echo "           REFERENCE=$(REFERENCE) (make verify's check-4 reference: torch, or an ONNX file)"
	@echo "           BENCH_BACKENDS=$(BENCH_BACKENDS) BENCH_ARGS='$(BENCH_ARGS)'"
	@echo "           PUBLISHED=$(PUBLISHED) (the table make bench compares with: a shipped name or a YAML file)"
	@echo "           RELEASE_VERSION=$(RELEASE_VERSION) BASELINE_BENCH=$(BASELINE_BENCH) RELEASE_REQUIRE=$(RELEASE_REQUIRE) RELEASE_ARGS='$(RELEASE_ARGS)' (make release)"
	@echo "           TRITON_RUNTIME=$(TRITON_RUNTIME) TRITON_ARGS='$(TRITON_ARGS)' HTTP_PORT=$(HTTP_PORT) GRPC_PORT=$(GRPC_PORT) ADDRESS=$(ADDRESS) (make triton, make serve)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[$(RUNTIME),test,openvino,plot,compare,serve,index]'
	@# insightface (bench --pipeline's peer) asks for opencv-python, whose cv2 would replace opencv-python-headless's;
	@# nvidia-pytriton (its tritonserver binary is what we use) pins numpy<2 for its own Python side: both without deps
	$(BIN)/python -m pip install --quiet --no-deps 'insightface>=2.1' 'nvidia-pytriton>=0.7'
	touch $(STAMP)

# The python environment Triton's python-backend models run in ('facebatch serve --python-env'): the stub inside
# nvidia-pytriton 0.7 was built for numpy 1 and misreads numpy 2 arrays, so numpy<2 here, with the same onnxruntime,
# onnx and OpenCV as .venv (OpenCV without its numpy>=2 pin: the serving tests prove the results equal), FAISS and
# pyarrow for face_search, and facebatch itself (no torch: the served models never import it).
SERVE_ENV   := $(VENV)-serve
# .installed-2: with faiss-cpu and pyarrow (an env made before them is brought up to date once)
SERVE_STAMP := $(SERVE_ENV)/.installed-2
VERSION_OF   = $$($(BIN)/python -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' $(1))

$(SERVE_STAMP): $(STAMP)
	test -x $(SERVE_ENV)/bin/python || $(PYTHON) -m venv $(SERVE_ENV)
	$(SERVE_ENV)/bin/python -m pip install --quiet --upgrade pip
	$(SERVE_ENV)/bin/python -m pip install --quiet 'numpy<2' "$(ORT_DIST)==$(call VERSION_OF,$(ORT_DIST))" \
		"onnx==$(call VERSION_OF,onnx)" pyyaml rich
	$(SERVE_ENV)/bin/python -m pip install --quiet --no-deps "opencv-python-headless==$(call VERSION_OF,opencv-python-headless)"
	@# face_search reads galleries: .venv's faiss-cpu (it takes numpy>=1.25), and the newest pyarrow that still takes
	@# numpy 1 (pyarrow 26 needs numpy>=2); the served-search tests read .venv's shards and index with them
	$(SERVE_ENV)/bin/python -m pip install --quiet "faiss-cpu==$(call VERSION_OF,faiss-cpu)" 'pyarrow==25.0.1'
	$(SERVE_ENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(SERVE_STAMP)

serve-env: $(SERVE_STAMP) ## the python backend's environment for facebatch serve (.venv-serve: numpy<2, facebatch, onnxruntime)
	@$(SERVE_ENV)/bin/python -c 'import numpy, facebatch.engines.triton.python_models, facebatch.engines.served_search.model; print("$(SERVE_ENV): numpy", numpy.__version__)'

venv: $(STAMP) ## create or refresh .venv
	@$(BIN)/facebatch --version

export: $(STAMP) ## export both defaults to build/onnx (+ .json) and their verified FP16 ONNX (*_fp16.onnx); ENGINES=1: TensorRT engines too
	$(BIN)/facebatch export $(DETECTOR_NAME) --size $(DETECTOR_SIZE) --out $(BUILD)/onnx \
		$(if $(DETECTOR_WEIGHTS),--weights $(DETECTOR_WEIGHTS)) $(if $(PROOF_IMAGES),--images $(PROOF_IMAGES))
	$(BIN)/facebatch export $(EMBEDDER_NAME) --out $(BUILD)/onnx \
		$(if $(EMBEDDER_WEIGHTS),--weights $(EMBEDDER_WEIGHTS)) $(if $(PROOF_IMAGES),--images $(PROOF_IMAGES))
	@$(MAKE) --no-print-directory fp16 $(if $(ENGINES),engines)

# Shell: $$sources = the FP32 artifacts in $(BUILD)/onnx (what FP16 files and engines are made from).
LIST_SOURCES = sources="$$(ls $(BUILD)/onnx/*.onnx 2>/dev/null | grep -v '_fp16\.onnx$$')"; \
	test -n "$$sources" || { echo "make $@: no FP32 artifact in $(BUILD)/onnx; run 'make export' first"; exit 2; }

fp16: $(STAMP) ## convert every FP32 artifact in build/onnx to FP16 ONNX (*_fp16.onnx), each proven against its source first
	@$(LIST_SOURCES); \
	for model in $$sources; do \
		$(BIN)/facebatch convert $$model --fp16 $(if $(PROOF_IMAGES),--images $(PROOF_IMAGES)) || exit $$?; \
	done

engines: $(STAMP) ## TensorRT FP16 engines (batch 1/16/32) of every FP32 artifact → build/engines; says so and skips where TensorRT is missing
	@$(LIST_SOURCES); \
	if problem=$$($(BIN)/python -c 'from facebatch.engines.runners.availability import detect_runtimes as d; print(d().tensorrt_problem() or "")') && test -n "$$problem"; then \
		echo "make engines: skipped: $$problem (pip install 'facebatch[tensorrt]' on a CUDA machine)."; \
		echo "              The verified FP16 ONNX it builds from is in $(BUILD)/onnx (make fp16)."; exit 0; \
	fi; \
	for model in $$sources; do \
		$(BIN)/facebatch build $$model $(if $(PROOF_IMAGES),--images $(PROOF_IMAGES)) || exit $$?; \
	done

# Empty: every artifact in $(BUILD)/onnx, listed when the recipe runs (after 'make export').
ARTIFACTS ?=
# Shell: $$models = the artifacts to check or time, or a clear stop when there are none.
LIST_ARTIFACTS = models="$(or $(ARTIFACTS),$$(ls $(BUILD)/onnx/*.onnx 2>/dev/null))"; \
	test -n "$$models" || { echo "make $@: no artifact in $(BUILD)/onnx; run 'make export' first"; exit 2; }
# make bench: the CPU backends here; the published table it is set beside
BENCH_BACKENDS ?= ort-cpu,openvino
BENCH_ARGS     ?= --batch-sizes 1,2,4,8,16,32 --warmup 0.5 --seconds 1
PUBLISHED      ?= alonsorobots_rtx5090

verify: $(STAMP) ## the release gate on every artifact in build/onnx: all six checks, parity vs torch, --strict → build/reports/
	@mkdir -p $(BUILD)/reports
	@$(LIST_ARTIFACTS); \
	for model in $$models; do \
		test -f $$model || { echo "make verify: $$model is missing; run 'make export' first"; exit 2; }; \
		stem=$$(basename $$model .onnx); \
		$(BIN)/facebatch verify $$model --strict $(if $(PROOF_IMAGES),--images $(PROOF_IMAGES)) $(if $(REFERENCE),--reference $(REFERENCE)) \
			--json $(BUILD)/reports/$$stem.verify.json --markdown $(BUILD)/reports/$$stem.verify.md \
			--junit $(BUILD)/reports/$$stem.verify.xml || exit $$?; \
	done

bench: $(STAMP) ## throughput per batch size of every artifact in build/onnx on BENCH_BACKENDS, beside PUBLISHED → build/reports/bench_*
	@mkdir -p $(BUILD)/reports
	@$(LIST_ARTIFACTS); \
	for model in $$models; do \
		stem=$$(basename $$model .onnx); \
		$(BIN)/facebatch bench $$model --backend $(BENCH_BACKENDS) $(BENCH_ARGS) $(if $(PROOF_IMAGES),--images $(PROOF_IMAGES)) \
			--compare $(PUBLISHED) --json $(BUILD)/reports/bench_$$stem.json --markdown $(BUILD)/reports/bench_$$stem.md \
			--plot $(BUILD)/reports/bench_$$stem.png || exit $$?; \
	done

# make release: every gate into $(BUILD)/release/<name>-<version> (the version defaults to facebatch's + the git commit;
# a release is never overwritten: RELEASE_VERSION=… for another). BASELINE_BENCH: an earlier release's reports/bench.json.
RELEASE_VERSION ?=
BASELINE_BENCH  ?=
# gates that must run and pass (a skipped one fails the release): engines, fp16, int8, bench, performance, triton
RELEASE_REQUIRE ?=
RELEASE_ARGS    ?=

release: $(STAMP) ## the release gate: export, verify, FP16, engines, bench (+ BASELINE_BENCH), Triton → build/release/; last line RELEASE PASS|FAIL
	$(BIN)/facebatch release $(if $(DETECTOR_NAME),--detector $(DETECTOR_NAME)) --size $(DETECTOR_SIZE) $(if $(DETECTOR_WEIGHTS),--detector-weights $(DETECTOR_WEIGHTS)) \
		$(if $(EMBEDDER_NAME),--embedder $(EMBEDDER_NAME)) $(if $(EMBEDDER_WEIGHTS),--embedder-weights $(EMBEDDER_WEIGHTS)) $(if $(PROOF_IMAGES),--images $(PROOF_IMAGES)) \
		--out $(BUILD)/release $(if $(RELEASE_VERSION),--version $(RELEASE_VERSION)) \
		$(if $(BASELINE_BENCH),--baseline-bench $(BASELINE_BENCH)) $(if $(RELEASE_REQUIRE),--require $(RELEASE_REQUIRE)) $(RELEASE_ARGS)

# make triton / serve: the FP32 artifacts of build/onnx as a Triton repository with the face pipeline, and serving it
TRITON_RUNTIME ?= python
TRITON_ARGS    ?= --pipeline --instances 2
HTTP_PORT      ?= 8000
GRPC_PORT      ?= 8001
# make serve listens on ADDRESS, loopback by default; 0.0.0.0 opens inference and health (not the admin APIs) to every host
ADDRESS        ?= 127.0.0.1

triton: $(STAMP) ## a Triton model repository of the FP32 artifacts in build/onnx (TRITON_RUNTIME, + face_pipeline) → build/triton
	@$(LIST_SOURCES); \
	$(BIN)/facebatch triton $$sources --out $(BUILD)/triton --runtime $(TRITON_RUNTIME) $(TRITON_ARGS) --force

serve: $(SERVE_STAMP) ## serve build/triton with tritonserver (nvidia-pytriton's) on ADDRESS:HTTP_PORT/GRPC_PORT until Ctrl-C
	$(BIN)/facebatch serve $(BUILD)/triton --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --address $(ADDRESS) \
		--python-env $(SERVE_ENV)

lint: $(STAMP) ## ruff: the rule set in pyproject.toml (F, I, E, B, UP) and the formatter, on the whole tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# make gpu-check runs with the machine's own Python and installs nothing (GPU machines here have no network):
# PYTHON=… picks the interpreter (it needs CUDA torch and onnxruntime), WHEELS=DIR brings pure-Python packages it lacks.
WHEELS ?=

bench-gallery: $(STAMP) ## FAISS index types on synthetic 512-d vectors (100k, 300k, 1M), tuned to the recall target, and index throughput local vs Ray → build/reports/gallery.md
	@mkdir -p $(BUILD)/reports
	$(BIN)/python -m facebatch.engines.gallery.benchmark --out $(BUILD)/reports/gallery.md --images $(FIXTURES)/images \
		--detector $$(ls $(BUILD)/onnx/scrfd_*_batch.onnx | head -1) --embedder $$(ls $(BUILD)/onnx/*arcface*_batch.onnx $(BUILD)/onnx/*mobilefacenet*_batch.onnx 2>/dev/null | head -1)

bench-ray: $(STAMP) ## Ray's steady state against a local run on one node: photos/s after start-up, start-up apart (copies of the fixture photos; a quiet machine) → build/reports/ray_steady.md
	@mkdir -p $(BUILD)/reports
	$(BIN)/python scripts/bench_ray_steady.py --images $(FIXTURES)/images --copies 6 60 --repeats 3 --out $(BUILD)/reports/ray_steady.md \
		--detector $$(ls $(BUILD)/onnx/scrfd_*_batch.onnx | head -1) --embedder $$(ls $(BUILD)/onnx/*arcface*_batch.onnx $(BUILD)/onnx/*mobilefacenet*_batch.onnx 2>/dev/null | head -1)

large-photos: $(STAMP) ## the fixture photos upscaled to 12 MP-like JPEGs (long side 4000) with their labels scaled → build/large_photos
	$(BIN)/python -m facebatch.engines.bench.large_photos --images $(FIXTURES)/images --out $(BUILD)/large_photos

gpu-check: ## where a CUDA GPU is: gpu tests, torch-CUDA FP16 bench (batch 1-32) of both defaults, the face pipeline → build/gpu-check/<device>/
	@$(PYTHON) scripts/gpu_check.py --out $(BUILD)/gpu-check $(if $(WHEELS),--wheels $(WHEELS))

# The tiers (tests/conftest.py): a test is slow when it exports a model, starts a Triton server or a Ray cluster (the
# fixtures it uses say so), or runs facebatch in a process of its own; make test = test-fast + test-slow.
# PYTEST_ARGS: more for pytest, e.g. PYTEST_ARGS='--durations=15' or PYTEST_ARGS='-x tests/verify'.
# TEST_WORKERS: pytest-xdist processes (the suite waits on servers and processes a third of its time: two keep both
# cores of a 2-core machine busy); each file's tests stay in one worker (tests/conftest.py), 0 runs in this process.
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadgroup)

test: $(STAMP) $(SERVE_STAMP) ## run the whole test suite (real fixtures from $(FIXTURES) when present; the Triton tests in .venv-serve); GPU=1: in .venv-gpu
	FACEBATCH_SERVE_ENV=$(SERVE_ENV) $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(STAMP) ## the unit and contract tests only: no model export, no Triton server, no Ray cluster, no facebatch process
	$(BIN)/python -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-slow: $(STAMP) $(SERVE_STAMP) ## the rest of make test: what make test-fast leaves out (exports, servers, Ray, facebatch processes)
	FACEBATCH_SERVE_ENV=$(SERVE_ENV) $(BIN)/python -m pytest -m slow $(XDIST) $(PYTEST_ARGS)

clean: ## remove build outputs (keeps .venv and .venv-serve)
	rm -rf $(BUILD) .pytest_cache
