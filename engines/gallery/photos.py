"""What to index: every photo the arguments name (folders walked with their subfolders, by the one rule of
``engines.pipeline.photo_files``: hidden entries and links inside a folder skipped, and said), each with its
subject — from the folder layout (``PEOPLE/<subject>/…/<photo>``) or from a CSV (``path,subject``)
— and what says whether it changed since it was indexed (size and modification time)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facebatch.core.errors import SpecError
from facebatch.core.progress import warn
from facebatch.core.trusted_paths import printable
from facebatch.core.words import counted
from facebatch.engines.pipeline.photo_files import SHOWN, folder_photos, where_looked


@dataclass(frozen=True)
class Photo:
    path: str  # absolute, as the gallery records it
    subject: str | None
    size: int
    mtime_ns: int

    @property
    def key(self) -> tuple[int, int, str | None]:
        """What must be equal for the photo to count as already indexed."""
        return (self.size, self.mtime_ns, self.subject)


def read_subjects_csv(path: Path) -> dict[str, str]:
    """``path,subject`` rows (a header row ``path,subject`` is allowed); paths relative to the CSV."""
    if not Path(path).is_file():
        raise SpecError(f"subjects {path} is not a file; pass a CSV of path,subject rows", field="subjects")
    subjects = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (number == 1 and [c.strip().lower() for c in row] == ["path", "subject"]):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise SpecError(
                    f"subjects {path} line {number} is not 'path,subject': {','.join(row)[:80]}", field="subjects"
                )
            photo = Path(row[0].strip())
            photo = photo if photo.is_absolute() else Path(path).parent / photo
            subjects[str(photo.resolve())] = row[1].strip()
    return subjects


def collect_photos(arguments: Sequence[Path], subjects_csv: Path | None = None) -> list[Photo]:
    """Every photo of ``arguments`` in order, each once. Without a CSV, a photo inside a folder
    argument takes its subject from the first folder below that argument (photos directly in it
    have none); with one, the CSV says (photos it does not name have none)."""
    named = read_subjects_csv(subjects_csv) if subjects_csv is not None else None
    photos: dict[str, Photo] = {}
    for argument in map(Path, arguments):
        if argument.is_file():
            pairs = [(argument, None)]
        elif argument.is_dir():
            pairs = []
            for path in folder_photos(argument):
                relative = path.relative_to(argument).parts
                pairs.append((path, relative[0] if len(relative) > 1 else None))
        else:
            raise SpecError(f"{argument} does not exist; pass photos or folders of photos")
        for path, folder_subject in pairs:
            resolved = str(path.resolve())
            if resolved in photos:
                continue
            try:
                stat = path.stat()
            except OSError as exc:  # a link to nothing, a file gone since the walk, no permission to look
                warn(f"skipped {printable(str(path))}: it cannot be read ({exc.strerror or exc})")
                continue
            subject = named.get(resolved) if named is not None else folder_subject
            photos[resolved] = Photo(resolved, subject, stat.st_size, stat.st_mtime_ns)
    if named is not None and subjects_csv is not None:
        check_subjects_matched(named, photos, Path(subjects_csv))
    if not photos:
        raise SpecError(f"{where_looked([Path(a) for a in arguments])}; pass photos or folders of photos")
    return list(photos.values())


def check_subjects_matched(named: dict[str, str], photos: dict[str, Photo], table: Path) -> None:
    """Rows of the subjects CSV that name no photo being indexed: refused when no row matches (the gallery would
    end unlabelled), else said in a warning that names a few (those subjects are not recorded)."""
    unmatched = [path for path in named if path not in photos]
    if not unmatched or not photos:
        return
    shown = ", ".join(printable(os.path.relpath(p, table.parent), 80) for p in unmatched[:SHOWN])
    more = f" and {len(unmatched) - SHOWN} more" if len(unmatched) > SHOWN else ""
    where = f"paths are read relative to the CSV's folder {table.parent}"
    if len(unmatched) == len(named):
        raise SpecError(
            f"subjects {table}: none of its {counted(len(named), 'row')} names a photo being indexed ({shown}{more}); "
            f"{where}: fix the paths, or index the photos the CSV names",
            field="subjects",
        )
    warn(
        f"subjects {table}: {len(unmatched)} of its {counted(len(named), 'row')} "
        f"{'names' if len(unmatched) == 1 else 'name'} no photo being indexed "
        f"({shown}{more}); those subjects are not recorded ({where})",
        "subjects",
    )
