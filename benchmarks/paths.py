"""Machine facts checked before any work: writable folders, the host's memory (light: no JAX, no pandas)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def can_write_in(directory: str | Path) -> bool:
    """Whether files can be created in ``directory`` (or, when it is missing, in its nearest existing parent).

    Tried, not judged from permission bits: root passes ``os.access`` everywhere, also in ``/proc``
    or on a read-only mount. The probe is a hidden temporary file, removed at once.
    """
    probe = Path(directory)
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not probe.is_dir():
        return False
    try:
        fd, name = tempfile.mkstemp(prefix=".initbench-probe-", dir=probe)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def host_memory() -> int:
    """Bytes of physical memory of this host (8 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30
