"""Small facts about the process the store and the audio writer share."""

from __future__ import annotations

import os


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Linux shows it in /proc/self/status; elsewhere it can only be read by setting it,
    briefly, to 0 and back (done once, at import, by the callers below).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode `open(path, "w")` gives a new file (0o666 less the umask), for files made
    with mkstemp (0600) that are then renamed into a dataset."""
    return 0o666 & ~current_umask()
