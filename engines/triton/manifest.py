"""What ``facebatch triton`` wrote in a repository, and what ``force`` may replace there.

``.facebatch-triton.json`` lists the files facebatch wrote (listed before they are written, each one's
sha256 recorded once it is); a later run with ``force`` removes only those, each only while it still
has the sha256 recorded when it was written (or, where none was recorded, is byte for byte what this run
writes), and refuses by name anything else: a name that is not one of facebatch's own, a link on the way,
a file changed since, a file of someone else's where one of ours would go, an artifact read from inside
the folder it replaces. Everything is checked before the first file is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from facebatch.core.atomic import atomic_path
from facebatch.core.environment import file_sha256
from facebatch.core.errors import OutputError
from facebatch.core.trusted_paths import SHA256, member, refuse_symlinked_folder, refuse_symlinks
from facebatch.engines.triton.artifacts import PLAN_SUFFIX
from facebatch.engines.triton.defaults import MANIFEST, PIPELINE_FILE, SEARCH_FILE
from facebatch.engines.triton.served_models import MODEL_NAME_PATTERN

# The names facebatch writes in a repository: a manifest listing anything else was not written by
# facebatch (or was edited), and force refuses it rather than remove what it names.
MODEL_FILES = (
    "config.pbtxt",
    "1/model.onnx",
    f"1/model{PLAN_SUFFIX}",
    "1/model.py",
    f"1/{PIPELINE_FILE}",
    f"1/{SEARCH_FILE}",
)
REPOSITORY_FILE = re.compile(
    rf"README\.md|{MODEL_NAME_PATTERN}/(?:{'|'.join(re.escape(name) for name in MODEL_FILES)})"
)
MANIFEST_FORMAT = "facebatch-triton/2"  # /2 records each file's sha256; /1 (older facebatch) listed names only
MANIFEST_FORMATS = ("facebatch-triton/1", MANIFEST_FORMAT)


@dataclass(frozen=True)
class _Written:
    """What a repository's manifest says facebatch wrote there: the names (checked to be facebatch's
    own, inside the folder, no link on the way) and the sha256 of each file whose write finished."""

    files: tuple[str, ...]
    sha256: dict[str, str]


def _unreadable(out: Path) -> OutputError:
    return OutputError(
        f"out {out}: its {MANIFEST} is unreadable, so facebatch cannot tell which files it wrote there; pick an "
        "empty folder, or remove that folder yourself",
        field="out",
    )


def _previous_files(out: Path) -> _Written | None:
    """The manifest of an earlier repository written into ``out``, its names validated (None: there is none)."""
    manifest = out / MANIFEST
    refuse_symlinks(out, MANIFEST, "the repository's manifest")
    if not manifest.is_file():
        return None
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
        files, hashes = record["files"], record.get("sha256", {})
        if record["format"] not in MANIFEST_FORMATS or not isinstance(files, list) or not isinstance(hashes, dict):
            raise _unreadable(out)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise _unreadable(out) from None
    for name in files:  # each one of facebatch's names, inside out, no link on the way; else refused by name
        member(out, name, REPOSITORY_FILE, f"{manifest}'s list of files")
    if not all(isinstance(sha, str) and SHA256.fullmatch(sha) for sha in hashes.values()):
        raise _unreadable(out)
    return _Written(tuple(files), {name: hashes[name] for name in files if name in hashes})


def _content_sha256(content: Path | str) -> str:
    return file_sha256(content) if isinstance(content, Path) else hashlib.sha256(content.encode("utf-8")).hexdigest()


# why a listed file may not be removed, as said in the refusal
NOT_A_FILE = "no longer a file (a folder or a special file stands there)"
CHANGED = "changed since facebatch wrote it (sha256 differs from the one recorded)"
UNRECORDED = (
    "no sha256 recorded (written by an older facebatch, or by a run that stopped before recording it) and not "
    "byte for byte what this run writes"
)


def _why_not_removable(out: Path, rel: str, previous: _Written, planned: dict[str, Path | str]) -> str | None:
    """Why the listed ``rel`` may not be removed (None: it is what facebatch wrote, or is gone)."""
    path = out / rel
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        return NOT_A_FILE
    recorded = previous.sha256.get(rel)
    if recorded is not None:
        return None if file_sha256(path) == recorded else CHANGED
    if rel in planned and file_sha256(path) == _content_sha256(planned[rel]):
        return None  # an unfinished run's (or an older facebatch's) file, byte for byte what this run writes
    return UNRECORDED


def _remove_emptied_folders(out: Path, names: tuple[str, ...]) -> None:
    """The folders facebatch's names imply (<model>/1, <model>), deepest first, when empty and not a link."""
    folders = {parent for rel in names for parent in PurePosixPath(rel).parents if parent != PurePosixPath(".")}
    for folder in sorted(folders, key=lambda f: -len(f.parts)):
        path = out / folder
        try:
            if stat.S_ISDIR(path.lstat().st_mode) and not any(path.iterdir()):
                path.rmdir()
        except FileNotFoundError:
            continue


def clear_for_writing(out: Path, planned: dict[str, Path | str], force: bool) -> None:
    """Refuse a non-empty ``out`` unless ``force``; with it, remove only what facebatch wrote there
    before (its manifest), each file only while it still has the sha256 recorded when it was
    written, and refuse when a file we did not write stands in the way. Everything is checked
    before the first file is removed."""
    refuse_symlinked_folder(out, "the repository folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"out {out} exists and is not a folder; pick another folder", field="out")
    present = [p for p in out.iterdir()] if out.is_dir() else []
    if not present:
        return
    if not force:
        raise OutputError(
            f"{out} exists and is not empty; pass force to replace what facebatch wrote there, or pick another folder",
            field="force",
        )
    previous = _previous_files(out)
    wanted = set(planned) | {MANIFEST}
    for rel in sorted(wanted):  # nothing of ours is written through a link
        refuse_symlinks(out, rel, "this run's list of files")
    ours = (*previous.files, MANIFEST) if previous else ()
    foreign = [rel for rel in sorted(wanted) if os.path.lexists(out / rel) and rel not in ours]
    if foreign:
        raise OutputError(
            f"force replaces only files facebatch wrote, and these in {out} are not: {', '.join(foreign)}; "
            "move them away or pick another folder",
            field="force",
        )
    if previous is None:
        return
    refused: dict[str, list[str]] = {}
    for rel in previous.files:
        if why := _why_not_removable(out, rel, previous, planned):
            refused.setdefault(why, []).append(rel)
    if refused:
        said = "; ".join(f"{', '.join(names)}: {why}" for why, names in refused.items())
        raise OutputError(
            f"force removes only files facebatch wrote and nobody changed since, and in {out}: {said}; "
            "move them away or pick another folder",
            field="force",
        )
    for rel in ours:
        (out / rel).unlink(missing_ok=True)
    _remove_emptied_folders(out, previous.files)


def write_file(target: Path, content: Path | str) -> str:
    """Write ``content`` (a file to copy, or text) atomically to ``target``; the sha256 of what was written."""
    with atomic_path(target) as tmp:
        if isinstance(content, Path):
            shutil.copyfile(content, tmp)
            sha256 = file_sha256(tmp)
        else:
            data = content.encode("utf-8")
            tmp.write_bytes(data)
            sha256 = hashlib.sha256(data).hexdigest()
    return sha256


def refuse_sources_inside(out: Path, files: dict[str, Path | str]) -> None:
    """An artifact read from inside ``out`` would be removed by force before it is copied (the only copy
    of a model, say): refused before anything is touched."""
    root = os.path.realpath(out).rstrip(os.sep) + os.sep
    for content in files.values():
        if isinstance(content, Path) and os.path.realpath(content).startswith(root):
            raise OutputError(
                f"out {out} holds the artifact {content}, and this run replaces that folder; copy the artifact out "
                "of the repository first, or pick another folder",
                field="out",
            )


def write_manifest(out: Path, runtime: str, models: list[str], files: list[str], hashes: dict[str, str]) -> None:
    """The record of what this run writes (``files``) and of what it wrote (``hashes``, each file's sha256)."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "runtime": runtime,
        "models": models,
        "files": files,
        "sha256": hashes,  # each file's, recorded once it is written: force removes a file only while it matches
    }
    write_file(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
