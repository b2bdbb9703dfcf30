"""Build the opt-in compiled (mypyc) hetsim of this checkout and unpack it for PYTHONPATH.

The compiled build is hetsim's wheel with the simulator's hot modules (the mypyc hook's
``include`` list in pyproject.toml) compiled to C extensions. This helper snapshots the
checkout as it is now (uncommitted edits included) into a temporary folder, builds the wheel
there with ``HATCH_BUILD_HOOK_ENABLE_MYPYC=true`` (about a minute; needs a C compiler), unpacks
it into ``<cache>/<python>-<digest>/`` and checks, in a fresh interpreter with that folder first
on PYTHONPATH, that every compiled module is imported from its extension (``.so``). A build is
reused while the snapshot's contents (sources, data, build configuration) are unchanged.

Usage: python benchmarks/compiled_build.py [--cache DIR] [--rebuild]
prints the folder to put first on PYTHONPATH (progress goes to stderr), e.g.
``PYTHONPATH=$(python benchmarks/compiled_build.py) python benchmarks/sim_azure_conv.py``.
The cache defaults to ``.compiled-build/`` in the checkout ($HETSIM_COMPILED_BUILD_DIR overrides).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE_ENV = "HETSIM_COMPILED_BUILD_DIR"
EXPECT_ENV = "HETSIM_EXPECT_BUILD"  # "compiled" or "pure": describe_build() fails on a mismatch
ENABLE_ENV = "HATCH_BUILD_HOOK_ENABLE_MYPYC"
# What the wheel is built from: the build configuration, the package and the data it bundles.
SNAPSHOT_FILES = ("pyproject.toml", "hatch_build.py", "mypyc.ini", "README.md", ".gitignore", "LICENSE*", "NOTICE*")
SNAPSHOT_DIRS = ("hetsim", "hardware_profiles", "models", "workloads", "scenarios")
SKIPPED = ("__pycache__", "*.pyc", "*.so", "*.pyd", ".mypy_cache")
KEEP_BUILDS = 3  # newest builds kept in the cache; older ones are removed


def compiled_modules(repo: Path = REPO) -> list[str]:
    """Dotted names of the modules the mypyc hook compiles (its ``include`` list in pyproject.toml)."""
    with open(repo / "pyproject.toml", "rb") as file:
        hook = tomllib.load(file)["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"]
    return [path.removesuffix(".py").replace("/", ".") for path in hook["include"]]


def _skipped(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIPPED)


def snapshot_files(repo: Path = REPO) -> list[Path]:
    """The files (relative to ``repo``) the compiled wheel is built from, sorted."""
    files = [
        Path(entry.name)
        for entry in os.scandir(repo)
        if entry.is_file() and any(fnmatch.fnmatch(entry.name, pattern) for pattern in SNAPSHOT_FILES)
    ]
    for folder in SNAPSHOT_DIRS:
        for root, dirs, names in os.walk(repo / folder):
            dirs[:] = sorted(name for name in dirs if not _skipped(name))
            files += [Path(root, name).relative_to(repo) for name in names if not _skipped(name)]
    return sorted(files)


def snapshot_digest(repo: Path = REPO) -> str:
    """A digest of the snapshot's paths and contents and of this interpreter (the wheel is CPython-specific)."""
    digest = hashlib.sha256(f"{sys.implementation.cache_tag} {sys.version} {sys.platform}".encode())
    for path in snapshot_files(repo):
        digest.update(f"\0{path.as_posix()}\0".encode())
        digest.update((repo / path).read_bytes())
    return digest.hexdigest()[:16]


def pythonpath_env(build_dir: Path | str | None, env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with ``build_dir`` first on PYTHONPATH (None: unchanged)."""
    env = dict(os.environ if env is None else env)
    if build_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(build_dir), env.get("PYTHONPATH", "")]))
    return env


def verify(build_dir: Path, repo: Path = REPO, python: str = sys.executable) -> dict[str, str]:
    """Import every compiled module in a fresh interpreter with ``build_dir`` first on PYTHONPATH;
    fail unless each comes from an extension module inside ``build_dir``. Returns name -> file."""
    modules = compiled_modules(repo)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(name, importlib.import_module(name).__file__)"
    result = subprocess.run(
        [python, "-c", code, *modules],
        cwd=build_dir,  # not the checkout: its pure sources must not come first on sys.path
        env=pythonpath_env(build_dir),
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"importing the compiled build from {build_dir} failed:\n{result.stderr}")
    files = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    wrong = {
        name: file
        for name, file in files.items()
        if not file.endswith((".so", ".pyd")) or not Path(file).resolve().is_relative_to(build_dir.resolve())
    }
    if wrong:
        raise RuntimeError(f"not imported from compiled extensions in {build_dir}: {wrong}")
    return files


def _log(message: str) -> None:
    print(f"compiled build: {message}", file=sys.stderr, flush=True)


def _run(command: list[str], what: str, **kwargs) -> None:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode:
        raise RuntimeError(f"{what} failed ({' '.join(command)}):\n{result.stdout}\n{result.stderr}")


def _prune(cache: Path, keep: Path) -> None:
    """Remove all but the newest KEEP_BUILDS builds for this interpreter (``keep`` always stays)."""
    prefix = f"{sys.implementation.cache_tag}-"
    builds = sorted(
        (path for path in cache.iterdir() if path.is_dir() and path.name.startswith(prefix) and path != keep),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for old in builds[KEEP_BUILDS - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def build_compiled(
    repo: Path = REPO, cache: Path | None = None, rebuild: bool = False, python: str = sys.executable
) -> Path:
    """Build (or reuse) the compiled hetsim of ``repo``; return the folder to put first on PYTHONPATH."""
    repo = Path(repo).resolve()
    cache = Path(cache or os.environ.get(CACHE_ENV) or repo / ".compiled-build").resolve()
    target = cache / f"{sys.implementation.cache_tag}-{snapshot_digest(repo)}"
    if target.is_dir() and not rebuild:
        verify(target, repo, python)
        _log(f"reusing {target}")
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".tmp-") as tmp:
        source, wheels, unpacked = Path(tmp, "src"), Path(tmp, "wheel"), Path(tmp, "site")
        for path in snapshot_files(repo):
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / path, source / path)
        _log(f"building the mypyc wheel of {repo} (about a minute) ...")
        started = time.perf_counter()
        _run(
            [python, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", str(wheels), str(source)],
            "building the compiled wheel",
            env={**os.environ, ENABLE_ENV: "true"},
        )
        (wheel,) = wheels.glob("*.whl")
        if wheel.name.endswith("-none-any.whl"):
            raise RuntimeError(f"{wheel.name} is a pure wheel: the mypyc build hook did not run")
        _log(f"built {wheel.name} in {time.perf_counter() - started:.0f} s")
        _run(
            [python, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--target", str(unpacked), str(wheel)],
            "unpacking the compiled wheel",
        )  # fmt: skip
        verify(unpacked, repo, python)
        if rebuild and target.exists():
            shutil.rmtree(target)
        try:
            unpacked.rename(target)
        except OSError:  # built meanwhile by another process: use that one
            if not target.is_dir():
                raise
    _prune(cache, keep=target)
    _log(f"ready: {target}")
    return target


def describe_build() -> str:
    """The line benchmarks print: which hetsim build this process runs (imports hetsim.sim.engine)."""
    import hetsim.sim.engine as engine

    compiled = engine.__file__ is not None and engine.__file__.endswith((".so", ".pyd"))
    expected = os.environ.get(EXPECT_ENV)
    if expected and expected != ("compiled" if compiled else "pure"):
        raise SystemExit(f"expected the {expected} build, but hetsim.sim.engine is {engine.__file__}")
    return f"build: {'compiled (mypyc)' if compiled else 'pure Python'} (hetsim.sim.engine from {engine.__file__})"


def rerun_compiled(requested: bool, script: str) -> None:
    """For a benchmark's ``--compiled``: unless this process already is the compiled rerun, run
    ``script`` with the same arguments in a child interpreter with the compiled build first on
    PYTHONPATH, and exit with its status. Does nothing when not ``requested``."""
    if not requested or os.environ.get(EXPECT_ENV) == "compiled":
        return
    try:
        build_dir = build_compiled()
    except RuntimeError as exc:
        raise SystemExit(f"compiled build: {exc}") from None
    env = pythonpath_env(build_dir)
    env[EXPECT_ENV] = "compiled"
    sys.stdout.flush()
    raise SystemExit(subprocess.run([sys.executable, script, *sys.argv[1:]], env=env).returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help=f"default: ${CACHE_ENV} or .compiled-build/")
    parser.add_argument("--rebuild", action="store_true", help="build again even if a build of this snapshot exists")
    args = parser.parse_args()
    try:
        print(build_compiled(cache=args.cache, rebuild=args.rebuild))
    except RuntimeError as exc:
        raise SystemExit(f"compiled build: {exc}") from None


if __name__ == "__main__":
    main()
