"""The README.md of a written repository: what it serves and how to serve and measure it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from facebatch.engines.triton.defaults import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    FACE_OUTPUTS,
    IMAGES_INPUT,
    SEARCH_FILE,
)
from facebatch.engines.triton.served_models import ServedModel

if TYPE_CHECKING:  # the repository writer calls this module
    from facebatch.engines.triton.repository import TritonRepository

NGC_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"  # Triton 2.51, the release nvidia-pytriton 0.7 ships


def _model_rows(repository: TritonRepository) -> list[str]:
    rows = [
        "| model | role | runtime | max batch | preferred batches | instances | inputs | outputs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in repository.models:
        config = model.config
        runtime = config.platform or config.backend
        batching = config.dynamic_batching
        preferred = ", ".join(map(str, batching.preferred_batch_sizes)) if batching else "-"

        def tensors(items: tuple) -> str:
            return "<br>".join(
                f"`{t.name}` {t.dtype.name if t.dtype.kind != 'O' else 'bytes'} [{', '.join(map(str, t.dims))}]"
                for t in items
            )

        rows.append(
            f"| `{model.name}` | {model.role} | {runtime} ({config.instance_kind}) | {config.max_batch_size} | {preferred} | "
            f"{config.instance_count} | {tensors(config.inputs)} | {tensors(config.outputs)} |"
        )
    return rows


def _perf_analyzer(repository: TritonRepository) -> list[str]:
    lines = []
    for model in repository.models:
        if model.role in ("pipeline", "search"):
            continue
        shapes = " ".join(
            f"--shape {t.name}:{','.join(str(d) for d in t.dims)}" for t in model.config.inputs if -1 in t.dims
        )
        for batch in sorted(
            {1, *(model.config.dynamic_batching.preferred_batch_sizes if model.config.dynamic_batching else ())}
        ):
            lines.append(
                f"perf_analyzer -m {model.name} -u localhost:{DEFAULT_GRPC_PORT} -i grpc -b {batch} "
                f"--concurrency-range 1:16:2 {shapes}".rstrip()
            )
    return lines


def repository_readme(repository: TritonRepository) -> str:
    """The README.md of ``repository``: its models, how to serve it (facebatch, NVIDIA's container), the python
    backend's environment, the face pipeline's inputs and outputs, and how to measure it."""
    python_models = any(m.config.backend == "python" for m in repository.models)
    pipeline = repository.model("pipeline")
    out = [
        "# Triton model repository (written by facebatch)",
        "",
        f"Runtime: **{repository.runtime}**. Each model takes a batch axis first (not listed in the dims below), "
        "and Triton's dynamic batcher merges concurrent requests up to the max batch.",
        "",
        *_model_rows(repository),
        "",
        *_serve_section(repository, python_models),
    ]
    if python_models:
        out += _python_backend_section()
    if pipeline is not None:
        out += _pipeline_section(pipeline.name)
    search = repository.model("search")
    if search is not None:
        out += _search_section(search.name, _search_gallery(search))
    out += _measure_section(repository)
    out += _license_section(repository)
    return "\n".join(out)


def _license_section(repository: TritonRepository) -> list[str]:
    """Whose weights each model serves, on what terms (each config.pbtxt says it too)."""
    rows = [f"- `{m.name}` ({Path(m.source).name}): {'; '.join(m.licenses) or 'unknown'}" for m in repository.models]
    return ["## Licence of the weights", "", *rows, ""]


def _serve_command(path: Path, python_models: bool) -> str:
    return (
        f"facebatch serve {shlex.quote(str(path))} --http-port {DEFAULT_HTTP_PORT} --grpc-port {DEFAULT_GRPC_PORT}"
        + (" --python-env .venv-serve" if python_models else "")
    )


def _with_facebatch(repository: TritonRepository, python_models: bool) -> list[str]:
    """How ``facebatch serve`` serves it: as it is where every model is a python model; otherwise the tritonserver
    inside nvidia-pytriton (python backend only) refuses it, so the commands say what serves it with that one."""
    if all(m.config.backend == "python" for m in repository.models):
        head = (
            "With facebatch (tritonserver from PATH, or the one inside the `nvidia-pytriton` wheel; Ctrl-C stops it):"
        )
        return [head, "", "```bash", _serve_command(repository.path, python_models), "```", ""]
    lines = [
        f"With facebatch and a tritonserver on PATH that has Triton's {repository.runtime} backend (NVIDIA's container "
        "below has it; Ctrl-C stops it). The tritonserver inside the `nvidia-pytriton` wheel has the python backend "
        "only and refuses these models.",
        "",
        "```bash",
        _serve_command(repository.path, python_models),
        "```",
        "",
    ]
    sources = [Path(m.source).resolve() for m in repository.models if m.role in ("detector", "embedder")]
    if any(p.suffix != ".onnx" for p in sources):  # TensorRT plans: the python runtime takes their ONNX artifacts
        return lines + [
            "To serve them with the wheel's, write the repository again from their ONNX artifacts with "
            "`--runtime python`.",
            "",
        ]
    again = repository.path.with_name(f"{repository.path.name}_python").resolve()
    write = ["facebatch", "triton", *map(str, sources), "--runtime", "python", "--out", str(again)]
    write += ["--pipeline"] if repository.model("pipeline") is not None else []
    search = repository.model("search")
    write += ["--gallery", _search_gallery(search)] if search is not None else []
    return lines + [
        "To serve them with the wheel's instead, write the repository again with the python runtime (onnxruntime on "
        "the CPU inside the python backend) and serve that:",
        "",
        "```bash",
        shlex.join(write),
        _serve_command(again, True),
        "```",
        "",
    ]


def _serve_section(repository: TritonRepository, python_models: bool) -> list[str]:
    return [
        "## Serve it",
        "",
        *_with_facebatch(repository, python_models),
        "It listens on 127.0.0.1 and keeps Triton's repository, shared-memory, logging and trace APIs behind a key "
        "only it holds (`--address` opens inference and health to other hosts, and says so).",
        "",
        "With NVIDIA's container (GPU instances need `--gpus all`; the ports published on 127.0.0.1 only, and the "
        "shared-memory, logging and trace APIs restricted to a key you choose: Triton has no authentication of its own, "
        f"so put a proxy with TLS and authentication in front before publishing them further). {NGC_IMAGE} is the release "
        "this repository was tested against; take the newest image with NVIDIA's security fixes for production:",
        "",
        "```bash",
        "KEY=$(openssl rand -hex 24)  # keep it to yourself: whoever has it may reconfigure the server",
        f"docker run --rm --gpus all -p127.0.0.1:{DEFAULT_HTTP_PORT}:8000 -p127.0.0.1:{DEFAULT_GRPC_PORT}:8001 "
        f"-p127.0.0.1:{DEFAULT_METRICS_PORT}:8002 -v {repository.path.resolve()}:/models:ro {NGC_IMAGE} tritonserver "
        '--model-repository=/models --http-restricted-api=shared-memory,logging,trace:admin-key="$KEY" '
        '--grpc-restricted-protocol=shared-memory,logging,trace:admin-key="$KEY"',
        "```",
        "",
    ]


def _python_backend_section() -> list[str]:
    return [
        "### The python backend",
        "",
        "The python models (`model.py`) run facebatch's own code, so the python backend's interpreter must import "
        "facebatch and its runtime dependencies (onnxruntime, OpenCV, onnx, numpy, PyYAML, rich; not torch). Either "
        "install them into the container's python (facebatch's source with `pip install --no-deps`, then those packages), or "
        "pack an environment and name it in each python model's config:",
        "",
        "```text",
        'parameters { key: "EXECUTION_ENV_PATH" value: { string_value: "$$TRITON_MODEL_DIRECTORY/facebatch_env.tar.gz" } }',
        "```",
        "",
        "(a `conda-pack` archive of a Python with facebatch, as Triton's python backend documents). The python stub of "
        "Triton 2.51 and older (the NGC 24.10 image; the `nvidia-pytriton` 0.7 wheel) was built for numpy 1 and "
        "misreads numpy 2 arrays: give it an environment with `numpy<2` (`make serve-env` makes one for `facebatch serve`).",
        "",
    ]


def _pipeline_section(name: str) -> list[str]:
    return [
        "## The face pipeline",
        "",
        f"`{name}` takes encoded photos (JPEG, PNG, BMP, WebP or TIFF bytes) as `{IMAGES_INPUT}` "
        f"(BYTES, shape [photos, 1]) and returns one row per face: {', '.join(f'`{n}`' for n in FACE_OUTPUTS)} "
        "(which photo of the request, box x1 y1 x2 y2 in the photo's pixels, score, 5 landmarks, unit-length "
        "embedding). It decodes, letterboxes, decodes the heads, runs NMS and aligns with facebatch's code, and "
        "calls the detector and the embedder models through BLS, so their batchers merge the work of every "
        "pipeline instance.",
        "",
        "```python",
        "import numpy as np, tritonclient.http as http",
        f'client = http.InferenceServerClient("localhost:{DEFAULT_HTTP_PORT}")',
        'photos = np.array([[open(p, "rb").read()] for p in ("a.jpg", "b.jpg")], dtype=object)',
        f'images = http.InferInput("{IMAGES_INPUT}", list(photos.shape), "BYTES"); images.set_data_from_numpy(photos)',
        f'result = client.infer("{name}", [images])',
        f'boxes, embeddings = result.as_numpy("{FACE_OUTPUTS[1]}"), result.as_numpy("{FACE_OUTPUTS[4]}")',
        "```",
        "",
    ]


def _search_gallery(search: ServedModel) -> str:
    """The gallery face_search reads (its search.json records the absolute path)."""
    return str(json.loads(str(search.files[f"1/{SEARCH_FILE}"]))["gallery"])


def _search_section(name: str, gallery: str) -> list[str]:
    return [
        "## Search",
        "",
        f"`{name}` takes the same `{IMAGES_INPUT}` as the face pipeline (it hands them to it through BLS, so its photo "
        "limits and queue bounds hold) and returns `MATCHES` (BYTES, shape [photos, 1]): per photo a JSON document, "
        '`{"photo": i, "faces": [{"face", "box", "score", "answer", "matches": [{"rank", "cosine", "match", "row", '
        '"photo", "face", "subject", "box", "score"}]}]}`, found in the gallery with the code, index and search '
        f"parameters of `facebatch search`. The gallery is read where it is ({gallery}), not copied: a new version "
        "that `facebatch index` commits while the server runs is answered from on the next request once it is whole. "
        "`top_k` and `threshold` are parameters of its config.pbtxt.",
        "",
        "```python",
        "import json, numpy as np, tritonclient.http as http",
        f'client = http.InferenceServerClient("localhost:{DEFAULT_HTTP_PORT}")',
        'photos = np.array([[open("query.jpg", "rb").read()]], dtype=object)',
        f'images = http.InferInput("{IMAGES_INPUT}", list(photos.shape), "BYTES"); images.set_data_from_numpy(photos)',
        f'answers = [json.loads(row[0]) for row in client.infer("{name}", [images]).as_numpy("MATCHES")]',
        'print([(face["answer"], face["matches"][0]["cosine"]) for face in answers[0]["faces"]])',
        "```",
        "",
    ]


def _measure_section(repository: TritonRepository) -> list[str]:
    out = [
        "## Measure it",
        "",
        "Client-side throughput and p50/p90/p99 latency per concurrency (tritonclient, no perf_analyzer needed):",
        "",
        "```bash",
        *(
            f"facebatch bench --triton localhost:{DEFAULT_HTTP_PORT} --model {m.name} --concurrency 1,2,4,8,16 --images PHOTOS/"
            for m in repository.models
        ),
        "```",
        "",
    ]
    analyzer = _perf_analyzer(repository)
    if analyzer:
        out += [
            "With perf_analyzer (in NVIDIA's `-sdk` container), per batch size and concurrency:",
            "",
            "```bash",
            *analyzer,
            "```",
            "",
        ]
    return out
