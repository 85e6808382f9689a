"""What Ray's workers run for ``index --ray`` (engines/gallery/ray_job.py): the read + letterbox tasks, the
detect + align + embed actors, and the tally of the photos each node's actors ran (the run's summary says it:
proof that a cluster's nodes shared the work)."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebatch.engines.gallery.photos import Photo


@dataclass
class ReadStage:
    """The read + letterbox stage, as Ray tasks: FacePipeline.prepare without the runtimes."""

    models: object  # FaceModels
    max_photo_pixels: int  # PipelineSettings.max_photo_pixels: the same limit as a local run

    def __call__(self, batch: dict) -> dict:
        from facebatch.engines.pipeline.reader import prepare_photo

        out = {name: [] for name in ("path", "subject", "size", "mtime_ns", "image", "frame", "scale", "error")}
        for path, subject, size, mtime in zip(
            batch["path"], batch["subject"], batch["size"], batch["mtime_ns"], strict=True
        ):
            prepared = prepare_photo(self.models, Path(str(path)), max_pixels=self.max_photo_pixels)
            out["path"].append(str(path))
            out["subject"].append(str(subject))
            out["size"].append(int(size))
            out["mtime_ns"].append(int(mtime))
            empty = np.zeros((1, 1, 3), np.uint8)
            out["image"].append(prepared.image if prepared.image is not None else empty)
            height, width = self.models.detector_size
            out["frame"].append(
                prepared.frame if prepared.frame is not None else np.zeros((3, height, width), np.float32)
            )
            out["scale"].append(prepared.scale)
            out["error"].append(prepared.error or "")
        return {k: (objects(v) if k in ("image", "path", "subject", "error") else np.array(v)) for k, v in out.items()}


def objects(values: list) -> np.ndarray:
    """A 1-d object array of ``values``: np.array(values, dtype=object) would make photos of one shape a 4-d array
    of Python ints (the pipeline then warps an object image: OpenCV refuses it)."""
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column


NO_SUBJECT = "\0"  # Ray's numpy batches carry strings, not None


class PipelineStage:
    """The detect + align + embed stage: one FacePipeline per actor, for the actor's life."""

    def __init__(
        self, detector, embedder, backend, settings, runner_options, best_only: bool, detector_size, tally
    ) -> None:
        import ray

        from facebatch.engines.pipeline.opening import open_pipeline

        self._stack = contextlib.ExitStack()
        # one lane: Ray runs the actors side by side, and calls the pipeline's stages, not its run()
        one_lane = dataclasses.replace(settings, lanes=1)
        self.pipeline = self._stack.enter_context(
            open_pipeline(detector, embedder, backend, one_lane, runner_options, detector_size)
        )
        self.size = int(embedder.spec.embedding_size)
        self.best_only = best_only
        self.tally = tally  # a NodeTally actor
        self.node = (ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address())

    def __call__(self, batch: dict):
        import ray

        from facebatch.engines.gallery.table import shard_table
        from facebatch.engines.pipeline.reader import PreparedPhoto

        prepared, photos = [], []
        for i in range(len(batch["path"])):
            path = str(batch["path"][i])
            error = str(batch["error"][i]) or None
            prepared.append(
                PreparedPhoto(
                    Path(path),
                    None if error else np.asarray(batch["image"][i], dtype=np.uint8),
                    None if error else np.asarray(batch["frame"][i], dtype=np.float32),
                    float(batch["scale"][i]),
                    error,
                )
            )
            subject = str(batch["subject"][i])
            photos.append(
                Photo(
                    path, None if subject == NO_SUBJECT else subject, int(batch["size"][i]), int(batch["mtime_ns"][i])
                )
            )
        table = shard_table(self.pipeline.finish(prepared), photos, self.size, self.best_only)
        ray.get(self.tally.add.remote(*self.node, len(photos)))  # waited for: counted before the job can end
        return table


class NodeTally:
    """The photos each node's pipeline actors ran, told by the actors themselves (a Ray actor on the driver's node,
    so that a worker node that dies does not take the tally with it)."""

    def __init__(self) -> None:
        self.photos: dict[str, list] = {}  # node id → [its address, photos]

    def add(self, node: str, address: str, photos: int) -> None:
        self.photos.setdefault(node, [address, 0])[1] += photos

    def counts(self) -> list[dict]:
        """[{node, address, photos}], by address then node id."""
        rows = [{"node": node, "address": address, "photos": n} for node, (address, n) in self.photos.items()]
        return sorted(rows, key=lambda row: (row["address"], row["node"]))


def start_tally(ray):
    """A NodeTally on the node this process is attached to (asks for no CPU: it must never wait for one)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(num_cpus=0)(NodeTally).options(scheduling_strategy=here).remote()
