"""What Ray's workers run, without Ray: the tally of photos per node (the two-node run
is tests/engines/gallery/test_ray_nodes.py)."""

from __future__ import annotations

from facebatch.engines.gallery.ray_stages import NodeTally


def test_the_tally_counts_the_photos_of_each_node() -> None:
    tally = NodeTally()
    tally.add("b" * 8, "10.0.0.2", 2)
    tally.add("a" * 8, "10.0.0.1", 3)
    tally.add("b" * 8, "10.0.0.2", 1)
    assert tally.counts() == [
        {"node": "a" * 8, "address": "10.0.0.1", "photos": 3},
        {"node": "b" * 8, "address": "10.0.0.2", "photos": 3},
    ]
