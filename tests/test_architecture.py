"""The packages depend one way (ARCHITECTURE.md):

    core  ←  configs  ←  engines  ←  verify  ←  exporter  ←  workflows  ←  api  ←  cli

and inside engines:  runners  ←  build  ←  pipeline  ←  evaluation  ←  {gallery, triton}  ←  {bench, served_search}.

A module's layer follows from its path: facebatch/<layer>/… or the folder pyproject.toml maps to
it (configs/, engines/, verify/, exporter/; read from its package-dir, not listed here); the
modules directly in facebatch/ are the API (the package, api.py, the errors alias) and
facebatch/__main__ is the CLI. A module may import from its own layer and the layers to its
left, never to its right; sibling sub-layers of engines (gallery, triton) not from each other.
Imports inside functions count too (a lazy import does not make a wrong dependency right). The
ONNX graph helpers import nothing else of ours. Runtimes are imported only by their runners, and
torch only by the exporter and the torch runner.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

from tests.conftest import PROJECT

LAYERS = ["core", "configs", "engines", "verify", "exporter", "workflows", "api", "cli"]
# engines' sub-packages by rank: a module may import a lower rank or its own sub-package, never a higher or equal one
# served_search: face_search, a gallery (engines/gallery) searched from Triton (engines/triton), above both
ENGINE_RANKS = {"runners": 0, "build": 1, "pipeline": 2, "evaluation": 3, "gallery": 4, "triton": 4, "bench": 5}
ENGINE_RANKS["served_search"] = 5
# Leaves import nothing of ours; the ONNX graph helpers import nothing of ours but leaves.
LEAVES = ("facebatch.core.filetypes",)
GRAPH_AND_LEAVES = ("facebatch.core.onnx_graph", *LEAVES)
# folder → package, as pyproject.toml maps them (setuptools package-dir)
FOLDERS = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
FOLDERS = {folder: package for package, folder in FOLDERS.items()}
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
    if len(parts) <= 2 and not (len(parts) == 2 and parts[1] in LAYERS):
        return "api"  # the package itself and the modules directly in facebatch/
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module} is in no layer: facebatch/{parts[1]}/ is not one of {', '.join(LAYERS)}")
    return parts[1]


def engine_part(module: str) -> str | None:
    """The sub-package of engines a module sits in (None: not in one)."""
    parts = module.split(".")
    if parts[:2] != ["facebatch", "engines"] or len(parts) < 3:
        return None
    if parts[2] not in ENGINE_RANKS:
        raise AssertionError(f"{module}: engines/{parts[2]} has no rank; give it one in ENGINE_RANKS")
    return parts[2]


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
            mine, theirs = engine_part(module), engine_part(target)
            if mine and theirs and mine != theirs and ENGINE_RANKS[theirs] >= ENGINE_RANKS[mine]:
                problems.append(
                    f"{module}:{line} imports {target} (engines/{mine} → engines/{theirs}, against the direction)"
                )
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
        "facebatch.core.onnx_graph",
        "facebatch.errors",
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
    assert violations("from facebatch.core.errors import SpecError\n", "facebatch.core.onnx_graph")
    assert violations("from facebatch.core.filetypes import file_kind\n", "facebatch.core.onnx_graph") == []  # a leaf
    assert violations("from facebatch.core.errors import SpecError\n", "facebatch.core.filetypes")  # leaves stay leaves
    assert violations("import facebatch\n", "facebatch.core.publish")  # base may not reach up to the API …
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
    # engines' sub-packages: runners ← build ← pipeline ← evaluation ← {gallery, triton} ← bench
    assert violations("from facebatch.engines.build import int8\n", "facebatch.engines.runners.factory")
    assert violations("from facebatch.engines.triton import server\n", "facebatch.engines.gallery.search")
    assert violations("from facebatch.engines.bench import job\n", "facebatch.engines.pipeline.align")
    assert violations("from facebatch.engines.evaluation import agreement\n", "facebatch.engines.bench.report") == []
    assert violations("from facebatch.engines.runners import base\n", "facebatch.engines.pipeline.align") == []
    # served_search sits above gallery and triton: it imports both, neither imports it
    search = "from facebatch.engines.gallery import search\nfrom facebatch.engines.triton import python_models\n"
    assert violations(search, "facebatch.engines.served_search.model") == []
    assert violations("from facebatch.engines.served_search import plan\n", "facebatch.engines.triton.repository")
    assert violations("from facebatch.engines.served_search import plan\n", "facebatch.engines.gallery.store")


def test_the_command_line_starts_without_heavy_libraries():
    """Start-up counts in every pipeline run; heavy libraries are imported by the
    commands that need them, never by building the parser (facebatch --help)."""
    import subprocess
    import sys

    heavy = ("torch", "onnx", "onnxruntime", "openvino", "cv2", "matplotlib", "onnxsim", "faiss", "ray", "pyarrow")
    probe = f"import sys; from facebatch.cli import build_parser; build_parser(); print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


# ---- sizes: a module does one job (≤ 350 lines), a function one step (≤ 80 lines) ----------------

MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 80
# What may still exceed the bounds (none today). Each entry must still exceed, so the lists only shrink.
OVERSIZED_MODULES: set[str] = set()
LONG_FUNCTIONS: set[str] = set()


def _argparse_registration(module: str, name: str) -> bool:
    """Argument registration is a list of flags, not logic: exempt from the function bound."""
    return layer(module) == "cli" and (name == "register" or name.startswith("add_") or name == "build_parser")


def oversized_modules() -> set[str]:
    return {module_name(p) for p in source_files() if len(p.read_text().splitlines()) > MAX_MODULE_LINES}


def long_functions() -> set[str]:
    found = set()
    for path in source_files():
        module = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _argparse_registration(
                module, node.name
            ):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    found.add(f"{module}.{node.name}")
    return found


def test_modules_stay_small():
    oversized = oversized_modules()
    assert oversized - OVERSIZED_MODULES == set(), f"split these (≤ {MAX_MODULE_LINES} lines)"
    assert OVERSIZED_MODULES - oversized == set(), "these are small now: drop them from OVERSIZED_MODULES"


def test_functions_stay_short():
    long = long_functions()
    assert long - LONG_FUNCTIONS == set(), f"split these (≤ {MAX_FUNCTION_LINES} lines)"
    assert LONG_FUNCTIONS - long == set(), "these are short now: drop them from LONG_FUNCTIONS"
