"""Output folders written whole: built beside the target, then swapped in."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hetsim.errors import HetsimError


@contextmanager
def whole_folder(target: Path, error: type[HetsimError], option: str) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; when the block ends without an error,
    the staging folder replaces ``target`` (which then holds the old content or the new one,
    never a mix). On an error the staging folder is removed; a file-system error becomes
    ``error`` naming ``option`` and the folder."""
    target = target.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as exc:
        raise error(f"{option} {target}: cannot write there: {exc}") from None
    try:
        yield staging
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise error(f"{option} {target}: cannot write the results: {exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
