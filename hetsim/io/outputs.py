"""Outputs written whole: staged beside their target, moved in at the end, with a manifest written last.

Every command that writes files (plans, reports, ``--out`` folders) goes through :func:`write_outputs`:

1. each target gets a staging place beside it (the same file system, so moving it in is a rename);
2. the caller's ``write`` fills the staging places;
3. each output folder gets ``manifest.json``, written last: every file with its size and sha256,
   the inputs' hash, and whether the output is complete;
4. the staged outputs are moved in with Ctrl-C held back until all of them are in.

A folder that holds nothing but hetsim's earlier output (its manifest and the files listed there),
or that does not exist yet, is exchanged with (or renamed to) its staged copy in one step
(``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames, Ctrl-C held back): it holds the
old output or the new one, never a mix. Any other folder (``--out .``, an empty one, one from an
older hetsim) keeps its other files: the output is staged inside it, the old manifest is removed
first, hetsim's files are moved in one by one, the new manifest last; a folder is complete when
its manifest is there and its hashes match (:func:`verify_folder`). A Ctrl-C while writing removes
the staging places and leaves the targets as they were.

When a target cannot be written (read-only, a file where a folder belongs, a full disk), ``write``
runs again into a folder under the system's temporary folder, and the error names the target, what
was expected, what came, and where the results were kept: computed results are never lost.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hetsim import __version__
from hetsim.errors import HetsimError
from hetsim.io import ctrl_c

MANIFEST = "manifest.json"
"""The completion marker of an output folder, written last."""
INCOMPLETE_SUFFIX = ".incomplete"
"""An interrupted command's partial output goes to ``<target>.incomplete``, never to the target."""
_STAGING = ".partial-"
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


@dataclass(frozen=True)
class Target:
    """One output: a folder (the default) or a single file, and how the user named it."""

    path: Path
    option: str
    """How the user named the path, for messages: ``--out``, ``--report``, ``plan file``."""
    is_folder: bool = True
    has_manifest: bool = True
    """False for a folder shared with other files (``hardware_profiles/calibration``): hetsim's files
    are moved in together, nothing else there is touched, and no manifest is written."""


@dataclass(frozen=True)
class Provenance:
    """What a manifest says about the output: the command, its inputs, whether it is complete."""

    command: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    """Name -> input: a path (hashed by content when it is a file) or a JSON-ready option value."""
    is_complete: bool = True


def _shown(path: Path) -> str:
    """A path as a manifest records it: relative to the working folder when under it (a
    manifest committed with its output names no machine's folders), else absolute."""
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def inputs_digest(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs as a manifest records them: each file's sha256, each option's value, and one
    sha256 over all of them (two runs with the same inputs carry the same hash)."""
    files: dict[str, dict[str, str]] = {}
    options: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, Path):
            path = value.resolve()
            files[name] = {"path": _shown(path), "sha256": _file_sha256(path) if path.is_file() else "not a file"}
        else:
            options[name] = value
    canonical = json.dumps({"files": {k: v["sha256"] for k, v in files.items()}, "options": options},
                           sort_keys=True, default=str)  # fmt: skip
    return {"sha256": hashlib.sha256(canonical.encode()).hexdigest(), "files": files, "options": options}


def incomplete_path(target: Path) -> Path:
    """Where an interrupted command keeps what it finished: ``<target>.incomplete`` beside the target."""
    return target.with_name(target.name + INCOMPLETE_SUFFIX)


def write_outputs(
    targets: Sequence[Target], write: Callable[[list[Path]], Sequence[Path]], error: type[HetsimError],
    provenance: Provenance,
) -> list[Path]:
    """Write ``targets`` whole: ``write(staging_paths)`` fills one staging path per target (in
    order) and returns the files it wrote; they are moved in at the end.

    ``write`` may run twice: again into a temporary folder when a target cannot be written.

    Returns:
        The files written, at their final paths (under the targets as given), in the order
        ``write`` returned them, then each folder's manifest.

    Raises:
        error: a target cannot be written (one line: the target, what was expected, what came,
            where the results were kept instead).
    """
    given = targets
    targets = [Target(t.path.resolve(), t.option, t.is_folder, t.has_manifest) for t in given]
    staged: list[Path] = []
    try:
        for target in targets:
            with held_ctrl_c():  # a staging place made is one the clean-up below knows of
                staged.append(_stage(target))
        written = list(write(staged))
        _finish(targets, staged, provenance)
        _check_targets(targets)
        ctrl_c.stop_if_received()  # one a library swallowed while the outputs were made: keep the old ones
        with held_ctrl_c():
            for target, staging in zip(targets, staged, strict=True):
                _commit(target, staging)
    except OSError as exc:
        _remove(staged)
        failed = _failed_target(exc, targets, staged)
        raise error(_keep_elsewhere(failed, exc, targets, write, provenance)) from None
    except BaseException:
        _remove(staged)
        raise
    manifests = [t.path / MANIFEST for t in given if t.is_folder and t.has_manifest]
    return [_final(path, given, staged) for path in written] + manifests


def texts_into(texts: Mapping[str, str], blobs: Mapping[str, bytes] | None = None) -> Callable[[Path], list[Path]]:
    """A ``write`` for :func:`write_folder`: puts ``texts`` (relative path -> UTF-8 text) and
    ``blobs`` (relative path -> bytes) in the folder, making sub-folders as needed."""

    def write(folder: Path) -> list[Path]:
        written = []
        for relative, content in [*texts.items(), *(blobs or {}).items()]:
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            written.append(path)
        return written

    return write


def write_folder(
    target: Path, option: str, write: Callable[[Path], Sequence[Path]], error: type[HetsimError], provenance: Provenance,
) -> list[Path]:
    """:func:`write_outputs` for one folder: ``write(folder)`` fills it and returns the files written."""
    return write_outputs([Target(target, option)], lambda staged: write(staged[0]), error, provenance)


def write_file(target: Path, option: str, write: Callable[[Path], object], error: type[HetsimError]) -> Path:
    """:func:`write_outputs` for one file: ``write(path)`` writes it; it replaces ``target`` whole."""

    def fill(staged: list[Path]) -> list[Path]:
        write(staged[0])
        return [staged[0]]

    return write_outputs([Target(target, option, is_folder=False)], fill, error, Provenance("write"))[0]


def verify_folder(folder: Path) -> dict[str, Any]:
    """The manifest of an output folder whose files all match it.

    Raises:
        ValueError: no manifest, or a listed file is missing or differs from its hash.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder / MANIFEST}: expected a hetsim output manifest, got {exc}") from None
    for relative, entry in manifest["files"].items():
        path = folder / relative
        if not path.is_file() or _file_sha256(path) != entry["sha256"]:
            raise ValueError(f"{path}: expected the file the manifest lists (sha256 {entry['sha256'][:12]}), got "
                             + ("no file" if not path.is_file() else "different content"))  # fmt: skip
    return manifest


@contextmanager
def held_ctrl_c() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back for the block; one that came is raised as KeyboardInterrupt after it.

    Only the main thread receives signals; elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # a handler installed outside Python: left alone
        yield
        return
    signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, None)  # the default handler raises KeyboardInterrupt


# ---- staging and committing ----------------------------------------------------------------


def _stage(target: Target) -> Path:
    """A staging place beside the target; inside it for a folder whose other files are kept (where
    hetsim surely may write: ``--out .`` stages in the working folder, not in its parent)."""
    if target.is_folder and target.path.is_dir() and not (target.has_manifest and _holds_only_ours(target.path)):
        return _new_place(target.path, f".hetsim{_STAGING}", is_folder=True)
    target.path.parent.mkdir(parents=True, exist_ok=True)
    return _new_place(target.path.parent, f".{target.path.name}{_STAGING}", target.is_folder)


def _new_place(parent: Path, prefix: str, is_folder: bool) -> Path:
    """A new folder or empty file with a unique name; unlike ``tempfile``'s (mode 700 / 600), with
    the permissions the umask gives, since it becomes the output."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            if is_folder:
                path.mkdir()
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return path


def _finish(targets: Sequence[Target], staged: Sequence[Path], provenance: Provenance) -> None:
    """Write each folder's manifest (last, after every other file)."""
    for target, staging in zip(targets, staged, strict=True):
        if target.is_folder and target.has_manifest:
            _write_manifest(staging, provenance)


def _write_manifest(folder: Path, provenance: Provenance) -> None:
    files = {rel: {"bytes": (folder / rel).stat().st_size, "sha256": _file_sha256(folder / rel)}
             for rel in _files(folder) if rel != MANIFEST}  # fmt: skip
    manifest = {
        "schema_version": 1, "written_by": f"hetsim {__version__}", "command": provenance.command,
        "complete": provenance.is_complete, "inputs": inputs_digest(provenance.inputs), "files": files,
    }  # fmt: skip
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")


def _check_targets(targets: Sequence[Target]) -> None:
    """Before anything is moved: each target is absent or of the kind it will replace."""
    for target in targets:
        if target.is_folder and (target.path.is_file() or target.path.is_symlink()):
            raise NotADirectoryError(errno.ENOTDIR, "a file", str(target.path))
        if not target.is_folder and target.path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder", str(target.path))


def _commit(target: Target, staging: Path) -> None:
    if not target.is_folder:
        os.replace(staging, target.path)
    elif staging.parent == target.path:
        _merge(staging, target.path, target.has_manifest)
    elif not target.path.exists():
        os.rename(staging, target.path)
    elif target.has_manifest and _holds_only_ours(target.path):
        _exchange(staging, target.path)
        shutil.rmtree(staging, ignore_errors=True)  # it holds the previous output now
    else:
        _merge(staging, target.path, target.has_manifest)


def _holds_only_ours(folder: Path) -> bool:
    """True when ``folder`` has a manifest and every file under it is one the manifest lists.
    Stops at the first other file (``--out .`` in a big tree)."""
    if not (folder / MANIFEST).is_file():
        return False
    ours = {*_manifest_files(folder), MANIFEST}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if (Path(root) / name).relative_to(folder).as_posix() not in ours:
                return False
    return True


def _manifest_files(folder: Path) -> list[str]:
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(name) for name in files] if isinstance(files, dict) else []


def _exchange(staging: Path, target: Path) -> None:
    """Swap two folders: ``target`` gets the staged content, ``staging`` the previous one."""
    if _rename_exchange(staging, target):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    aside.rmdir()
    os.rename(target, aside)
    os.rename(staging, target)
    os.rename(aside, staging)


def _rename_exchange(first: Path, second: Path) -> bool:
    """Linux's atomic exchange of two paths; False where the system or file system lacks it."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _merge(staging: Path, target: Path, has_manifest: bool) -> None:
    """Move hetsim's files into a folder that holds others too: the old manifest out first, the
    new one in last; files of the previous output that the new one lacks are removed."""
    previous = set(_manifest_files(target)) if has_manifest else set()
    if has_manifest:
        (target / MANIFEST).unlink(missing_ok=True)
    new = [rel for rel in _files(staging) if rel != MANIFEST]
    for rel in new:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target / rel)
    for rel in sorted(previous - set(new) - {MANIFEST}):
        (target / rel).unlink(missing_ok=True)
    if has_manifest:
        os.replace(staging / MANIFEST, target / MANIFEST)
    shutil.rmtree(staging, ignore_errors=True)


def _remove(staged: Sequence[Path]) -> None:
    with held_ctrl_c():
        for path in staged:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


# ---- when a target cannot be written -------------------------------------------------------


def _keep_elsewhere(
    failed: Target, exc: OSError, targets: Sequence[Target], write: Callable[[list[Path]], Sequence[Path]],
    provenance: Provenance,
) -> str:
    """Write the outputs again under the system's temporary folder; the one-line error message."""
    problem = f"{failed.option} {failed.path}: {_expected_and_got(failed, exc)}"
    kept: Path | None = None
    try:
        kept = Path(tempfile.mkdtemp(prefix="hetsim-kept-"))
        places = [kept / t.path.name for t in targets]
        for target, place in zip(targets, places, strict=True):
            if target.is_folder:
                place.mkdir(exist_ok=True)
        write(places)
        _finish(targets, places, provenance)
    except OSError as again:
        if kept is not None:
            shutil.rmtree(kept, ignore_errors=True)
        return f"{problem}; keeping the results in {tempfile.gettempdir()} failed too ({again.strerror or again})"
    return f"{problem}; the results were kept in {kept}"


def _expected_and_got(target: Target, exc: OSError) -> str:
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        expected = "free space for the results"
    elif code == errno.ENOTDIR or (code is None and target.path.is_file() and target.is_folder):
        expected = "a folder (or a new path)"
    elif code == errno.EISDIR:
        expected = "a file (or a new path)"
    else:
        expected = "a writable place"
    got = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename and not _names_target(Path(exc.filename), target.path):
        got += f" at {exc.filename}"  # a parent folder, say, which the message would not name otherwise
    return f"expected {expected}, got {got}"


def _names_target(path: Path, target: Path) -> bool:
    """True when ``path`` is the target, inside it, or inside its staging place."""
    staging = f".{target.name}{_STAGING}"
    return _is_within(path, target) or any(p.name.startswith(staging) for p in (path, *path.parents))


def _failed_target(exc: OSError, targets: Sequence[Target], staged: Sequence[Path]) -> Target:
    """The target an error concerns: the one whose path or staging place it names (else the first)."""
    where = Path(exc.filename) if exc.filename else None
    if where is not None:
        for index, target in enumerate(targets):
            if _is_within(where, target.path) or (index < len(staged) and _is_within(where, staged[index])):
                return target
            if _is_within(target.path, where):  # a parent folder of the target
                return target
    return targets[0]


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _final(path: Path, targets: Sequence[Target], staged: Sequence[Path]) -> Path:
    for target, staging in zip(targets, staged, strict=True):
        if _is_within(path, staging):
            return target.path / path.relative_to(staging) if target.is_folder else target.path
    return path


def _files(folder: Path) -> list[str]:
    """Every file under ``folder``, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
