"""The python backend's stub processes, read from /proc: which model and instance each serves,
and its shared-memory region. Triton starts one stub per python-model instance, in the
server's process group, with all of that on its command line:

    triton_python_backend_stub REPO/MODEL/1/model.py triton_python_backend_shm_region_<uuid> … MODEL_0_0 …
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STUB_BINARY = "triton_python_backend_stub"
SHM_PREFIX = "triton_python_backend_shm_region_"  # one region per stub, in /dev/shm


@dataclass(frozen=True)
class PythonStub:
    pid: int
    model: str  # the model folder's name
    instance: str  # Triton's instance name, e.g. face_pipeline_0_0
    region: Path | None  # its shared memory in /dev/shm


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to collect it (a killed stub is one until then)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stub_from_arguments(pid: int, arguments: list[str]) -> PythonStub | None:
    """The stub a command line describes, or None for any other process."""
    if not arguments or not arguments[0].endswith(STUB_BINARY):
        return None
    script = next((a for a in arguments[1:] if a.endswith(".py")), None)
    if script is None:
        return None
    model = Path(script).parents[1].name  # REPO/MODEL/VERSION/model.py
    instance = next((a for a in arguments[2:] if a.startswith(f"{model}_")), model)
    region = next((Path("/dev/shm") / a for a in arguments if a.startswith(SHM_PREFIX)), None)
    return PythonStub(pid, model, instance, region)


def python_stubs(group: int) -> list[PythonStub]:
    """The live python stubs in process group ``group`` (a tritonserver started in its own session)."""
    stubs = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        try:
            if os.getpgid(pid) != group:
                continue
            arguments = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        except (OSError, ProcessLookupError):
            continue
        stub = stub_from_arguments(pid, arguments)
        if stub is not None and _alive(pid):
            stubs.append(stub)
    return sorted(stubs, key=lambda s: (s.model, s.instance))
