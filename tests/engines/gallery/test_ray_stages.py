"""What Ray's workers run, without Ray: the read stage's columns and the tally of photos per node (the two-node run
is tests/engines/gallery/test_ray_nodes.py)."""

from __future__ import annotations

import numpy as np

from facebatch.engines.gallery.ray_stages import NodeTally, objects


def test_photos_of_one_shape_stay_one_image_each() -> None:
    """Before: np.array(images, dtype=object) made two photos of one shape a [2, H, W, 3] array of Python ints, and
    the actor's warpAffine refused the object image (two copies of a photo in one batch failed the Ray run)."""
    images = [np.zeros((4, 5, 3), np.uint8), np.ones((4, 5, 3), np.uint8)]
    column = objects(images)
    assert column.shape == (2,) and column.dtype == object
    assert all(isinstance(image, np.ndarray) and image.dtype == np.uint8 for image in column)
    assert np.array(images, dtype=object).dtype == object and np.array(images, dtype=object).ndim == 4  # the trap


def test_the_tally_counts_the_photos_of_each_node() -> None:
    tally = NodeTally()
    tally.add("b" * 8, "10.0.0.2", 2)
    tally.add("a" * 8, "10.0.0.1", 3)
    tally.add("b" * 8, "10.0.0.2", 1)
    assert tally.counts() == [
        {"node": "a" * 8, "address": "10.0.0.1", "photos": 3},
        {"node": "b" * 8, "address": "10.0.0.2", "photos": 3},
    ]
