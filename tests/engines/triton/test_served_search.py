"""face_search on a real tritonserver (nvidia-pytriton's, python backend, CPU), one server for every check: served
answers equal ``facebatch.search`` on the same photos (subjects, rows, cosines), a photo over the pixel limit is
refused in the pipeline's words, and photos that ``index`` appends while the server runs are found without a
restart. Before that, without a server: ``triton`` refuses a gallery of other models, or a folder that is no gallery,
before it writes anything."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import SpecError
from facebatch.engines.gallery.defaults import MANIFEST as GALLERY_MANIFEST
from facebatch.engines.triton.defaults import IMAGES_INPUT, PIPELINE_MODEL, SEARCH_MODEL
from facebatch.engines.triton.ports import ServerPorts, free_ports
from facebatch.engines.triton.server import TritonServer
from facebatch.workflows.faces import PipelineRun
from facebatch.workflows.gallery import IndexOptions, SearchOptions, index, search
from facebatch.workflows.models import ModelOptions
from facebatch.workflows.triton import RepositoryOptions, TritonOptions, triton

grpcclient = pytest.importorskip("tritonclient.grpc", reason="the serve extra (tritonclient) talks to the server")
pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
MAX_PHOTO_PIXELS = 2_000_000  # below selfie.jpg (2.4 MP), above every query photo
QUERIES = ("obama_2.jpg", "biden_2.jpg", "rob_lowe_2.jpg", "two_people.jpg", "no_face.png")


def enrol(photos: list[Path], subjects: tuple[str, ...], people: Path) -> Path:
    """PEOPLE/<subject>/<subject>_1.jpg for ``subjects`` (copies; nothing copied into the project)."""
    for subject in subjects:
        (people / subject).mkdir(parents=True)
        (photo,) = [p for p in photos if p.name == f"{subject}_1.jpg"]
        shutil.copy2(photo, people / subject / photo.name)
    return people


def run_of(real_detector: Path, batch_embedder: Path) -> PipelineRun:
    return PipelineRun(models=ModelOptions(detector=real_detector, embedder=batch_embedder))


@pytest.fixture(scope="module")
def gallery(real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("served_search")
    people = enrol(photos, ("obama", "biden"), root / "people")
    index(IndexOptions([people], root / "gallery", run_of(real_detector, batch_embedder), faces="best"))
    return root / "gallery"


@pytest.fixture(scope="module")
def server(real_detector: Path, batch_embedder: Path, gallery: Path, serve_env, install):
    out = gallery.parent / "repository"
    serving = RepositoryOptions(runtime="python", pipeline=True, max_photo_pixels=MAX_PHOTO_PIXELS, gallery=gallery)
    triton(TritonOptions([real_detector, batch_embedder], out, serving))
    log = gallery.parent / "tritonserver.log"
    with TritonServer(
        out, ServerPorts(*free_ports(2)), address="127.0.0.1", env=serve_env, install=install, log_file=log
    ) as running:
        yield running


def request_of(photos: list[Path]):
    data = grpcclient.InferInput(IMAGES_INPUT, [len(photos), 1], "BYTES")
    data.set_data_from_numpy(np.array([[p.read_bytes()] for p in photos], dtype=object))
    return [data]


def served(server: TritonServer, photos: list[Path], parameters: dict | None = None) -> list[dict]:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        result = client.infer(SEARCH_MODEL, request_of(photos), client_timeout=120, parameters=parameters)
    return [json.loads(row[0]) for row in result.as_numpy("MATCHES")]


def named(photos: list[Path], names: tuple[str, ...]) -> list[Path]:
    return [next(p for p in photos if p.name == name) for name in names]


def test_served_answers_equal_local_search(server: TritonServer, gallery: Path, photos: list[Path]):
    queries = named(photos, QUERIES)
    answers = served(server, queries)
    local = search(SearchOptions(queries, gallery))
    assert [Path(p).name for p in local.no_face] == ["no_face.png"] and answers[4]["faces"] == []
    by_face = {(Path(q.source).name, q.face): q for q in local}
    served_faces = {(queries[a["photo"]].name, f["face"]): f for a in answers for f in a["faces"]}
    assert set(served_faces) == set(by_face) and ("two_people.jpg", 1) in served_faces
    for key, face in served_faces.items():
        query = by_face[key]
        assert face["answer"] == query.answer, key
        assert [m["row"] for m in face["matches"]] == [m.record["row"] for m in query.matches], key
        assert [m["subject"] for m in face["matches"]] == [m.record["subject"] for m in query.matches], key
        cosines = np.array([m["cosine"] for m in face["matches"]]) - [m.cosine for m in query.matches]
        assert np.abs(cosines).max() <= 1e-5, key
        assert np.allclose(face["box"], query.box, atol=0.02), key
    assert [served_faces[(n, 0)]["answer"] for n in QUERIES[:3]] == ["obama", "biden", "unknown"]


def test_a_request_chooses_its_own_top_k_and_threshold_as_search_would(
    server: TritonServer, gallery: Path, photos: list[Path]
):
    """gRPC request parameters (an integer and a double): top_k 1 and a threshold above obama's own cosine make
    his photo unknown with one match; a bad value is that request's one-line error, and the next request answers."""
    queries = named(photos, ("obama_2.jpg", "biden_2.jpg"))
    local = search(SearchOptions(queries, gallery, top_k=1, threshold=0.99))
    answers = served(server, queries, {"top_k": 1, "threshold": 0.99})
    for answer, query in zip(answers, local, strict=True):
        (face,) = answer["faces"]
        assert len(face["matches"]) == 1 and face["answer"] == query.answer == "unknown"
        assert face["matches"][0]["row"] == query.matches[0].record["row"]
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        with pytest.raises(grpcclient.InferenceServerException) as refused:
            client.infer(SEARCH_MODEL, request_of(queries[:1]), client_timeout=120, parameters={"top_k": 1000})
    assert refused.value.message() == (
        f"{SEARCH_MODEL}: face_search takes the request parameters top_k (1 to 100) and threshold (a cosine, -1 to 1)"
        "; top_k '1000' is not a whole number from 1 to 100"
    )
    assert len(served(server, queries[:1])[0]["faces"][0]["matches"]) == 2  # the model's top_k 5, of 2 faces


def test_the_repository_names_face_search_and_its_gallery(server: TritonServer, gallery: Path):
    readme = (server.repository / "README.md").read_text()
    assert "## Search" in readme and f"`{SEARCH_MODEL}`" in readme and str(gallery) in readme
    described = json.loads((server.repository / SEARCH_MODEL / "1" / "search.json").read_text())
    assert described["gallery"] == str(gallery) and set(described["sha256"]) == {"detector", "embedder"}
    config = (server.repository / SEARCH_MODEL / "config.pbtxt").read_text()
    assert 'name: "MATCHES" data_type: TYPE_STRING' in config and "max_queue_size: 64" in config


def test_a_photo_over_the_pixel_limit_is_refused_like_the_pipelines(server: TritonServer, photos: list[Path]):
    big = named(photos, ("obama_2.jpg", "selfie.jpg"))
    refusals = {}
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        for model in (PIPELINE_MODEL, SEARCH_MODEL):
            with pytest.raises(grpcclient.InferenceServerException) as refused:
                client.infer(model, request_of(big), client_timeout=120)
            refusals[model] = refused.value.message()
    pipeline = refusals[PIPELINE_MODEL]
    assert "photo 1 of the request is 2048x1150" in pipeline and "above this server's limit of 2 MP" in pipeline
    assert refusals[SEARCH_MODEL].endswith(pipeline) and refusals[SEARCH_MODEL].startswith(f"{SEARCH_MODEL}: ")
    assert served(server, big[:1])[0]["faces"][0]["answer"] == "obama"  # and it answers the next request


def test_photos_indexed_while_serving_are_found_without_restart(
    server: TritonServer, gallery: Path, real_detector: Path, batch_embedder: Path, photos: list[Path]
):
    query = named(photos, ("rob_lowe_2.jpg",))
    assert served(server, query)[0]["faces"][0]["answer"] == "unknown"
    people = enrol(photos, ("rob_lowe",), gallery.parent / "more_people")
    pid = server.process.pid if server.process else None
    index(IndexOptions([people], gallery, run_of(real_detector, batch_embedder), faces="best"))
    deadline = time.monotonic() + 30
    while (answer := served(server, query)[0]["faces"][0]["answer"]) != "rob_lowe" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert answer == "rob_lowe" and server.process is not None and server.process.pid == pid  # no restart
    local = search(SearchOptions(query, gallery))
    assert served(server, query)[0]["faces"][0]["matches"][0]["row"] == local[0].matches[0].record["row"]


def test_a_gallery_of_other_models_or_none_is_refused_before_anything_is_written(
    real_detector: Path, batch_embedder: Path, models_dir: Path, gallery: Path, tmp_path: Path
):
    other = tmp_path / "other_gallery"
    shutil.copytree(gallery, other)
    manifest = json.loads((other / GALLERY_MANIFEST).read_text())
    unfixed = read_model_file(models_dir / "mobilefacenet_128d.onnx")  # the embedder before fix made its batch dynamic
    manifest["models"]["embedder"]["sha256"] = unfixed.sha256
    (other / GALLERY_MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "repository"
    for folder, why in ((other, "was made with another embedder"), (tmp_path, "is not a gallery")):
        serving = RepositoryOptions(runtime="python", pipeline=True, gallery=folder)
        with pytest.raises(SpecError, match=why) as refused:
            triton(TritonOptions([real_detector, batch_embedder], out, serving))
        assert refused.value.field == "gallery" and "\n" not in str(refused.value) and not out.exists()
