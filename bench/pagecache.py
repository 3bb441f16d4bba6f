"""Drops binaries from the page cache, so every system is read from disk
as in a container just started from its image. A file just written (the
release build's strip, a package's install) sits in the page cache in
whatever pieces the writes made, and how much of it each exec maps with
every page fault depends on those pieces: corral's own PID 1 RSS in tini
mode read 1,024 KiB right after the build and 704 KiB once read back from
disk."""
import os


def evict(paths):
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)  # dirty pages are not dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
