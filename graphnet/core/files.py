"""Files written whole or not at all: ``atomic_write`` and the debris of killed writers.

A file is written to a temporary name beside its target, flushed to disk, then renamed over
the target (``os.replace``): a crash never leaves half a file, and an existing file is
replaced only by a complete one. The temporary file is named after its target and its
writer (``.tmp-<target>~<host>-<pid>-<start>-<random>.part``: a hash of the host name, the
writer's pid and the pid's start time), so that a process killed mid-write (SIGKILL, which
no handler sees) leaves debris that the next write of the same target removes: only files
of this target, written on this host by a process that is gone (no such pid, a zombie, or a
pid reused by a process that started at another time). A live writer's file is never
touched, nor another target's. Checkpoints, ONNX exports and .wav files are written so.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import string
import tempfile
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["atomic_write", "remove_stale_temporaries"]

_TMP = re.compile(r"\.tmp-(?P<tag>.+)~(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-"
                  r"[a-z0-9_]+\.part")


def _tag(base: str) -> str:
    """The target's file name as it appears in its temporary files (hashed when long)."""
    return base if len(base) <= 120 else hashlib.sha1(base.encode()).hexdigest()[:20]


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, from Linux's /proc;
    None where there is no /proc entry to read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()  # the name in (...) may hold spaces
        return rest[0].decode(), int(rest[19])
    except (OSError, IndexError, ValueError):
        return None


def _start_time(pid: int) -> int:
    st = _stat(pid)
    return st[1] if st else 0


def _writer_alive(pid: int, start: int) -> bool:
    """Whether the process that wrote a temporary file may still be writing it. In doubt
    (no way to ask, another user's process), yes: a live writer's file is never removed."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return True
    if pid == os.getpid():  # this process, unless the pid was reused since the file's writer
        own = _start_time(pid)
        return not (start and own and start != own)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else: still check for pid reuse below
    except OSError:
        return True
    st = _stat(pid)
    if st is None:
        return True
    state, started = st
    if state == "Z":  # killed, not yet reaped: it writes nothing any more
        return False
    return not (start and started != start)  # a different start time: the pid was reused


def remove_stale_temporaries(path: str | os.PathLike) -> list[str]:
    """Remove the temporary files that killed saves of ``path`` left in its folder, and
    return their paths. ``path`` may be a ``ModelCheckpoint`` template (``m-{epoch:02d}.graphnet``):
    then the debris of every file it names goes. Files of a live writer, of another target
    or written on another host stay."""
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    if "{" in folder:
        return []
    if "{" in base:  # a template: every target it can name
        parts = [re.escape(lit) + ("" if field is None else ".+")
                 for lit, field, _, _ in string.Formatter().parse(base)]
        wanted = re.compile("".join(parts))
        match = wanted.fullmatch
    else:
        tag = _tag(base)
        match = tag.__eq__
    host, removed = _host(), []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        m = _TMP.fullmatch(name)
        if not m or m["host"] != host or not match(m["tag"]):
            continue
        if _writer_alive(int(m["pid"]), int(m["start"])):
            continue
        try:
            os.remove(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
        except FileNotFoundError:  # another process cleaned it first
            pass
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None],
                 mode: int | None = None) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``;
    first remove what killed writers of ``path`` left. ``mode`` sets the file's permissions
    (mkstemp's owner-only 0o600 otherwise)."""
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    remove_stale_temporaries(path)
    pid = os.getpid()
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{_tag(base)}~{_host()}-{pid}-{_start_time(pid)}-",
                               suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
