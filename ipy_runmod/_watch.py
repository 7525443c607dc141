"""Which directories may have changed since a moment: the kernel's word, so that files in
a quiet directory need no `stat` before a run.

Every run checks files: the module's own (is its code still current?), the directories
searched for it (did one gain a module of that name?) and every imported user module
(was it edited?). A `stat` costs a system call per file, per run. On Linux, inotify
reports every change made through this machine's kernel; a directory with no event
since a file in it was checked holds that file unchanged, and asking the kernel costs
one `ioctl`, however many files there are.

The callers keep their own `stat` checks, which decide; this module only tells when
they may be skipped, and says "not quiet" whenever it cannot be sure:

- only absolute paths with no symbolic link in them, on local filesystems (a change made
  by another machine on a network filesystem reaches no inotify queue here); a file that
  is itself a link, symbolic or hard, is checked by `stat` every time (`directory_of`);
- each ancestor is watched for being moved or deleted, so a project directory moved
  away (and another put in its place) is noticed;
- a lost watch, an overflowing queue or an unmounted filesystem forgets everything: the
  next checks `stat` again. So does a forked child, which starts afresh.

Elsewhere (no inotify, or `inotify_simple` not installed), and in a process that runs one
module and ends (`--subprocess`'s, which calls `never`), nothing is ever quiet and every
check `stat`s.
"""

from __future__ import annotations

import array
import fcntl
import os
import re
import stat
import sys
import termios
import threading
from typing import Any

__all__ = ["directory_of", "epoch", "mark", "never", "poll", "quiet_since"]

#: Filesystems whose every change goes through this machine's kernel.
_LOCAL = frozenset(
    "ext2 ext3 ext4 xfs btrfs tmpfs ramfs overlay zfs f2fs jfs reiserfs bcachefs".split()
)

_lock = threading.Lock()
_inotify: Any = None
_broken = not sys.platform.startswith("linux")  #: no inotify here: never quiet
_epoch = 0  #: counts the polls that found events
#: watched directory -> its watch; its ancestors are watched too, for moves.
_watched: dict[str, int] = {}
_dir_of: dict[int, str] = {}  #: watch -> the directory whose contents it reports
#: directory -> the epoch of its last event (or of the moment it was first watched).
_changed_at: dict[str, int] = {}
_unwatchable: set[str] = set()  #: paths found unwatchable (links too), not tried again
_pending = array.array("i", [0])

# inotify(7)'s event bits.
_CONTENTS = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200  # modify, attrib, close_write,
# moved_from, moved_to, create, delete: anything that can change a file in the directory.
_SELF = 0x400 | 0x800 | 0x1000000 | 0x20000000  # delete_self, move_self; onlydir, mask_add
_LOST = 0x400 | 0x800 | 0x2000 | 0x4000 | 0x8000  # ... unmount, q_overflow, ignored


def quiet_since(directory: str, epoch: int | None) -> bool:
    """Nothing in `directory` changed since `mark` gave `epoch` (call `poll` first)."""
    return epoch is not None and directory in _watched and _changed_at[directory] <= epoch


def directory_of(path: str) -> str:
    """What to `mark` for a check of the file `path`: its directory; or, for a link (or a
    file gone), the path itself, noted as unwatchable.

    An edit made through another name of the file (a symbolic link's target, another hard
    link) reaches no watch of this directory.
    """
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISLNK(st.st_mode) and st.st_nlink == 1:
        return os.path.dirname(path)
    _unwatchable.add(path)
    return path


def epoch() -> int:
    """Moves on whenever an event comes, a watch is added or all are forgotten: while it
    stays, every directory that was quiet still is."""
    return _epoch


def poll() -> None:
    """Take in the events the kernel has queued since the last poll."""
    global _epoch
    inotify = _inotify
    if inotify is None:
        return
    with _lock:
        fcntl.ioctl(inotify.fileno(), termios.FIONREAD, _pending)
        if not _pending[0]:
            return
        _epoch += 1
        for event in inotify.read(timeout=0):
            if event.mask & _LOST:
                _forget()
                return
            directory = _dir_of.get(event.wd)
            if directory is not None:
                _changed_at[directory] = _epoch


def never() -> None:
    """Watch nothing in this process: starting inotify costs more than one run saves."""
    global _broken
    _broken = True


def mark(directory: str) -> int | None:
    """Watch `directory` from now on, when it can be; the epoch to give `quiet_since` for
    a check of its files made after this call, or None when it cannot be watched."""
    if directory in _watched:
        return _epoch
    if _broken or directory in _unwatchable:
        return None
    with _lock:
        epoch = _watch(directory) if _watchable(directory) else None
        if epoch is None:
            _unwatchable.add(directory)
        return epoch


def _watch(directory: str) -> int | None:
    global _inotify, _broken, _epoch
    if _inotify is None:
        try:
            from inotify_simple import INotify  # type: ignore[import-untyped]

            _inotify = INotify(nonblocking=True)
        except (ImportError, OSError):
            _broken = True
            return None
    try:
        wd = _inotify.add_watch(directory, _CONTENTS | _SELF)
        child, ancestor = directory, os.path.dirname(directory)
        while ancestor != child:
            _inotify.add_watch(ancestor, _SELF)
            child, ancestor = ancestor, os.path.dirname(ancestor)
    except OSError:  # gone, not allowed, or no watches left
        return None
    _dir_of[wd] = directory
    _epoch += 1  # checks made before now knew no watch: they are not quiet
    _watched[directory] = wd
    _changed_at[directory] = _epoch
    return _epoch


def _watchable(directory: str) -> bool:
    """An absolute path with no link in it, on a local filesystem."""
    if not os.path.isabs(directory) or os.path.realpath(directory) != directory:
        return False
    return _filesystem(directory) in _LOCAL


def _filesystem(path: str) -> str | None:
    """The type of the filesystem `path` is on, from /proc/self/mountinfo."""
    best, kind = "", None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields, _, rest = line.partition(" - ")
                mount_point = _unescape(fields.split()[4])
                inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, kind = mount_point, rest.split()[0]
    except (OSError, IndexError):
        return None
    return kind


def _unescape(field: str) -> str:
    # Spaces, tabs, newlines and backslashes in mount points are written as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda octal: chr(int(octal[1], 8)), field)


def _forget() -> None:
    """Start afresh: every directory noted as changed, no watch kept."""
    global _inotify, _epoch
    inotify, _inotify = _inotify, None
    if inotify is not None:
        inotify.close()
    _epoch += 1
    for directory in _watched:
        _changed_at[directory] = _epoch
    _watched.clear()
    _dir_of.clear()


os.register_at_fork(after_in_child=_forget)
