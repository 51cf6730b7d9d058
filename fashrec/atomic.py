"""Atomic file writes: a file that matters is either the old one or the complete new one, never half.

Everything is written to a temporary file in the same folder, flushed and fsynced, then renamed over
the target (``os.replace`` is atomic on POSIX and Windows). A crash at any moment leaves at most a
stray ``.tmp`` file beside the target, which the next write replaces.

Folders are swapped whole (:func:`replace_dir`): on Linux with one ``renameat2(RENAME_EXCHANGE)``, so
the path always names a complete folder, the old or the new one. A full disk during any of these
writes surfaces as :class:`DiskFullError` inside :func:`disk_full_as_error`, one line naming what was
being written.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Mapping


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the user's normal mode
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    write_bytes_atomic(text.encode("utf-8"), path)


def write_json_atomic(obj, path: str | os.PathLike) -> None:
    write_text_atomic(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def save_safetensors_atomic(tensors: Mapping, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` through a temporary file (tensors made contiguous)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=dict(metadata or {}))


class DiskFullError(OSError):
    """The disk (or the user's quota) filled up during a write; the message says what was left as it was."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


@contextlib.contextmanager
def disk_full_as_error(what: str | os.PathLike, *, unchanged: str = "") -> Iterator[None]:
    """Turn ENOSPC / EDQUOT raised inside the block into one :class:`DiskFullError` line naming ``what``
    (and ``unchanged``: e.g. "the index at OUT is unchanged")."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        raise DiskFullError(errno.ENOSPC, f"no space left on device while writing {what}{where}"
                            + (f"; {unchanged}" if unchanged else "")) from None


def replace_dir(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename the complete folder ``staging`` to ``target``. An existing ``target`` is swapped with
    ``staging`` in one atomic step where the OS can (Linux ``RENAME_EXCHANGE``) and then deleted;
    elsewhere it is moved aside first and removed only after the new one is in place (put back if the
    rename fails), which leaves a moment where ``target`` is missing."""
    staging, target = Path(staging), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.replace(staging, target)
        _fsync_dir(target.parent)
        return
    if _exchange(staging, target):
        _fsync_dir(target.parent)
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the old folder
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    backup.rmdir()
    os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the OS or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))
