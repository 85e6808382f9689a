"""The gallery's errors (``engines/gallery/errors.py``): another library's reason for damage is quoted whole or cut
at a word, never mid-word."""

from __future__ import annotations

import pytest

from facebatch.engines.gallery.errors import REASON_CHARS, clipped

pytest.importorskip("faiss", reason="the index extra (faiss-cpu) reads the gallery's index")

from facebatch.engines.gallery.faiss_index import _faiss_reason  # noqa: E402

LONG = (
    "Could not open Parquet input source '<Buffer>': Parquet magic bytes not found in footer. Either the file is "
    "corrupted or this is not a parquet file, and this sentence goes on past the limit of a line"
)


def test_a_long_reason_is_cut_at_a_word_never_mid_word():
    shown = clipped(LONG + "\nsecond line")
    assert shown.endswith(" …") and len(shown) <= REASON_CHARS + 2
    kept = shown.removesuffix(" …")
    assert LONG.startswith(kept) and LONG[len(kept)] == " "  # the cut falls on a space: the last word is whole
    assert clipped("short reason\nmore") == "short reason"


def test_faiss_s_reason_drops_its_source_location_and_keeps_whole_words():
    reason = _faiss_reason(RuntimeError(f"Error in read_index at index_read.cpp:42: {LONG}"))
    assert reason.startswith("Could not open Parquet") and reason.endswith(" …")
    assert LONG[len(reason.removesuffix(" …"))] == " "
