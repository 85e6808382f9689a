"""What the gallery tests share: the fixture identities laid out as PEOPLE/<subject>/<photo>
(symlinks into ../shared/fixtures, nothing copied into the project), and galleries built once."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.engines.gallery.index_job import IndexRequest, index_photos

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
        (root / subject / photo.name).symlink_to(photo)
    return root


def request(photos, out: Path, detector_file, embedder_file, **options) -> IndexRequest:
    return IndexRequest(photos=photos, out=out, detector=detector_file, embedder=embedder_file, **options)


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


def _proc_address(hex_address: str) -> str:
    """/proc/net/tcp{,6}'s ``HEXADDR:HEXPORT`` as ``address:port`` (each 32-bit word little-endian)."""
    import ipaddress

    address, port = hex_address.split(":")
    raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return f"{ip}:{int(port, 16)}"


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grown = bool(more)
    return found


def tcp_listeners(root: int) -> set[tuple[str, str]]:
    """(process name, address:port) of every TCP socket listening in process ``root`` or its
    descendants (Ray's GCS, raylet and workers are the driver's), from /proc (links not followed)."""
    import os

    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    listening[fields[9]] = _proc_address(fields[1])
    found = set()
    for pid in _descendants(root):
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    inode = target[len("socket:[") : -1] if target.startswith("socket:[") else None
                    if inode in listening:
                        found.add((name, listening[inode]))
    return found


def on_loopback(address: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(address.rsplit(":", 1)[0]).is_loopback
