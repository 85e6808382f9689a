"""What Ray's workers run for ``index --ray`` (engines/gallery/ray_job.py): the read + letterbox + detect + align +
embed actors, and the tally of the photos each node's actors ran (the run's summary says it:
proof that a cluster's nodes shared the work)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from facebatch.engines.gallery.photos import Photo

NO_SUBJECT = "\0"  # Ray's numpy batches carry strings, not None


class PipelineStage:
    """Read + letterbox + detect + align + embed, in one actor with one FacePipeline for the actor's life, run as a
    local run runs it (``FacePipeline.run``: its lanes overlap reading with inference). Only paths reach the actor
    and only rows leave it: letterboxed float frames (4.9 MB a photo at 640x640) shipped from read tasks through
    Ray's object store cost more than the inference (docs/benchmarks/cpu_amd-epyc-zen5_2-cores/ray_steady.md)."""

    def __init__(
        self, detector, embedder, backend, settings, runner_options, best_only: bool, detector_size, tally
    ) -> None:
        import ray

        from facebatch.engines.pipeline.opening import open_pipeline

        self._stack = contextlib.ExitStack()
        self.pipeline = self._stack.enter_context(
            open_pipeline(detector, embedder, backend, settings, runner_options, detector_size)
        )
        self.size = int(embedder.spec.embedding_size)
        self.best_only = best_only
        self.tally = tally  # a NodeTally actor
        self.node = (ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address())

    def __call__(self, batch: dict):
        import ray

        from facebatch.engines.gallery.table import shard_table

        photos = []
        for path, subject, size, mtime in zip(
            batch["path"], batch["subject"], batch["size"], batch["mtime_ns"], strict=True
        ):
            subject = str(subject)
            photos.append(Photo(str(path), None if subject == NO_SUBJECT else subject, int(size), int(mtime)))
        results = list(self.pipeline.run([Path(photo.path) for photo in photos]))
        table = shard_table(results, photos, self.size, self.best_only)
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
