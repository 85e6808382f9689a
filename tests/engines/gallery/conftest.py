"""What the gallery tests share: the fixture identities laid out as PEOPLE/<subject>/<photo>
(copies in a temporary folder, nothing copied into the project: links inside a photo folder are not
followed), and galleries built once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.engines.gallery.index_job import IndexJob, index_photos
from tests.data import procfs

pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
pytest.importorskip("pyarrow", reason="the index extra (pyarrow) writes the gallery's shards")

IDENTITIES = ("obama", "biden", "rob_lowe")
NO_FACE = ("no_face.png", "view_no_face.jpg")


@pytest.fixture(scope="session")
def detector_file(real_detector: Path):
    return read_model_file(real_detector)


@pytest.fixture(scope="session")
def embedder_file(batch_embedder: Path):
    return read_model_file(batch_embedder)


@pytest.fixture(scope="session")
def images_dir(photos: list[Path]) -> Path:
    return photos[0].parent


@pytest.fixture(scope="session")
def people(images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PEOPLE/<subject>/<name>_1.<ext> for each identity (enrolment); the _2 photos are the queries."""
    root = tmp_path_factory.mktemp("people")
    for subject in IDENTITIES:
        (root / subject).mkdir()
        (photo,) = images_dir.glob(f"{subject}_1.*")
        shutil.copy2(photo, root / subject / photo.name)
    return root


def request(photos, out: Path, detector_file, embedder_file, **options) -> IndexJob:
    return IndexJob(photos=photos, out=out, detector=detector_file, embedder=embedder_file, **options)


@pytest.fixture(scope="session")
def enrolled(people: Path, detector_file, embedder_file, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("enrolled") / "gallery"
    index_photos(request([people], out, detector_file, embedder_file, faces="best"))
    return out


@pytest.fixture(scope="session")
def fixture_gallery(images_dir: Path, detector_file, embedder_file, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every face of every fixture photo (17 photos, 188 faces), 4 photos per shard."""
    out = tmp_path_factory.mktemp("fixture_gallery") / "gallery"
    index_photos(request([images_dir], out, detector_file, embedder_file, photos_per_shard=4))
    return out


def tcp_listeners(root: int) -> set[tuple[str, str]]:
    """(process name, address:port) of every TCP socket listening in process ``root`` or its descendants
    (Ray's GCS, raylet and workers are the driver's)."""
    return {(name, f"{address}:{port}") for name, address, port in procfs.tcp_listeners(procfs.process_tree(root))}


def on_loopback(address: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(address.rsplit(":", 1)[0]).is_loopback
