"""How ``index --ray`` sizes its actor pool (engines/gallery/ray_job.py), without starting Ray: the Ray runs are
tests/engines/gallery/test_ray_index.py and test_ray_nodes.py."""

from __future__ import annotations

import pytest

from facebatch.engines.gallery.ray_job import actor_resources


class Cluster:
    """What actor_resources asks of Ray: the cluster's resources."""

    def __init__(self, **resources: float) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


@pytest.mark.parametrize(
    ("cpus", "wanted", "expected"),
    [
        (2, 0, (1, 0.0, 1.0, 2)),  # one node of 2 CPUs: one actor running 2 lanes, as a local run, reserving 1 CPU
        (2, 2, (2, 0.0, 1.0, 1)),  # two 1-CPU nodes (test_ray_nodes.py): an actor each, a lane each
        (16, 0, (8, 0.0, 1.0, 2)),
        (3, 0, (1, 0.0, 1.0, 3)),
    ],
)
def test_a_cpu_actor_runs_a_lane_per_cpu_of_its_share(cpus: int, wanted: int, expected: tuple) -> None:
    """Before: each actor ran one lane, reading in Ray tasks that shipped float frames through the object store
    (0.68x a local run's photos/s on 2 cores, docs/benchmarks/cpu_amd-epyc-zen5_2-cores/ray_steady.md)."""
    assert actor_resources(Cluster(CPU=cpus), wanted) == expected


def test_gpu_actors_take_a_gpu_each_and_one_lane() -> None:
    assert actor_resources(Cluster(CPU=8, GPU=2), 0) == (2, 1.0, 1.0, 1)
