#!/usr/bin/env python3
"""make gpu-check: the GPU half of facebatch proven in one short run, on a machine with a CUDA GPU.

Written for the GPU machines this project can reach: a CUDA GPU, Python 3.10+ with CUDA PyTorch and
the CPU onnxruntime, no network, no TensorRT. It installs nothing: facebatch runs from this work tree
(PYTHONPATH), with that Python. Pure-Python packages that Python lacks travel in a wheel folder
(--wheels DIR; each *-none-any.whl is unpacked into the output folder and put on the path). Steps:

  1. the GPU (nvidia-smi) and the Python packages (what is missing is named, with the wheels to bring)
  2. every gpu test that can run there (pytest -m gpu; the others skip with their reasons) → gpu-tests.xml
  3. both default models (SCRFD-10G at 320, ArcFace-R50) exported, and benched on torch-CUDA FP16 at batch
     1-32, with ort-cuda where onnxruntime has a usable CUDA provider, trt and ort-trt where TensorRT is
  4. the face pipeline (real SCRFD-2.5G at 640 and MobileFaceNet from the fixtures) over the fixture photos,
     on the fastest ONNX backend there (trt, ort-cuda, else ort-cpu: the pipeline runs ONNX files)

Reports go to OUT/<device>/ in the docs/benchmarks/<device>/ layout (README.md first). Sized for under
10 minutes on an H100-class GPU: rehearsed with --cpu on 2 CPU cores, every step ran in 140 s in all
(exports about 20 s each, each bench cell a 0.5 s warm-up and 1 s, the gpu tests skipping); a GPU host
has more cores for the exports and a GPU for the rest. Each step has a time limit (STEP_LIMITS_S) and
the whole run a budget (TOTAL_BUDGET_S): a step that would start after it is recorded as not run.
Exit 0: everything that ran passed; 1: a step failed (named in the README and on the last line);
2: no GPU, or a required package is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

TREE = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FACEBATCH_SHARED", TREE.parent / "shared")) / "fixtures"
# import name → distribution, for the message that says what to bring
REQUIRED = {
    "numpy": "numpy",
    "torch": "torch (a CUDA build)",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnx_ir": "onnx-ir",
    "onnxsim": "onnxsim",
    "onnxconverter_common": "onnxconverter-common",
    "onnxruntime": "onnxruntime (or onnxruntime-gpu)",
    "cv2": "opencv-python-headless",
    "rich": "rich",
    "yaml": "pyyaml",
    "pytest": "pytest",
}
OPTIONAL = {"tensorrt": "TensorRT", "polygraphy": "Polygraphy", "insightface": "insightface (the pipeline's peer)"}
STEP_LIMITS_S = {"gpu tests": 180, "export": 150, "bench": 120, "pipeline": 90}
TOTAL_BUDGET_S = 570.0
BATCH_SIZES = "1,2,4,8,16,32"
DEFAULT_MODELS = (("scrfd_10g_bnkps", ["--size", "320"]), ("arcface_r50", []))


class CheckFailed(Exception):
    exit_code = 2


def gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def device_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' → 'gpu_nvidia-h100-80gb-hbm3' (the docs/benchmarks/<device>/ folder, as
    cpu_amd-epyc_2-cores is named)."""
    return "gpu_" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unnamed")


def unpack_wheels(folder: Path, site: Path) -> list[str]:
    """Each pure-Python wheel in ``folder`` unpacked into ``site`` (a wheel is a zip of the package as installed)."""
    unpacked = []
    for wheel in sorted(folder.glob("*.whl")):
        if not wheel.name.endswith("-none-any.whl"):
            raise CheckFailed(f"{wheel.name} is not a pure-Python wheel (…-none-any.whl): install it on that machine")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
        unpacked.append(wheel.name)
    return unpacked


class Check:
    def __init__(self, python: str, out: Path, env: dict[str, str], dry_run: bool, scale: float = 1.0) -> None:
        self.python, self.out, self.env, self.dry_run, self.scale = python, out, env, dry_run, scale
        self.steps: list[dict[str, object]] = []
        self.deadline = time.monotonic() + TOTAL_BUDGET_S * scale

    def run(self, name: str, argv: list[str], limit_s: float, log: str) -> bool:
        """One command, its output in ``log``; recorded as passed, failed or over its time limit."""
        printable = " ".join(argv)
        limit_s *= self.scale
        if self.dry_run:
            print(f"would run ({name}, ≤ {limit_s:.0f} s): {printable}")
            return True
        started = time.monotonic()
        limit_s = min(limit_s, self.deadline - started)
        if limit_s < 10:
            self.steps.append(
                {"step": name, "command": printable, "status": "not run (budget spent)", "seconds": 0, "log": "-"}
            )
            print(
                f"gpu-check: {name}: not run: the run's {TOTAL_BUDGET_S * self.scale:.0f} s budget is spent", flush=True
            )
            return False
        print(f"gpu-check: {name}: {printable}", flush=True)
        with open(self.out / log, "wb") as output:
            try:
                done = subprocess.run(
                    argv, cwd=TREE, env=self.env, stdout=output, stderr=subprocess.STDOUT, timeout=limit_s
                )
                status = "pass" if done.returncode == 0 else f"fail (exit {done.returncode})"
            except subprocess.TimeoutExpired:
                status = f"fail (over its {limit_s:.0f} s limit)"
        seconds = time.monotonic() - started
        self.steps.append(
            {"step": name, "command": printable, "status": status, "seconds": round(seconds, 1), "log": log}
        )
        print(f"gpu-check: {name}: {status} in {seconds:.0f} s (log {self.out / log})", flush=True)
        return status == "pass"

    def probe(self, code: str) -> dict:
        done = subprocess.run(
            [self.python, "-c", code], cwd=TREE, env=self.env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise CheckFailed(f"{self.python} cannot run facebatch from {TREE}: {lines[-1] if lines else 'no output'}")
        return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = """
import importlib.util, json, sys
found = {name: importlib.util.find_spec(name) is not None for name in %(names)r}
info = {"python": sys.version.split()[0], "found": found}
import facebatch
info["facebatch"] = facebatch.__file__
if found["torch"]:
    import torch
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.cuda.is_available()
if found["onnxruntime"]:
    from facebatch.engines.runners.availability import CUDA, TENSORRT_EP, detect_runtimes
    here = detect_runtimes()
    info["runtimes"] = here.to_dict()
    info["ort_cuda"] = here.provider_problem(CUDA) is None
    info["ort_trt"] = here.provider_problem(TENSORRT_EP) is None
    info["tensorrt_ready"] = here.tensorrt_problem() is None
print(json.dumps(info))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=TREE / "build" / "gpu-check", help="output folder")
    parser.add_argument("--wheels", type=Path, help="a folder of pure-Python wheels for packages that Python lacks")
    parser.add_argument("--python", default=sys.executable, help="the Python to run facebatch with (default: this)")
    parser.add_argument(
        "--dry-run", action="store_true", help="check the packages and print the commands, without a GPU; runs nothing"
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="a rehearsal on a machine without a GPU: every step runs (torch on the CPU, the gpu tests skipping with "
        "their reasons), limits ×4, reports in OUT/cpu-rehearsal/; proves the commands, measures nothing of a GPU",
    )
    args = parser.parse_args(argv)
    try:
        return run_check(args)
    except CheckFailed as exc:
        print(f"gpu-check: error: {exc}", file=sys.stderr)
        return exc.exit_code


def run_check(args: argparse.Namespace) -> int:
    names = gpus()
    if not names and not (args.dry_run or args.cpu):
        raise CheckFailed(
            "no CUDA GPU here (nvidia-smi is missing or lists none): run make gpu-check on a machine with one"
        )
    device = "cpu-rehearsal" if args.cpu else device_slug(names[0]) if names else "no-gpu-dry-run"
    scale = 4.0 if args.cpu else 1.0
    out = args.out.resolve() / device
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    paths = [str(TREE)]
    wheels: list[str] = []
    if args.wheels is not None:
        if not args.wheels.is_dir():
            raise CheckFailed(f"--wheels {args.wheels} is not a folder")
        site = out / "site"
        wheels = unpack_wheels(args.wheels, site)
        paths.append(str(site))
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH", "")] if p])
    env.setdefault("FACEBATCH_SHARED", str(FIXTURES.parent))
    check = Check(args.python, out, env, args.dry_run, scale)
    info = check.probe(PROBE % {"names": sorted({*REQUIRED, *OPTIONAL})})
    if Path(info["facebatch"]).resolve().parent.parent != TREE:
        raise CheckFailed(f"{args.python} imports facebatch from {info['facebatch']}, not from this tree {TREE}")
    missing = [REQUIRED[name] for name in REQUIRED if not info["found"][name]]
    if missing:
        raise CheckFailed(
            f"{args.python} lacks {', '.join(missing)}; bring the pure-Python ones as wheels "
            "(pip download --no-deps --only-binary=:all: -d WHEELS NAME…) and pass --wheels WHEELS"
        )
    if not info.get("torch_cuda") and not (args.dry_run or args.cpu):
        raise CheckFailed(
            f"torch {info.get('torch')} sees no CUDA GPU: the torch-CUDA bench needs a CUDA build of torch"
        )
    if not FIXTURES.is_dir():
        raise CheckFailed(
            f"{FIXTURES} is absent: the gpu tests and the pipeline need the real fixtures beside the tree"
        )
    (out / "environment.json").write_text(json.dumps({"gpus": names, "wheels": wheels, **info}, indent=2) + "\n")

    python = args.python
    run = check.run
    passed = run(
        "gpu tests",
        [python, "-m", "pytest", "-m", "gpu", "-v", "-p", "no:cacheprovider", f"--junitxml={out / 'gpu-tests.xml'}"],
        STEP_LIMITS_S["gpu tests"],
        "gpu-tests.log",
    )
    onnx = out / "onnx"
    images = str(FIXTURES / "images")
    exported = []
    for model, extra in DEFAULT_MODELS:
        ok = run(
            f"export {model}",
            [python, "-m", "facebatch", "export", model, *extra, "--out", str(onnx), "--images", images],
            STEP_LIMITS_S["export"],
            f"export_{model}.log",
        )
        passed &= ok
        exported += [model] if ok else []
    backends = ["torch"]
    if info.get("ort_cuda"):
        backends.append("ort-cuda")
    if info.get("tensorrt_ready"):
        backends.append("trt")
    if info.get("ort_trt"):
        backends.append("ort-trt")
    artifacts = (
        sorted(str(p) for p in onnx.glob("*.onnx") if not p.stem.endswith("_fp16"))
        if not args.dry_run
        else [str(onnx / f"{m}.onnx") for m in exported or [m for m, _ in DEFAULT_MODELS]]
    )
    if "trt" in backends:
        for artifact in artifacts:
            passed &= run(
                f"build {Path(artifact).name}",
                [python, "-m", "facebatch", "build", artifact, "--images", images],
                STEP_LIMITS_S["export"],
                f"build_{Path(artifact).stem}.log",
            )
    for artifact in artifacts:
        stem = Path(artifact).stem
        passed &= run(
            f"bench {stem}",
            [
                python,
                "-m",
                "facebatch",
                "bench",
                artifact,
                "--backend",
                ",".join(backends),
                "--batch-sizes",
                BATCH_SIZES,
                "--warmup",
                "0.5",
                "--seconds",
                "1",
                "--images",
                images,
                "--compare",
                "alonsorobots_rtx5090",
                "--json",
                str(out / f"bench_{stem}.json"),
                "--markdown",
                str(out / f"bench_{stem}.md"),
            ],
            STEP_LIMITS_S["bench"],
            f"bench_{stem}.log",
        )
    pipeline_backend = next((b for b in ("trt", "ort-cuda") if b in backends), "ort-cpu")
    detector = onnx / "pipeline" / "det_2.5g.onnx"
    embedder = onnx / "pipeline" / "mobilefacenet_128d_batch.onnx"
    models = FIXTURES / "models"
    ok = run(
        "pipeline detector",
        [
            python,
            "-m",
            "facebatch",
            "export",
            "--weights",
            str(models / "det_2.5g.onnx"),
            "--size",
            "640",
            "--out",
            str(detector.parent),
            "--name",
            detector.name,
            "--images",
            images,
        ],
        STEP_LIMITS_S["export"],
        "pipeline_detector.log",
    ) and run(
        "pipeline embedder",
        [python, "-m", "facebatch", "fix", str(models / "mobilefacenet_128d.onnx"), "-o", str(embedder)],
        STEP_LIMITS_S["pipeline"],
        "pipeline_embedder.log",
    )
    if ok and pipeline_backend == "trt":
        for model in (detector, embedder):
            ok &= run(
                f"build {model.name}",
                [python, "-m", "facebatch", "build", str(model), "--images", images],
                STEP_LIMITS_S["export"],
                f"build_{model.stem}.log",
            )
    ok = ok and run(
        f"pipeline on {pipeline_backend}",
        [
            python,
            "-m",
            "facebatch",
            "bench",
            "--pipeline",
            images,
            "--detector",
            str(detector),
            "--embedder",
            str(embedder),
            "--backend",
            pipeline_backend,
            "--json",
            str(out / f"bench_pipeline_{pipeline_backend}.json"),
            "--markdown",
            str(out / f"bench_pipeline_{pipeline_backend}.md"),
        ],
        STEP_LIMITS_S["pipeline"],
        "pipeline.log",
    )
    passed &= ok
    if args.dry_run:
        print(
            f"gpu-check: dry run: {len(missing)} package(s) missing; backends {','.join(backends)}; reports would go to {out}"
        )
        return 0
    write_readme(out, names or ["this CPU (a rehearsal: no GPU)"], info, check.steps, backends, pipeline_backend)
    failed = [s["step"] for s in check.steps if s["status"] != "pass"]
    print(f"gpu-check: {'PASS' if passed else 'FAIL: ' + ', '.join(map(str, failed))} ({out})")
    return 0 if passed else 1


def write_readme(
    out: Path, names: list[str], info: dict, steps: list[dict], backends: list[str], pipeline: str
) -> None:
    runtimes = info.get("runtimes", {})
    lines = [
        f"# make gpu-check on {names[0]}",
        "",
        f"Python {info['python']}, torch {info.get('torch')} (CUDA: {info.get('torch_cuda')}), "
        f"{', '.join(f'{k} {v}' for k, v in runtimes.get('onnxruntime', {}).items())} "
        f"(providers: {', '.join(runtimes.get('ort_providers', []))}), TensorRT {runtimes.get('tensorrt') or 'not installed'}.",
        f"Model backends: {', '.join(backends)}; the face pipeline on {pipeline} (it runs ONNX files).",
        "",
        "| step | status | seconds | log |",
        "|---|---|---:|---|",
        *(f"| {s['step']} | {s['status']} | {s['seconds']} | {s['log']} |" for s in steps),
        "",
        "Reports: gpu-tests.xml (JUnit), bench_*.md/json (per batch size, p50/p90/p99, beside the published table), "
        "bench_pipeline_*.md/json, environment.json.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
