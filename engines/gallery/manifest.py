"""A gallery's manifest: the models (sha256, spec, the precision each computed in), the embedding size, the
shards (each with its sha256), the failed photos and the index, read strictly (a manifest may come from anyone: every field
a value of its type, every shard name one facebatch writes, inside ``shards/``, through no symlink)
and written atomically, private to its owner."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.core.atomic import write_text_atomic
from facebatch.core.trusted_paths import SHA256, UntrustedNameError, member, printable
from facebatch.engines.gallery.defaults import (
    FACES_MODES,
    GALLERY_FORMAT,
    INDEX_PARAMETERS,
    MANIFEST,
    PRIVATE_FILE,
    SHARDS,
)
from facebatch.engines.gallery.errors import GalleryError, GalleryReadError
from facebatch.engines.gallery.layout import SHARD, open_regular, refuse_layout_links

RECORDED_PRECISIONS = ("", "fp32", "int8", "fp16", "bf16")  # "": not recorded (an older gallery)


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is {type(value).__name__}, not text")
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} is not a count (a {type(value).__name__})")
    return value


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a gallery's embeddings: two galleries (or a gallery and a query) agree only
    when both sha256 agree."""

    role: str  # "detector" or "embedder"
    name: str
    file: str
    sha256: str
    spec: dict[str, Any]
    # what it computed in: fp32, int8 or fp16 (the file's own arithmetic) or bf16 (OpenVINO's hint, proven);
    # "" in a gallery written before it was recorded, which only ran a file in its own arithmetic by default
    precision: str = ""

    def mixes_with(self, precision: str) -> bool:
        """Whether embeddings computed in ``precision`` would mix with this record's: BF16 and a file's own
        arithmetic never meet in one gallery (an INT8 twin is a file of its own: its sha256 tells it apart)."""
        return (self.precision == "bf16") != (precision == "bf16")

    @property
    def computed(self) -> str:
        """The precision it computed in, the file's own where the manifest predates the record."""
        return self.precision or "its file's own precision"

    def to_dict(self) -> dict[str, Any]:
        identity = {"name": self.name, "file": self.file, "sha256": self.sha256, "spec": self.spec}
        return identity | ({"precision": self.precision} if self.precision else {})

    @classmethod
    def from_dict(cls, role: str, data: dict[str, Any]) -> ModelIdentity:
        spec = data.get("spec", {})
        if not isinstance(spec, dict):
            raise ValueError(f"the {role}'s spec is not an object")
        if not SHA256.fullmatch(_text(data, "sha256")):
            raise ValueError(f"the {role}'s sha256 is not 64 hexadecimal digits")
        precision = data.get("precision", "")
        if precision not in RECORDED_PRECISIONS:
            raise ValueError(f"the {role}'s precision is not one of {', '.join(RECORDED_PRECISIONS[1:])}")
        return cls(role, _text(data, "name"), _text(data, "file"), data["sha256"], spec, precision)


@dataclass(frozen=True)
class ShardEntry:
    name: str  # file name in shards/ (checked against SHARD_NAME when a manifest is read)
    rows: int
    faces: int
    photos: int
    bytes: int
    sha256: str | None = None  # recorded at its commit (older manifests lack it until the next index run)

    def to_dict(self) -> dict[str, Any]:
        entry = {"file": self.name, "rows": self.rows, "faces": self.faces, "photos": self.photos, "bytes": self.bytes}
        return entry | ({"sha256": self.sha256} if self.sha256 is not None else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardEntry:
        digest = data.get("sha256")
        if digest is not None and not (isinstance(digest, str) and SHA256.fullmatch(digest)):
            raise ValueError("a shard's sha256 is not 64 hexadecimal digits")
        counts = (_count(data, key) for key in ("rows", "faces", "photos", "bytes"))
        return cls(data["file"], *counts, digest)


def _index_record(record: Any) -> dict[str, Any] | None:
    """The manifest's index entry, checked: a type facebatch builds, counts, integer parameters."""
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("type") not in INDEX_PARAMETERS:
        raise ValueError("index is not a record of one of facebatch's index types")
    for key in ("rows", "shards", "bytes"):
        _count(record, key)
    if record["type"] == "ivfpq_refine":  # its vectors follow the codes in the same file (refine.py)
        for key in ("vectors_offset", "dimension"):
            _count(record, key)
    parameters = record.get("parameters", {})
    if not isinstance(parameters, dict) or not all(
        isinstance(value, int) and not isinstance(value, bool) for value in parameters.values()
    ):
        raise ValueError("index parameters are not NAME: INTEGER")
    if set(INDEX_PARAMETERS[record["type"]]) - set(parameters) or not isinstance(record.get("faiss", ""), str):
        raise ValueError("index parameters or description are incomplete")
    if record.get("asked", record["type"]) not in INDEX_PARAMETERS:
        raise ValueError("index asked is not one of facebatch's index types")
    _recall_record(record.get("recall"))
    return record


def _recall_record(measured: Any) -> None:
    """The index's measured recall (absent in galleries written before it was measured): fractions and a
    latency, shown by search."""
    if measured is None:
        return
    if not isinstance(measured, dict):
        raise ValueError("index recall is not a record")
    for key in ("target", "at_1", "at_10"):
        value = measured.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"index recall {key} is not a fraction")
    latency = measured.get("latency_p50_ms", 0.0)
    if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
        raise ValueError("index recall latency_p50_ms is not a duration")


def _failed(entries: Any) -> list[dict[str, str]]:
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("photo"), str) and isinstance(e.get("error"), str) for e in entries
    ):
        raise ValueError("failed is not a list of {photo, error}")
    return entries


@dataclass
class Manifest:
    detector: ModelIdentity
    embedder: ModelIdentity
    embedding_size: int
    faces_mode: str
    settings: dict[str, Any]
    shards: list[ShardEntry] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    index: dict[str, Any] | None = None  # type (asked: auto or it), parameters, recall, rows, shards covered, bytes
    photos: int = 0  # photos whose latest rows are read (with or without faces)
    faces: int = 0  # live face rows: what the index holds
    updated: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": GALLERY_FORMAT,
            "what": "facebatch gallery: one Parquet row per face (and one per photo without a face), a FAISS index over "
            "the face rows; ids are global row numbers over the shards in this order",
            "models": {"detector": self.detector.to_dict(), "embedder": self.embedder.to_dict()},
            "embedding_size": self.embedding_size,
            "normalisation": "L2: every embedding has unit length, so inner product = cosine",
            "faces_mode": self.faces_mode,
            "settings": self.settings,
            "counts": {
                "photos": self.photos,
                "faces": self.faces,
                "failed": len(self.failed),
                "shards": len(self.shards),
            },
            "shards": [s.to_dict() for s in self.shards],
            "failed": self.failed,
            "index": self.index,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Strict: every field a value of its type (a manifest may come from anyone)."""
        models = data["models"]
        counts = data.get("counts", {})
        embedding_size = _count(data, "embedding_size")
        faces_mode = data["faces_mode"]
        if not embedding_size or faces_mode not in FACES_MODES or not isinstance(data.get("settings", {}), dict):
            raise ValueError("embedding_size, faces_mode or settings is not one facebatch writes")
        shards = data.get("shards", [])
        if not isinstance(shards, list):
            raise ValueError("shards is not a list")
        return cls(
            ModelIdentity.from_dict("detector", models["detector"]),
            ModelIdentity.from_dict("embedder", models["embedder"]),
            embedding_size,
            faces_mode,
            data.get("settings", {}),
            [ShardEntry.from_dict(s) for s in shards],
            _failed(data.get("failed", [])),
            _index_record(data.get("index")),
            _count(counts, "photos") if "photos" in counts else 0,
            _count(counts, "faces") if "faces" in counts else 0,
            str(data.get("updated", "")),
        )


def check_shard_names(root: Path, manifest: Manifest) -> None:
    """Every shard the manifest names is one facebatch writes, inside ``shards/``, through no symlink, once."""
    what = f"the gallery's {root / MANIFEST}"
    seen: set[str] = set()
    for entry in manifest.shards:
        member(root / SHARDS, entry.name, SHARD, what)
        if entry.name in seen:
            raise UntrustedNameError(f"{what} names the shard {printable(entry.name)} twice; refused, nothing touched")
        seen.add(entry.name)


def read_manifest(root: Path) -> Manifest:
    """The manifest of gallery ``root``, refusing in one line what is not a gallery facebatch wrote:
    a name of its layout that is a symlink, a shard name that is not one of ours, a field of the wrong type."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GalleryError(
            f"gallery {root} is a file; a gallery is the folder index writes (a manifest, shards, an index)",
            field="gallery",
        )
    path = root / MANIFEST
    if root.is_dir():
        refuse_layout_links(root)
    if not os.path.lexists(path):
        raise GalleryError(
            f"gallery {root} is not a gallery (no {MANIFEST}); make one by indexing photos into it", field="gallery"
        )
    try:
        with open_regular(path, "the gallery's manifest") as handle:
            data = json.loads(handle.read())
    except OSError as exc:
        raise GalleryReadError(
            f"cannot read {path} ({exc.strerror or exc}); fix its permissions and run again"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # nesting deeper than Python's stack
        raise GalleryError(
            f"{path} is corrupt ({type(exc).__name__}: {exc}); index the photos again into a new gallery"
        ) from None
    try:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format") != GALLERY_FORMAT:
            found = printable(str(data.get("format")), 20)
            raise GalleryError(f"{path} is gallery format {found}, this facebatch reads {GALLERY_FORMAT}")
        manifest = Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise GalleryError(
            f"{path} is corrupt ({type(exc).__name__}: {exc}); index the photos again into a new gallery"
        ) from None
    check_shard_names(root, manifest)
    return manifest


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Commit ``manifest`` (time-stamped) as the gallery's: one atomic rename, private to its owner."""
    manifest.updated = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = json.dumps(manifest.to_dict(), indent=1) + "\n"
    write_text_atomic(Path(root) / MANIFEST, text, "out", mode=PRIVATE_FILE)
