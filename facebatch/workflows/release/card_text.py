"""A release's ``README.md``: a model card in the Hugging Face hub's format (YAML front matter, the models,
per-batch throughput, the independence proof, the twins' accuracy, usage, how to reproduce, licence),
generated from the release's own reports only: every figure in it is in ``reports/*.json``. What the
release did not measure is left out, saying why."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from facebatch.engines.bench.published import PublishedTable, compare
from facebatch.workflows.release.facts import FACTS

CARD = "README.md"
SEEDED_LINE = "seeded weights, not for use"
PIPELINE_TAGS = {"face-detection": "object-detection", "face-recognition": "image-feature-extraction"}
Json = dict[str, Any]


def read_reports(folder: Path) -> tuple[Json, Json | None, dict[str, Json]]:
    """reports/release.json, reports/bench.json (None: no bench ran) and every other JSON report by stem."""
    reports = folder / "reports"
    facts = json.loads((folder / FACTS).read_text())
    bench_file = reports / "bench.json"
    bench = json.loads(bench_file.read_text()) if bench_file.is_file() else None
    others = {
        p.name.removesuffix(".json"): json.loads(p.read_text())
        for p in sorted(reports.glob("*.json"))
        if p.name not in ("release.json", "bench.json", "performance.json")
    }
    return facts, bench, others


def model_card(folder: Path, published: PublishedTable | None = None) -> str:
    """The card of the release in ``folder`` (its reports are read, nothing is run); ``published``: a published
    table to set the measured throughput beside, with the ratio per row."""
    facts, bench, reports = read_reports(Path(folder))
    artifacts = facts["artifacts"]
    if not artifacts:  # nothing passed verify: nothing to describe, only the gates that refused it
        lines = [f"# {facts['name']} {facts['version']}: not for use, no artifact passed its gates", ""]
        lines += [f"- {g['gate']}: {g['status'].upper()}: {g['summary']}" for g in facts["gates"]]
        return "\n".join(lines) + "\n"
    seeded = any(a["seeded"] for a in artifacts)
    title = f"# {facts['name']} {facts['version']}" + (f": {SEEDED_LINE}" if seeded else "")
    lines = [*front_matter(facts), title, "", *_intro(facts, seeded), *_models(artifacts)]
    lines += _throughput(facts, bench, published)
    lines += _independence(artifacts, reports)
    lines += _twins(artifacts, facts, reports)
    lines += _floor(reports)
    lines += _usage(artifacts), *_reproduce(facts), *_licence(artifacts)
    return "\n".join(lines) + "\n"


def front_matter(facts: Json) -> list[str]:
    artifacts = facts["artifacts"]
    licences = {a["license"]["name"]: a["license"] for a in artifacts}
    (only,) = licences.values() if len(licences) == 1 else ({"hub_license": "other", "name": "several", "link": ""},)
    tasks = list(dict.fromkeys(a["task"] for a in artifacts))
    families = list(dict.fromkeys(a["family"] for a in artifacts if a["family"] != "embedder"))
    engines = any(g["gate"].startswith("engine ") and g["status"] == "pass" for g in facts["gates"])
    tags = [*tasks, *families, "onnx", "batch-inference", *(["tensorrt"] if engines else [])]
    lines = ["---", f"license: {only['hub_license']}"]
    if only["hub_license"] == "other":
        lines.append(f"license_name: {json.dumps(only['name'])}")
        lines += [f"license_link: {json.dumps(only['link'])}"] if only["link"] else []
    lines += ["library_name: onnx", f"pipeline_tag: {PIPELINE_TAGS[tasks[0]]}", "tags:"]
    lines += [f"  - {tag}" for tag in tags]
    lines += ["base_model:"] + [f"  - {json.dumps(m)}" for m in dict.fromkeys(a["model"] for a in artifacts)]
    return [*lines, "---", ""]


def _intro(facts: Json, seeded: bool) -> list[str]:
    passed = sum(g["status"] == "pass" for g in facts["gates"])
    lines = []
    if seeded:
        lines += [
            "> **Seeded weights, not for use.** Some files hold random weights: they find and recognise nothing. "
            "This release proves the pipeline and measures speed only.",
            "",
        ]
    lines += [
        f"Batch-safe ONNX face models released by facebatch {facts['facebatch']}: every file takes any batch "
        f"in its range, and every figure below was measured by this release ({passed} of {len(facts['gates'])} "
        f"gates passed; {'RELEASE PASS' if facts['passed'] else 'RELEASE FAIL'}). The reports are in `reports/`.",
        "",
    ]
    return lines


def _models(artifacts: Sequence[Json]) -> list[str]:
    lines = [
        "## Models",
        "",
        "| File | Task | Input | Outputs | Batch | sha256 | Size (bytes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in artifacts:
        dims = ",".join("N" if d == "batch" else str(d) for d in a["input"]["dims"])
        outputs = "<br>".join(f"`{o['name']}`: {o['meaning']}" for o in a["outputs"])
        batch = a["batch"]
        lines.append(
            f"| `{a['file']}` | {a['task']} ({a['model']}, {a['precision'].upper()}) | `{a['input']['name']}` [{dims}] "
            f"| {outputs} | {batch['min']}-{batch['max']} (opt {batch['opt']}) | `{a['sha256']}` | {a['size']} |"
        )
    return [*lines, ""]


def _throughput(facts: Json, bench: Json | None, published: PublishedTable | None) -> list[str]:
    lines = ["## Throughput", ""]
    if bench is None:
        return [*lines, "Not measured: the bench gate did not run (no verified artifact to time).", ""]
    speedups = {(s["artifact"], s["backend"]): s for s in facts["speedups"]}
    for run in bench["runs"]:
        threads = f", {run['threads']} threads" if run["threads"] else ""
        lines += [f"### {run['artifact']} on {run['backend']} ({run['provider']}, {run['hardware']}{threads})", ""]
        lines += ["| Batch | FPS | ms/frame |", "|---|---|---|"]
        lines += [f"| {t['batch']} | {t['fps']:.1f} | {t['ms_per_frame']:.3f} |" for t in run["timings"]]
        s = speedups.get((run["artifact"], run["backend"]))
        if s is not None:
            lines += [
                "",
                f"Speed-up from batching: **{s['speedup']:.2f}×** (best FPS ÷ batch-1 FPS: {s['best_fps']:.1f} at "
                f"batch {s['best_batch']} ÷ {s['batch1_fps']:.1f} at batch 1).",
            ]
        if published is not None:
            lines += _published_rows(run, published)
        lines.append("")
    skipped = [g for g in facts["gates"] if g["gate"] == "tensorrt engines" and g["status"] == "skip"]
    if skipped:
        lines += [f"No TensorRT rows: engines not built here ({skipped[0]['summary'].split(' (')[0]}).", ""]
    return lines


def _published_rows(run: Json, table: PublishedTable) -> list[str]:
    fps = {t["batch"]: t["fps"] for t in run["timings"]}
    found = compare(
        table, run["artifact"], run["model"], tuple(run["input_size"]), run["backend"], run["backend"],
        run["hardware"], run["precision"], fps,
    )  # fmt: skip
    if found.missing:
        return ["", f"Published ({table.path.name}): {found.missing}."]
    lines = [
        "",
        f"Beside {table.path.name} ({table.source}; {table.hardware}, {table.precision}, {table.backend}):",
        "",
    ]
    lines += ["| Batch | measured FPS | published FPS | ratio |", "|---|---|---|---|"]
    for row in found.rows:
        measured = "not measured" if row.measured_fps is None else f"{row.measured_fps:.1f}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.3f}"
        lines.append(f"| {row.batch} | {measured} | {row.published_fps:g} | {ratio} |")
    if found.differences:
        lines += ["", f"{'; '.join(found.differences)} differ: the ratio is for orientation only."]
    return lines


def _stem(relative: str) -> str:
    return PurePosixPath(relative).stem


def _independence(artifacts: Sequence[Json], reports: Mapping[str, Json]) -> list[str]:
    lines = ["## Batch independence: no frame sees another", ""]
    for a in artifacts:
        report = reports.get(f"{_stem(a['file'])}.verify")
        check = next((c for c in report["checks"] if c["number"] == 1), None) if report else None
        if check is None or not check["data"].get("results"):
            lines += [f"- `{a['file']}`: not measured (no verify report with check 1)", ""]
            continue
        data, outputs = check["data"], list(dict.fromkeys(r["output"] for r in check["data"]["results"]))
        cells = {(r["output"], r["batch"]): r["max_abs_diff"] for r in data["results"]}
        photos = [f for f in report["frames"] if not f.startswith("noise")]
        noise = len(report["frames"]) - len(photos)
        lines += [
            f"`{a['file']}`: max |single − batched| per output at each batch size, tolerance {data['atol']:g}; frames: "
            f"{', '.join(photos) or 'no photo'} and {noise} noise frames.",
            "",
            "| Batch | " + " | ".join(outputs) + " |",
            "|---|" + "---|" * len(outputs),
        ]
        for batch in data["batch_sizes"]:
            lines.append(f"| {batch} | " + " | ".join(_diff(cells.get((o, batch), 0.0)) for o in outputs) + " |")
        lines.append("")
    return lines


def _diff(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


def _twins(artifacts: Sequence[Json], facts: Json, reports: Mapping[str, Json]) -> list[str]:
    lines = ["## Reduced precision against FP32", ""]
    for a in artifacts:
        if a["precision"] == "fp32":
            continue
        quantize = reports.get(f"{_stem(a['file'])}.quantize")
        verify = reports.get(f"{_stem(a['file'])}.verify")
        if quantize is not None:
            lines += [f"- `{a['file']}` against `{a['made_from']}`: {accuracy_text(quantize['accuracy'])}"]
        elif verify is not None:
            check = next(c for c in verify["checks"] if c["number"] == 4)
            lines += [f"- `{a['file']}` against `{a['made_from']}`: {check['summary']}"]
    refused = [g for g in facts["gates"] if g["gate"].startswith("int8 ") and g["status"] != "pass"]
    lines += [f"- not released: {g['summary']}" for g in refused]
    if len(lines) == 2:
        lines.append("No FP16 or INT8 file in this release.")
    return [*lines, ""]


def _floor(reports: Mapping[str, Json]) -> list[str]:
    """reports/accuracy.json as tables: per FP32 file, each twin's figures against it and its verdict at the floor."""
    lines = ["## Accuracy floor per format", ""]
    record = reports.get("accuracy")
    if record is None:
        return [*lines, "Not measured: the release had no photos to measure accuracy on.", ""]
    f = record["floor"]
    lines += [
        f"Each format against its FP32 file on the release's photos ({', '.join(record['photos'])}). The floor a "
        f"released twin is held to: recall on the hand-labelled faces at least {f['recall']:g} × FP32's, at most "
        f"{f['missed']:g} of FP32's faces missed, mean landmark error at most {f['landmark_px']:g} px; cosine to the FP32 "
        f"embedding at least {f['cosine']:g}, pair accuracy (cosine {record['pair_threshold']:g} or more: the same "
        f"person) at least {f['pairs']:g} × FP32's.",
        "",
    ]
    for artifact in record["artifacts"]:
        lines += [f"`{artifact['artifact']}` ({artifact['role']}): {artifact['status'].upper()}", ""]
        if artifact["why"]:
            lines += [artifact["why"], ""]
            continue
        if artifact["role"] == "detector":
            lines += [
                "| Format | File | Faces | Recall (hand-labelled) | Missed FP32 faces | Landmark error (mean / max px) | Floor |"
            ]
        else:
            lines += ["| Format | File | Faces | Cosine to FP32 (min / mean) | Pairs right | Floor |"]
        lines.append("|---" * lines[-1].count(" | ") + "|---|")
        lines += [_floor_row(row) for row in artifact["rows"]] + [""]
    return lines


def _floor_row(row: Json) -> str:
    head = f"| {row['twin']} | `{row['file']}` |" if row["file"] else f"| {row['twin']} | - |"
    if "skipped" in row:
        return f"{head} {row['skipped']} |"
    verdict = row.get("floor", "reference")
    if "pairs" in row:
        p, c = row["pairs"], row["cosine"]
        cosine = "reference" if c is None else f"{c['min']:.4f} / {c['mean']:.4f}"
        pairs = (
            f"{p['correct']}/{p['pairs']} ({p['same']} same, {p['different']} different)" if p["pairs"] else "no pairs"
        )
        return f"{head} {row['faces']} | {cosine} | {pairs} | {verdict} |"
    recall = "no labels" if row["recall"] is None else f"{row['recall']}/{row['labelled']}"
    landmarks = row["landmark_px"]
    error = (
        "reference"
        if row["twin"] == "FP32"
        else "-"
        if not landmarks
        else f"{landmarks['mean']:.2f} / {landmarks['max']:.2f}"
    )
    missed = "reference" if row["twin"] == "FP32" else row["missed"]
    return f"{head} {row['faces']} | {recall} | {missed} | {error} | {verdict} |"


def accuracy_text(accuracy: Json) -> str:
    """An accuracy record of verify/accuracy.py in words, with its figures as the report holds them."""
    if "cosine" in accuracy:
        cosine = accuracy["cosine"]
        text = f"{accuracy['faces']} aligned faces, cosine to the FP32 embedding min {cosine['min']:.4f}"
        return text + (f", mean {cosine['mean']:.4f}" if cosine.get("mean") is not None else "")
    text = f"FP32 finds {accuracy['reference_faces']} faces, this file {accuracy['candidate_faces']}"
    if accuracy.get("labelled"):
        n = accuracy["labelled"]
        text += f"; recall on {n} hand-labelled faces: FP32 {accuracy['recall_reference']}/{n}, this file {accuracy['recall_candidate']}/{n}"
    errors = accuracy.get("landmark_error_px") or {}
    if errors:
        text += f"; landmark error against FP32 mean {errors['mean']:.2f} px, max {errors['max']:.2f} px"
    return text


def _usage(artifacts: Sequence[Json]) -> str:
    """A snippet that runs as written in the release folder: each FP32 file on a batch of 4, the batch kept."""
    chosen = list({a["task"]: a for a in artifacts if a["precision"] == "fp32"}.values())
    code = ["import numpy as np", "import onnxruntime as ort", ""]
    for a in chosen:
        h, w = a["input_size"]
        code += [
            f'session = ort.InferenceSession("{a["file"]}", providers=["CPUExecutionProvider"])',
            f"frames = np.random.rand(4, 3, {h}, {w}).astype(np.float32)  # 4 preprocessed frames",
            f'outputs = session.run(None, {{"{a["input"]["name"]}": frames}})',
            'assert all(o.shape[0] == 4 for o in outputs), "every output keeps the batch first"',
            "",
        ]
    return "\n".join(["## Usage", "", "In the release folder:", "", "```python", *code[:-1], "```", ""])


def _reproduce(facts: Json) -> list[str]:
    env = facts["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in sorted(env.get("packages", {}).items()))
    return [
        "## Reproduce",
        "",
        "```bash",
        *facts["commands"],
        "```",
        "",
        f"Made with facebatch {facts['facebatch']} at commit {facts['git_commit'] or 'unknown'} on {env.get('cpu')} "
        f"({env.get('platform')}; Python {env.get('python')}; GPUs: {', '.join(map(str, env.get('gpus') or [])) or 'none'}); "
        f"{packages}.",
        "",
    ]


def _licence(artifacts: Sequence[Json]) -> list[str]:
    lines = ["## Licence and credits", ""]
    for a in artifacts:
        lic = a["license"]
        link = f" ({lic['link']})" if lic["link"] else ""
        lines.append(f"- `{a['file']}`: **{lic['name']}**{link}; {lic['source']}")
    lines += [
        "",
        "SCRFD and ArcFace are InsightFace's (https://github.com/deepinsight/insightface); InsightFace's pretrained "
        "weights are for non-commercial research only. The re-export, the proofs and the measurements are facebatch's.",
    ]
    return lines
