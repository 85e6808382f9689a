"""A run owns the output folders it made: removed at its end while still empty, never another run's; outside
a run nothing is recorded, so a program that calls the library from a thread pool grows no process-wide list."""

from __future__ import annotations

import threading
from collections.abc import Sized
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from facebatch.core import atomic, interrupts, progress, run
from facebatch.core.atomic import ensure_writable_dir
from facebatch.core.run import Run, current_run


def container_sizes(*modules: ModuleType) -> dict[str, int]:
    """The size of every list, dict, set and other sized value held by ``modules`` at module level."""
    return {
        f"{module.__name__}.{name}": len(value)
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, Sized) and not isinstance(value, str | bytes | type | ModuleType)
    }


def test_library_calls_outside_a_run_record_nothing_that_lives_on(tmp_path: Path):
    before = container_sizes(run, interrupts, atomic, progress)
    folders = [tmp_path / f"caller{n}" / "out" for n in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(ensure_writable_dir, folders))
    assert container_sizes(run, interrupts, atomic, progress) == before
    assert current_run() is None
    with Run() as later:  # a later run was not handed them: it removes none
        pass
    assert later.removed == [] and all(folder.is_dir() for folder in folders)


def test_a_run_removes_the_empty_folders_it_made_and_not_another_runs(tmp_path: Path):
    both_made, first_ended = threading.Barrier(2), threading.Event()
    runs: dict[str, Run] = {}
    seen_after_first: list[bool] = []

    def work(name: str) -> None:
        with Run() as mine:
            runs[name] = mine
            ensure_writable_dir(tmp_path / name / "deep" / "out")
            if name == "first":
                ensure_writable_dir(tmp_path / name / "kept")
                (tmp_path / name / "kept" / "result.json").write_text("{}")  # written into: stays
            both_made.wait(timeout=30)
            if name == "second":
                assert first_ended.wait(timeout=30)
                seen_after_first.append((tmp_path / name / "deep" / "out").is_dir())
        if name == "first":
            first_ended.set()

    threads = [threading.Thread(target=work, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seen_after_first == [True], "the first run's end removed the second run's folders"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "first",
        "first/kept",
        "first/kept/result.json",
    ]
    first_removed = {p.relative_to(tmp_path).as_posix() for p in runs["first"].removed}
    assert first_removed == {"first/deep/out", "first/deep"}
    assert {p.relative_to(tmp_path).as_posix() for p in runs["second"].removed} == {
        "second/deep/out",
        "second/deep",
        "second",
    }


def test_a_run_inside_a_run_owns_its_own_folders(tmp_path: Path):
    with Run() as outer:
        ensure_writable_dir(tmp_path / "outer")
        with Run() as inner:
            assert current_run() is inner
            ensure_writable_dir(tmp_path / "inner")
        assert inner.removed == [tmp_path / "inner"] and (tmp_path / "outer").is_dir()
        assert current_run() is outer
    assert outer.removed == [tmp_path / "outer"] and current_run() is None


def test_a_run_is_entered_once():
    with Run() as once, pytest.raises(RuntimeError, match="already entered"):
        once.__enter__()
