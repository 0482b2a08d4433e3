"""Small file helpers: atomic writes and JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Readers never see a half-written file and a crash leaves the old file (if any) in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def stat_input(path: str | os.PathLike, what: str, error: type[Exception]) -> os.stat_result:
    """``os.stat`` of an input that must be a file (a regular file, a pipe or a device); any
    other case raises ``error`` with one line naming ``what``: not found, a symlink loop, a
    directory, or the OS's reason."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"{what} {p} is a symlink loop; point it at a real file") from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            raise error(f"{what} not found: {p}") from None
        raise error(f"cannot open {what} {p}: {err.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {p} is a directory; give a file")
    return st
