"""Load a device's calibration file from ``hardware_profiles/calibration/<device>.yaml``."""

from __future__ import annotations

from pathlib import Path

from hetsim.errors import CalibrationError
from hetsim.io.catalog import profiles_root
from hetsim.io.yamlfile import load_spec
from hetsim.specs.calibration import CalibrationSpec


def calibration_path(device_name: str, root: Path | None = None) -> Path:
    return profiles_root(root) / "calibration" / f"{device_name}.yaml"


def load_calibration(device_name: str, root: Path | None = None) -> CalibrationSpec | None:
    """The calibration of ``device_name``, or None when the device has none."""
    path = calibration_path(device_name, root)
    if not path.is_file():
        return None
    spec = load_spec(path, CalibrationSpec, CalibrationError)
    if spec.device != device_name:
        raise CalibrationError(f"{path}: field 'device': expected {device_name!r} (the file name), got {spec.device!r}")
    return spec
