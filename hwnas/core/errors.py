"""The kinds of failure a user can act on, so every command ends with an exit code scripts can trust.

Every error hwnas raises for the user to act on derives from one root, :class:`HwnasError`, which carries the
command's exit code (``exit_code``, as Optuna's ``OptunaError`` roots its errors): the CLI catches the root and
exits with its code, one line on stderr that says what and what to do.

``InputError``: what the user gave is wrong (a file, a flag, an architecture, a LUT): exit 2. Each module
derives its own (``LUTError``, ``ArchError``, ``DataError``…) and raises it where the bad input is detected.
``CheckFailed``: the input was fine but a check did not pass (a verdict, parity): exit 1. The profilers' own
(``hwnas.profilers.base``): a setting a profiler cannot take, exit 2; a profiler that cannot run here, exit 3.
Anything else escaping a command is a bug in hwnas: exit 4, with the traceback written to a file
(``hwnas.app.cli``).
"""
from __future__ import annotations

# what a command exits with (hwnas.app.cli): 0 done, 1 a check failed, 2 bad input, 3 the device or runtime is not
# available here, 4 a bug in hwnas, 5 a verdict that cannot be given (finalize: measured twice, too noisy to tell
# PASS from FAIL), 130 interrupted, 141 its reader closed the pipe
EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_UNAVAILABLE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_UNCERTAIN = 5
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command whose reader closed the pipe


class HwnasError(Exception):
    """The root of every error hwnas raises for the user to act on; ``exit_code`` is the command's exit code."""

    exit_code: int = EXIT_INPUT


class InputError(HwnasError, ValueError):
    """Bad input; the message names the file/field and the fix."""

    exit_code = EXIT_INPUT


class CheckFailed(HwnasError, RuntimeError):
    """A check on good input failed (e.g. ONNX parity)."""

    exit_code = EXIT_FAIL


class SearchError(InputError):
    """A search's configuration is wrong (strategy, population, objectives, workers)."""


# -- the environment refusing: one line per errno, naming the file and the fix (hwnas.app.cli maps OSError here) ----
def _name(e: OSError) -> str:
    names = [n for n in (e.filename, e.filename2) if n is not None]
    return " -> ".join(str(n) for n in names) or "a file"


OS_ERRORS: dict[str, str] = {
    "EACCES": "permission denied: {name}; check its permissions and its folder's (hwnas reads inputs and writes "
              "--out), or give another path",
    "EPERM": "operation not permitted on {name}; check its permissions and its folder's, or give another path",
    "ENOSPC": "no space left on the device holding {name}; nothing half-written was left in place: free space, "
              "then run the same command again",
    "EDQUOT": "disk quota exceeded writing {name}; nothing half-written was left in place: free space or raise the "
              "quota, then run the same command again",
    "EROFS": "{name} is on a read-only file system; give an --out on a writable one",
    "ELOOP": "{name}: too many levels of symbolic links (a link that points back at itself); point it at a real "
             "file or directory, or give another path",
    "ENAMETOOLONG": "{name}: the path or a name in it is too long for the file system; give a shorter one",
    "ENOTDIR": "{name}: a part of this path is a file, not a directory; give a path whose folders are folders",
    "EISDIR": "{name} is a directory; give a file",
    "ENOENT": "{name}: no such file or directory (or it cannot be created there); give a path that exists, or "
              "one in a folder you can write",
    "EEXIST": "{name} exists and is not what hwnas expected there (a file where a directory goes, or a symbolic "
              "link that dangles or loops); give another path",
    "EIO": "input/output error on {name}: the disk or its connection failed; check it, then run the same command "
           "again",
    "EFBIG": "{name}: file too large for this file system or its limit (ulimit -f); give an --out elsewhere",
    "EMFILE": "too many open files (at {name}); raise the limit (ulimit -n) and run the same command again",
    "ENFILE": "the system has too many open files (at {name}); close some programs and run the same command again",
    "EXDEV": "{name}: cannot move across file systems; give an --out on the same file system as its folder",
    "ENXIO": "{name}: no such device or address (a socket or a device file?); give a regular file",
}


def describe_os_error(e: OSError) -> str | None:
    """One line for an error the environment raised (permission, space, a read-only disk, a symlink loop...):
    what, on which file, and what to do; None for an errno that is not the user's to fix (a bug in hwnas)."""
    import errno

    code = errno.errorcode.get(e.errno or 0)
    text = OS_ERRORS.get(code or "")
    return None if text is None else text.format(name=_name(e))
