"""The packages depend one way (ARCHITECTURE.md):

    base (the modules directly in facebatch/: errors, atomic, publish, progress, environment, onnx_graph, …)
      ←  configs  ←  engines  ←  verify  ←  exporter  ←  workflows
      ←  api (facebatch itself and facebatch/api.py)  ←  cli (facebatch/cli, facebatch/__main__)

A module's layer follows from its path: facebatch/<layer>/… or the folder mapped to it
(configs/, engines/, verify/, exporter/); a module directly in facebatch/ is base. A module may
import from its own layer and the layers to its left, never to its right; imports inside
functions count too (a lazy import does not make a wrong dependency right). The ONNX graph
helpers import nothing else of ours. Runtimes are imported only by their runners, and torch
only by the exporter and the torch runner.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT

LAYERS = ["base", "configs", "engines", "verify", "exporter", "workflows", "api", "cli"]
API_MODULES = ("facebatch", "facebatch.api")  # the Python API sits on everything it offers
# Leaves import nothing of ours; the ONNX graph helpers import nothing of ours but leaves.
LEAVES = ("facebatch.filetypes",)
GRAPH_AND_LEAVES = ("facebatch.onnx_graph", *LEAVES)
FOLDERS = {
    "configs": "facebatch.configs",
    "engines": "facebatch.engines",
    "verify": "facebatch.verify",
    "exporter": "facebatch.exporter",
    "facebatch": "facebatch",
}
RUNTIMES = ("onnxruntime", "openvino", "tensorrt", "polygraphy", "tritonclient")
RUNNERS = "facebatch.engines.runners."
BUILDERS = "facebatch.engines.build."
# building an engine or an INT8 model is not running one: engines/build may import these
GALLERY_TOOLS = ("faiss", "ray", "pyarrow")  # the gallery's storage, search and distribution: engines/gallery only
GALLERY = "facebatch.engines.gallery."
BUILDER_RUNTIMES = ("tensorrt", "polygraphy", "onnxruntime.quantization")


def module_name(path: Path) -> str:
    relative = path.relative_to(PROJECT).with_suffix("")
    parts = [FOLDERS[relative.parts[0]], *relative.parts[1:]]
    name = ".".join(parts).replace("facebatch.facebatch", "facebatch")
    return name.removesuffix(".__init__")


def layer(module: str) -> str:
    """The layer of a module, from its name alone."""
    parts = module.split(".")
    if parts[0] != "facebatch":
        raise AssertionError(f"{module} is not one of ours")
    if module == "facebatch.__main__":
        return "cli"
    if module in API_MODULES:
        return "api"
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS):
        if parts[1] not in LAYERS:
            raise AssertionError(
                f"{module} is in no layer: facebatch/{parts[1]}/ is not one of {', '.join(LAYERS[1:-2])}, cli"
            )
        return parts[1]
    return "base"  # the modules directly in facebatch/


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, nested ones included;
    ``from package import name`` counts the name too when it is one of our modules."""
    found = []
    package = module if module.endswith("__init__") else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names if f"{target}.{a.name}" in MODULES]
    return found


def _builder_tool(target: str) -> bool:
    return any(target == tool or target.startswith(tool + ".") for tool in BUILDER_RUNTIMES)


def violations(source: str, module: str) -> list[str]:
    problems = []
    here = layer(module)
    for line, target in imported_modules(source, module):
        root = target.split(".")[0]
        if target.startswith("facebatch"):
            there = layer(target)
            if LAYERS.index(there) > LAYERS.index(here):
                problems.append(f"{module}:{line} imports {target} ({here} → {there}, against the direction)")
            if module in GRAPH_AND_LEAVES and target not in LEAVES:
                problems.append(
                    f"{module}:{line} imports {target}: the graph helpers import nothing else of ours but leaves"
                )
        elif (
            root in RUNTIMES
            and not module.startswith(RUNNERS)
            and not (_builder_tool(target) and module.startswith(BUILDERS))
        ):
            problems.append(
                f"{module}:{line} imports the runtime {root}: only engines/runners may (and engines/build, TensorRT's builder)"
            )
        elif root in GALLERY_TOOLS and not module.startswith(GALLERY):
            problems.append(f"{module}:{line} imports {root}: only engines/gallery may (Parquet, FAISS, Ray Data)")
        elif root == "torch" and not (module.startswith("facebatch.exporter") or module == RUNNERS + "torch_runner"):
            problems.append(f"{module}:{line} imports torch: only the exporter and the torch runner may")
    return problems


def source_files() -> list[Path]:
    files = []
    for folder in FOLDERS:
        files += sorted((PROJECT / folder).rglob("*.py"))
    return files


MODULES = {module_name(p) for p in source_files()}


def test_every_package_module_is_checked():
    names = MODULES
    assert {
        "facebatch.onnx_graph",
        "facebatch.cli",
        "facebatch.engines.runners.base",
        "facebatch.verify.verify_job",
        "facebatch.workflows.fix",
        "facebatch.configs.spec",
    } <= names
    assert {layer(n) for n in names} == set(LAYERS)


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(PROJECT)))
def test_imports_follow_the_direction(path: Path):
    assert violations(path.read_text(), module_name(path)) == []


def test_the_checker_catches_what_it_forbids():
    """A test that cannot fail proves nothing: each rule on a module that breaks it."""
    assert violations("from facebatch.workflows.fix import fix_onnx\n", "facebatch.configs.model_file")
    assert violations(
        "def f():\n    from facebatch.verify import verify_job\n", "facebatch.configs.spec"
    )  # lazy counts
    assert violations("from facebatch.errors import SpecError\n", "facebatch.onnx_graph")
    assert violations("from facebatch.filetypes import file_kind\n", "facebatch.onnx_graph") == []  # a leaf
    assert violations("from facebatch.errors import SpecError\n", "facebatch.filetypes")  # leaves stay leaves
    assert violations("import facebatch\n", "facebatch.publish")  # base may not reach up to the API …
    assert violations("from facebatch.api import verify\n", "facebatch.cli.verify") == []  # … the CLI may
    assert violations("import onnxruntime as ort\n", "facebatch.verify.independence")
    assert violations("import torch\n", "facebatch.verify.parity")
    assert violations("from . import verify_job\n", "facebatch.exporter.x") == []  # exporter → verify is allowed …
    assert violations("from ..exporter import repair\n", "facebatch.verify.x")  # … relative imports resolve too
    assert violations("import onnxruntime\n", "facebatch.engines.runners.onnxruntime_runner") == []
    assert violations("import faiss\n", "facebatch.cli.search")  # the gallery's tools stay in engines/gallery
    assert violations("import ray.data\n", "facebatch.engines.pipeline.face_pipeline")
    assert violations("import faiss\nimport pyarrow\n", "facebatch.engines.gallery.faiss_index") == []
    assert violations("import tensorrt as trt\n", "facebatch.engines.build.tensorrt_engine") == []  # the builder …
    assert violations("import onnxruntime\n", "facebatch.engines.build.tensorrt_engine")  # … runs nothing itself
    assert violations("from facebatch.verify.report import VerifyReport\n", "facebatch.cli.render") == []


def test_the_command_line_starts_without_heavy_libraries():
    """Start-up counts in every pipeline run; heavy libraries are imported by the
    commands that need them, never by building the parser (facebatch --help)."""
    import subprocess
    import sys

    heavy = ("torch", "onnx", "onnxruntime", "openvino", "cv2", "matplotlib", "onnxsim", "faiss", "ray", "pyarrow")
    probe = f"import sys; from facebatch.cli import build_parser; build_parser(); print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
