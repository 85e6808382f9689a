"""What a gallery must be for face_search to serve it: one facebatch wrote (its manifest read strictly: no link in
its layout, shard names of ours, fields of their types), made with the very models the repository serves (by
sha256) at the detector size the served pipeline runs, with an index over faces. Checked when ``triton`` plans the
repository and again when the served model (re)loads the gallery."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from facebatch.core.trusted_paths import printable
from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.manifest import Manifest

ROLES = ("detector", "embedder")


class OtherModels(GalleryError):
    """A gallery made with other models (or at another detector size) than those served: never searched."""


def check_gallery_models(
    root: Path, manifest: Manifest, sha256: Mapping[str, str], detector_size: Sequence[int]
) -> None:
    """Refuse a gallery whose detector or embedder is not the one served (by sha256), computed in BF16 (the served
    pipeline never does), or that was indexed at another detector size: its embeddings and the served faces' must
    come from the same models, the same way."""
    for role in ROLES:
        recorded = getattr(manifest, role)
        if recorded.sha256 != sha256[role]:
            raise OtherModels(
                f"gallery {root} was made with another {role} ({printable(recorded.name, 80)}, sha256 "
                f"{recorded.sha256[:12]}…) than the one served (sha256 {sha256[role][:12]}…): embeddings of two models "
                f"must not mix; serve {printable(Path(recorded.file).name, 80)}, or index the photos again with the "
                "served models",
                field="gallery",
            )
        if recorded.precision == "bf16":  # the served pipeline computes in its files' own precision, never BF16
            raise OtherModels(
                f"gallery {root} was indexed with its {role} computing in bf16, and the served pipeline computes it in "
                f"its file's own precision: embeddings of two precisions must not mix; index the photos again in fp32 "
                "to serve them",
                field="gallery",
            )
    indexed = manifest.settings.get("detector_size")
    if isinstance(indexed, list) and [int(v) for v in indexed] != [int(v) for v in detector_size]:
        size = "x".join(map(str, detector_size))
        raise OtherModels(
            f"gallery {root} was indexed with the detector at {'x'.join(map(str, indexed))}, the served pipeline runs "
            f"it at {size}: its faces would not be found the same way; serve the detector at that size, or index the "
            "photos again at this one",
            field="gallery",
        )


def check_searchable(root: Path, manifest: Manifest) -> None:
    """A gallery with an index over at least one face (a new gallery, or one whose first run was stopped, has none)."""
    if manifest.index is None or not manifest.index.get("rows"):
        raise GalleryError(
            f"gallery {root} has no index over faces yet; index photos with faces into it first", field="gallery"
        )
