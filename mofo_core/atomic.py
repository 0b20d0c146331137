"""Atomic file writes: every output file appears whole or not at all (one home for the project's writers)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds.

    The temporary name keeps the target's suffix, so writers that pick a format from the extension
    (Pillow, OpenEXR) still work. On any exception the temporary file is removed and the target is left
    untouched, so a failed write never leaves a partial file behind.

    Args:
        path: final file path. Its folder must exist.

    Yields:
        The temporary path to write to (not created yet).

    Raises:
        ValueError: the folder of `path` does not exist, or `path` is an existing folder.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise ValueError(f"output folder {str(target.parent)!r} does not exist; create it first")
    if target.is_dir():
        raise ValueError(f"{str(target)!r} is a folder; pass a file path")
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:12]}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
