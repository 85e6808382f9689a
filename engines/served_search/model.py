"""``face_search``, the python-backend model: photos in, per photo its faces and their gallery matches out.

Each request's photos go to the served ``face_pipeline`` through BLS, unchanged, so the pipeline's photo limits
(refused from the header, before decoding), queue bounds and dynamic batching apply as they do to a client of
face_pipeline; a refusal comes back as this request's error, in the pipeline's words. The faces' embeddings are
searched with ``facebatch search``'s code (``GallerySearch``: the same index, its recorded search parameters, the
same threshold), in the gallery's newest whole version (``ServedGallery``: checked on every request).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from facebatch.core.errors import FacebatchError, SpecError
from facebatch.engines.gallery.defaults import DEFAULT_TOP_K
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD
from facebatch.engines.served_search.answers import (
    MATCHES_OUTPUT,
    MAX_TOP_K,
    PIPELINE_OUTPUTS,
    photo_answers,
    photo_count,
    request_choices,
)
from facebatch.engines.served_search.served_gallery import ServedGallery
from facebatch.engines.triton.defaults import IMAGES_INPUT, SEARCH_FILE
from facebatch.engines.triton.python_models import FacebatchModel


class FaceSearchModel(FacebatchModel):
    """One BLS call to the pipeline per request (its refusals stay that request's), then one search of its faces."""

    def initialize(self, args: dict[str, str]) -> None:
        super().initialize(args)
        description = json.loads((self.folder / SEARCH_FILE).read_text())
        self.pipeline_model = description["pipeline"]
        self.top_k = int(self.parameter("top_k", str(DEFAULT_TOP_K)))
        self.threshold = float(self.parameter("threshold", str(DEFAULT_MATCH_THRESHOLD)))
        if not 1 <= self.top_k <= MAX_TOP_K or not -1.0 <= self.threshold <= 1.0:
            raise SpecError(f"top_k {self.top_k} must be 1 to {MAX_TOP_K} and threshold {self.threshold} a cosine")
        self.gallery = ServedGallery(description["gallery"], description["sha256"], description["detector_size"])
        self.gallery.current()  # at load: a gallery that is not whole, or made with other models, fails the load

    def faces(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The pipeline's faces of one request's photos (its refusal, in its words, raised)."""
        backend = self.backend
        request = backend.InferenceRequest(
            model_name=self.pipeline_model,
            requested_output_names=list(PIPELINE_OUTPUTS),
            inputs=[backend.Tensor(IMAGES_INPUT, images)],
        )
        response = request.exec()
        if response.has_error():
            raise SpecError(response.error().message())
        outputs = {}
        for name in PIPELINE_OUTPUTS:
            tensor = backend.get_output_tensor_by_name(response, name)
            if tensor is None:
                raise SpecError(f"{self.pipeline_model} returned no output {name!r}")
            outputs[name] = tensor.as_numpy()
        return outputs

    def answer(self, requests: Sequence[Any]) -> list[Any]:
        search = self.gallery.current()  # a newer committed version, once whole; raises a gallery refused
        responses = []
        for request in requests:
            try:
                top_k, threshold = request_choices(request.parameters(), self.top_k, self.threshold)
                images = self.input_array(request, IMAGES_INPUT)
                searcher = functools.partial(search.search, top_k=top_k, threshold=threshold)
                answers = photo_answers(self.faces(images), photo_count(images), searcher)
            except FacebatchError as exc:
                responses.append(self.error_response(str(exc)))
                continue
            tensor = self.backend.Tensor(MATCHES_OUTPUT, answers)
            responses.append(self.backend.InferenceResponse(output_tensors=[tensor]))
        return responses
