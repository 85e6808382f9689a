"""``facebatch card``: a release folder's model card generated again from its reports, after the release check
(a tampered folder is refused: the card would vouch for figures nobody measured), optionally beside a published
throughput table with the ratio per row. The card is returned; written only where asked (never into the
release folder: its manifest lists the card the release wrote)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.core.atomic import check_output_file, write_text_atomic
from facebatch.core.errors import SpecError
from facebatch.engines.bench.published import load_published
from facebatch.workflows.release.card_text import CARD, model_card
from facebatch.workflows.release.check import CheckResult, check_release


@dataclass
class CardOptions:
    release: Path  # the release folder
    published: Path | None = None  # a published table (a file, or a shipped one by name: alonsorobots_rtx5090)
    out: Path | None = None  # where to write the card (None: returned only)
    photos: Sequence[Path] = ()  # for the check: an INT8 file made on another CPU class is re-judged on them
    manifest_sha256: str | None = None  # anchors the check outside the folder


@dataclass
class CardResult:
    release: Path
    text: str
    check: CheckResult
    published: str | None = None
    written: Path | None = None
    same_as_released: bool = False  # the card generated again equals the README.md the release wrote
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": str(self.release),
            "published": self.published,
            "written": str(self.written) if self.written else None,
            "same_as_released": self.same_as_released,
            "check": self.check.to_dict(),
            "card": self.text,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        return self.text


def card(options: CardOptions) -> CardResult:
    folder = Path(options.release)
    if options.out is not None:
        if folder.resolve() in Path(options.out).resolve().parents:
            raise SpecError(
                f"out {options.out} is inside the release folder, where a file its manifest does not list fails the "
                "release check; write the card elsewhere",
                field="out",
            )
        check_output_file(Path(options.out), "out", [folder / CARD])
    table = load_published(options.published) if options.published is not None else None
    checked = check_release(folder, options.photos, manifest_sha256=options.manifest_sha256)
    if not checked.passed:
        raise SpecError(
            f"{folder} fails the release check, so its reports vouch for nothing: {'; '.join(checked.problems())}",
            field="release",
        )
    text = model_card(folder, table)
    released = folder / CARD
    result = CardResult(folder, text, checked, str(table.path.name) if table else None)
    result.same_as_released = released.is_file() and released.read_text() == text
    if options.out is not None:
        write_text_atomic(Path(options.out), text)
        result.written = Path(options.out)
    return result
