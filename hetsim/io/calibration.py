"""Load a device's calibration file from ``hardware_profiles/calibration/<device>.yaml``.

A calibration is keyed by the name of the accelerator profile it calibrates: the file name,
the ``device`` field and a profile under ``accelerators/`` (or ``paper/``) must agree, so a
calibration can never silently attach to the wrong device or to one that does not exist.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from hetsim.errors import CalibrationError
from hetsim.io.catalog import profiles_root
from hetsim.io.yamlfile import load_spec
from hetsim.specs.calibration import CalibrationSpec

_DEVICE_FOLDERS = ("accelerators", "paper")


def calibration_path(device_name: str, root: Path | None = None) -> Path:
    return profiles_root(root) / "calibration" / f"{device_name}.yaml"


def load_calibration_file(path: Path) -> CalibrationSpec:
    """Load and validate one calibration file; problems raise ``CalibrationError`` in one line."""
    return load_spec(path, CalibrationSpec, CalibrationError)


def stack_slug(stack: str) -> str:
    """A stack label's file-name form: 'vllm (Splitwise paper, 2023)' -> 'vllm-splitwise-paper-2023'."""
    text = "".join(c if c.isalnum() or c == "." else "-" for c in stack.lower())
    return "-".join(part for part in text.split("-") if part)


def stack_calibrations(root: Path | None = None) -> dict[str, list[str]]:
    """Alternative stacks shipped under ``calibration/stacks/``: slug -> devices."""
    found: dict[str, list[str]] = {}
    for path in sorted((profiles_root(root) / "calibration" / "stacks").glob("*--*.yaml")):
        device, slug = path.stem.split("--", 1)
        found.setdefault(slug, []).append(device)
    return found


def load_calibration(device_name: str, root: Path | None = None, stack: str | None = None) -> CalibrationSpec | None:
    """The calibration of ``device_name``, or None when the device has none. With ``stack`` (a
    slug of ``calibration/stacks/<device>--<slug>.yaml``), that stack's calibration where the
    device has one, else the device's default one.

    Raises:
        CalibrationError: the file is invalid, names another device, or calibrates a device
            that has no profile; or ``stack`` is shipped for no device at all.
    """
    path = calibration_path(device_name, root)
    if stack is not None:
        known = stack_calibrations(root)
        if stack not in known:
            raise CalibrationError(
                f"stack: expected one of {', '.join(sorted(known)) or 'none shipped'} "
                f"(files under {profiles_root(root) / 'calibration' / 'stacks'}), got {stack!r}"
            )
        alternative = profiles_root(root) / "calibration" / "stacks" / f"{device_name}--{stack}.yaml"
        if alternative.is_file():
            path = alternative
    if not path.is_file():
        return None
    spec = load_calibration_file(path)
    if spec.device != device_name:
        raise CalibrationError(f"{path}: field 'device': expected {device_name!r} (the file name), got {spec.device!r}")
    base = profiles_root(root)
    if not any((base / folder / f"{device_name}.yaml").is_file() for folder in _DEVICE_FOLDERS):
        raise CalibrationError(
            f"{path}: field 'device': expected the name of a device profile under {base / 'accelerators'}, "
            f"got unknown device {device_name!r} (ship its profile beside the calibration, as `hetsim bench` does)"
        )
    return spec


def read_rows_csv(path: Path) -> list[dict[str, Any]]:
    """Measurement rows written by ``hetsim bench`` (numbers parsed, empty cells as None)."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [{key: _cell(value) for key, value in row.items()} for row in csv.DictReader(handle)]
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read measurements ({exc.strerror})") from None


def _cell(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text
