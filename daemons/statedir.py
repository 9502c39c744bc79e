"""The node's state directory and the files in it, safe against other local users.

Without $XDG_RUNTIME_DIR a non-root user's default is the predictable /tmp/tensor-fusion-UID,
which anyone can create first and fill with a token, a node.json or symlinks. So a state
directory is used only when it is a real directory owned by this user that no one else can
write to (and, for the per-user default, that no one else can even enter); files are
created with O_EXCL|O_NOFOLLOW and replaced by atomic rename; and a file is read only when
it is a regular file of this user's that no one else can write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Final

from tfcore.hypervisor.paths import default_state_dir

NO_GROUP_OR_OTHER_WRITE: Final = stat.S_IWGRP | stat.S_IWOTH
NO_GROUP_OR_OTHER_ACCESS: Final = 0o077
_CREATE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeStateDir(Exception):
    """A state directory or file that another user could have planted or could change."""


def is_default(path: Path) -> bool:
    """True for the per-user default (no $TF_STATE_DIR, not root): it must be private."""
    return os.geteuid() != 0 and not os.environ.get("TF_STATE_DIR") and path == default_state_dir(os.environ)


def prepare(path: Path, *, create: bool = True) -> Path:
    """The directory, made 0700 if missing; UnsafeStateDir unless it is this user's alone."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # checked below, whoever made it
            os.mkdir(path, 0o700)
    check_dir(path, private=is_default(path))
    return path


def check_dir(path: Path, *, private: bool) -> None:
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        raise UnsafeStateDir(f"state directory {path} does not exist") from None
    if not stat.S_ISDIR(found.st_mode):
        raise UnsafeStateDir(f"state directory {path} is not a directory (a symlink?); not used")
    _check_owner(path, found, "state directory")
    forbidden = NO_GROUP_OR_OTHER_ACCESS if private else NO_GROUP_OR_OTHER_WRITE
    if found.st_mode & forbidden:
        raise UnsafeStateDir(
            f"state directory {path} has mode {stat.S_IMODE(found.st_mode):04o}: other users could plant files "
            f"there; use `chmod {'700' if private else 'go-w'} {path}` if it is yours, else remove it "
            "(or set $XDG_RUNTIME_DIR / --state-dir)"
        )


def read_own_file(path: Path, *, private: bool = False) -> str:
    """The text of a regular file of this user's that no one else can write (or read, if private)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last component is a symlink
            raise UnsafeStateDir(f"{path} is a symlink; not used") from None
        raise
    with os.fdopen(fd, "rb") as file:
        found = os.fstat(file.fileno())
        if not stat.S_ISREG(found.st_mode):
            raise UnsafeStateDir(f"{path} is not a regular file; not used")
        _check_owner(path, found, "file")
        forbidden = NO_GROUP_OR_OTHER_ACCESS if private else NO_GROUP_OR_OTHER_WRITE
        if found.st_mode & forbidden:
            raise UnsafeStateDir(f"{path} has mode {stat.S_IMODE(found.st_mode):04o}; not used")
        return file.read().decode()


def create_new(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Writes a file that must not exist yet (never follows a symlink planted there)."""
    fd = os.open(path, _CREATE, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def replace_atomically(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Readers see the old file or the new one, never a part; a planted symlink is replaced,
    its target untouched."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # unlink never follows a symlink
    create_new(temporary, text, mode=mode)
    try:
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _check_owner(path: Path, found: os.stat_result, what: str) -> None:
    if found.st_uid != os.geteuid():
        raise UnsafeStateDir(
            f"{what} {path} belongs to uid {found.st_uid}, not to this user (uid {os.geteuid()}); not used"
        )
