"""Hatch build hook: after a compiled (mypyc) wheel is written, remove the extension modules that
hatch-mypyc compiled into the source tree (it builds them in place and leaves them there).

Left in a checkout, ``hetsim/sim/engine.cpython-*.so`` would shadow ``engine.py``: an editable
install, or tests run from the checkout, would silently run the stale compiled module instead of
the edited source. The wheel already holds its copies. Does nothing when the mypyc hook is off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_EXTENSIONS = (".so", ".pyd")


class CompiledBuildCleanup(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if "mypyc" not in build_data.get("build_hooks", ()):
            return
        root = Path(self.root)
        removed = [
            path
            for pattern in build_data.get("artifacts", [])
            if pattern.endswith(_EXTENSIONS)
            for path in root.glob(pattern.lstrip("/"))
        ]
        removed += [
            Path(source)
            for source in build_data.get("force_include", {})
            if "__mypyc." in Path(source).name and Path(source).name.endswith(_EXTENSIONS)
        ]
        for path in removed:
            path.unlink(missing_ok=True)
        self.app.display_info(f"removed {len(removed)} compiled modules from the source tree (the wheel has them)")
