"""face_search's answer shaping (no server): one JSON document per photo of the request, its faces in the
pipeline's order with the matches ``search`` gives the same embeddings, a photo without a face answered with none;
pipeline rows that are not one per face of the request's photos refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.gallery.search import GallerySearch
from facebatch.engines.served_search.answers import photo_answers, photo_count, request_choices
from tests.engines.served_search.galleries import commit, new_gallery, unit


def pipeline_rows(image_index: list[int], embeddings: np.ndarray) -> dict[str, np.ndarray]:
    faces = len(image_index)
    return {
        "FACE_IMAGE_INDEX": np.array(image_index, np.int32),
        "BOXES": np.arange(faces * 4, dtype=np.float32).reshape(faces, 4) + 0.123,
        "SCORES": np.linspace(0.9, 0.8, faces, dtype=np.float32),
        "EMBEDDINGS": embeddings,
    }


def test_each_photo_gets_its_faces_and_their_matches(tmp_path: Path):
    root = tmp_path / "gallery"
    commit(new_gallery(root), {"ada": unit(1), "bob": unit(2), "cyd": unit(3)})
    search = GallerySearch(root)
    queries = np.stack([unit(2), unit(3)])
    rows = pipeline_rows([1, 1], queries)  # photo 0: no face; photo 1: two faces

    answers = photo_answers(rows, 3, lambda vectors: search.search(vectors, 2, 0.35))
    assert answers.shape == (3, 1) and answers.dtype == object
    documents = [json.loads(row[0]) for row in answers]
    assert [d["photo"] for d in documents] == [0, 1, 2] and documents[0]["faces"] == documents[2]["faces"] == []
    faces = documents[1]["faces"]
    assert [f["face"] for f in faces] == [0, 1] and [f["answer"] for f in faces] == ["bob", "cyd"]
    assert faces[0]["box"] == [0.12, 1.12, 2.12, 3.12] and faces[1]["score"] == 0.8
    expected = search.search(queries, 2, 0.35)
    for face, matches in zip(faces, expected, strict=True):
        assert face["matches"] == [m.to_dict() for m in matches] and len(face["matches"]) == 2


def test_a_request_without_faces_is_answered_without_searching():
    def never(_vectors):
        raise AssertionError("nothing to search")

    answers = photo_answers(pipeline_rows([], np.zeros((0, 8), np.float32)), 2, never)
    assert [json.loads(row[0]) for row in answers] == [{"photo": 0, "faces": []}, {"photo": 1, "faces": []}]


def test_rows_that_are_not_one_per_face_of_the_photos_are_refused():
    with pytest.raises(SpecError, match="not one per face of the request's 1 photos"):
        photo_answers(pipeline_rows([0, 1], np.zeros((2, 8), np.float32)), 1, lambda v: [[], []])
    rows = pipeline_rows([0], np.zeros((2, 8), np.float32))
    with pytest.raises(SpecError, match="not one per face"):
        photo_answers(rows, 1, lambda v: [[]])
    with pytest.raises(SpecError, match="holds no photo"):
        photo_count(np.zeros((0, 1), dtype=object))


def test_a_request_may_choose_its_own_top_k_and_threshold():
    """Triton hands the python backend a request's parameters as JSON; absent, the model's own apply."""
    assert request_choices("{}", 5, 0.35) == (5, 0.35)
    assert request_choices("", 5, 0.35) == (5, 0.35)
    assert request_choices('{"top_k": 1, "threshold": 0.9}', 5, 0.35) == (1, 0.9)
    assert request_choices('{"top_k": "3", "threshold": "-0.5"}', 5, 0.35) == (3, -0.5)  # strings, as some send
    assert request_choices('{"priority": 2, "triton_enable_empty_final_response": true}', 5, 0.35) == (5, 0.35)


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        ('{"top_k": 0}', "top_k '0' is not a whole number from 1 to 100"),
        ('{"top_k": 101}', "top_k '101' is not a whole number from 1 to 100"),
        ('{"top_k": 2.5}', "top_k '2.5' is not a whole number"),
        ('{"top_k": true}', "top_k 'True' is not a whole number"),
        ('{"threshold": 1.5}', "threshold '1.5' is not a cosine from -1 to 1"),
        ('{"threshold": "near"}', "threshold 'near' is not a cosine"),
        (
            '{"topk": 3}',
            "face_search takes the request parameters top_k (1 to 100) and threshold (a cosine, -1 to 1), not 'topk'",
        ),
        ("[1]", "the request's parameters are not a JSON object"),
        ("{", "the request's parameters are not a JSON object"),
    ],
)
def test_a_request_parameter_out_of_bounds_is_refused_in_one_line(parameters: str, says: str):
    with pytest.raises(SpecError) as refused:
        request_choices(parameters, 5, 0.35)
    assert says in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "parameters",
    [
        '{"top_k": "²"}',
        '{"top_k": "' + "9" * 5000 + '"}',
        '{"threshold": ' + "9" * 400 + "}",
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_parameters_python_would_choke_on_are_one_line_refusals(parameters: str):
    """A superscript digit (str.isdigit says yes, int() no), a number past a float, JSON nested past Python's stack:
    each a SpecError (the request's own error), never an exception that fails the other requests of its batch."""
    with pytest.raises(SpecError) as refused:
        request_choices(parameters, 5, 0.35)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300
