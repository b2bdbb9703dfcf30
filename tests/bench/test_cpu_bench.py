"""``hetsim bench`` on the local CPU, end to end on the quick sweep (tiny shapes, ~15-25 s once per module).

Timings on a shared machine are noisy, so these tests check plumbing and physics-level facts
(files, provenance, positive times, curves that the loader accepts), never exact figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hetsim.api.bench import bench, summarize
from hetsim.errors import CalibrationError, ProfileError
from hetsim.io.calibration import load_calibration, read_rows_csv
from hetsim.io.yamlfile import load_spec
from hetsim.specs.calibration import CurveKind
from hetsim.specs.hardware import AcceleratorSpec, DeviceKind

torch = pytest.importorskip("torch", reason="hetsim bench needs the bench extra (torch)")
pytestmark = pytest.mark.bench

from hetsim.bench import cpu  # noqa: E402  (after the importorskip: the module is only useful with torch)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("bench")
    return cpu.run_cpu_bench(out, quick=True, seed=0)


def test_quick_bench_writes_profile_calibration_and_rows(quick_run: tuple[Path, Path]) -> None:
    calibration_path, device_path = quick_run
    root = calibration_path.parent.parent
    assert device_path == root / "accelerators" / f"{device_path.stem}.yaml"
    device = load_spec(device_path, AcceleratorSpec, ProfileError)
    assert device.kind is DeviceKind.CPU and device.name.startswith("host-")
    assert device.memory.bandwidth.source.startswith("measured:")
    calibration = load_calibration(device.name, root)  # also checks the device profile exists beside it
    assert calibration is not None and calibration.device == device.name
    assert {c.kind for c in calibration.curves} >= {CurveKind.GEMM, CurveKind.MEMORY}
    assert 0 < calibration.launch_overhead.si < 1e-3


def test_quick_bench_records_provenance(quick_run: tuple[Path, Path]) -> None:
    calibration = load_calibration(quick_run[1].stem, quick_run[0].parent.parent)
    provenance = calibration.provenance
    assert provenance.kind == "measured" and provenance.threads == cpu._torch().get_num_threads()
    assert provenance.versions["torch"] == torch.__version__ and "hetsim" in provenance.versions
    assert "load average before" in provenance.notes and "quick sweep" in provenance.tool


def test_rows_csv_has_every_op_with_positive_times(quick_run: tuple[Path, Path]) -> None:
    rows = read_rows_csv(quick_run[0].with_suffix(".csv"))
    plan = cpu.QUICK_SWEEP
    gemms = len(plan.tokens) * len(plan.projections) * len(plan.tp_degrees) * len(plan.dtypes)
    assert sum(r["kind"] == "gemm" and r["label"] != "probe" for r in rows) == gemms
    assert sum(r["kind"] == "attention_decode" for r in rows) == len(plan.attention) * len(plan.dtypes)
    assert sum(r["kind"] == "memory" and r["label"] != "probe" for r in rows) == 2 * len(plan.memory_mib)
    assert all(r["seconds"] > 0 and r["rounds"] >= plan.timing.rounds and r["samples"] >= r["rounds"] for r in rows)
    assert list(rows[0]) == list(cpu.ROW_COLUMNS)


def test_api_summary_reports_each_curve(quick_run: tuple[Path, Path]) -> None:
    calibration_path, device_path = quick_run
    summary = summarize(calibration_path, load_spec(device_path, AcceleratorSpec, ProfileError), device_path)
    kinds = {(c["kind"], c["dtype"]) for c in summary["curves"]}
    assert ("gemm", "fp32") in kinds and ("memory", "any") in kinds
    assert all(c["rows"] > 0 and c["median_efficiency"] > 0 and not math.isnan(c["median_abs_error"])
               for c in summary["curves"])


def test_cli_prints_the_summary_table_and_json(quick_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    from hetsim.cli import app

    seen: list[tuple[Path, bool]] = []

    def fake_run(out: Path, quick: bool, seed: int) -> tuple[Path, Path]:
        seen.append((out, quick))
        return quick_run

    monkeypatch.setattr(cpu, "run_cpu_bench", fake_run)
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "calibration of host-" in result.output and "median efficiency" in result.output
    assert seen == [(tmp_path, True)]
    result = runner.invoke(app, ["bench", "--quick", "--out", str(tmp_path), "--json"])
    assert json.loads(result.output)["device"].startswith("host-")


def test_rotating_views_span_more_than_the_cache() -> None:
    pool = torch.zeros(1 << 20)  # 4 MiB
    views = cpu.rotating_views(pool, (64, 64), cold_bytes=1 << 20)
    assert len(views) == 64  # 64 x 16 KiB = 1 MiB
    assert len({v.data_ptr() for v in views}) == len(views) and all(v.shape == (64, 64) for v in views)
    assert len(cpu.rotating_views(pool, (1024, 1024), cold_bytes=1 << 30)) == 1


@pytest.mark.parametrize(("device", "message"), [("tpu", r"device: expected one of cpu, cuda, got 'tpu'")])
def test_unknown_bench_device_is_an_error(device: str, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        bench(device)


def test_cuda_bench_needs_a_profile_or_says_it_is_missing() -> None:
    with pytest.raises(CalibrationError, match=r"no CUDA|--profile NAME"):
        bench("cuda", quick=True)
