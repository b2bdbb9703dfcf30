"""Host detection and the timing strategy of ``hetsim bench`` (pure parts: no torch, no clock tricks)."""

from __future__ import annotations

import pytest

from hetsim.bench.host import HostInfo, host_profile, host_profile_name, isa_class, model_slug, parse_cpuinfo
from hetsim.bench.timing import OpTiming, QuietWaiter, TimingPolicy, time_round
from hetsim.specs.hardware import AcceleratorSpec, DeviceKind, DType

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
cpu MHz\t\t: 2000.000
flags\t\t: fpu avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_fp16 hypervisor

processor\t: 1
model name\t: should not be read
"""


def _host(flags: str = "avx2 fma avx512f avx512_bf16 amx_bf16 amx_int8 avx512_fp16 hypervisor") -> HostInfo:
    return HostInfo(model_name="Intel(R) Xeon(R) Processor", vendor="intel", flags=frozenset(flags.split()),
                    usable_cpus=2, clock_ghz=2.0, memory_bytes=24 * 2**30, l3_bytes=105 * 2**20, is_virtual=True,
                    hostname="vm")


def test_cpuinfo_first_block_is_parsed() -> None:
    fields = parse_cpuinfo(CPUINFO)
    assert fields["model name"] == "Intel(R) Xeon(R) Processor"
    assert "amx_bf16" in fields["flags"].split()


@pytest.mark.parametrize(
    ("flags", "vendor", "tag", "fp32", "bf16"),
    [
        ("avx512f amx_bf16 amx_int8", "intel", "spr", 64, 1024),
        ("avx512f amx_bf16 amx_fp16", "intel", "gnr", 64, 1024),
        ("avx512f avx512_bf16", "intel", "avx512", 64, 128),
        ("avx512f avx512_bf16", "amd", "avx512", 32, 64),
        ("avx2 fma", "amd", "avx2", 32, None),
        ("sse2", "intel", "sse", 8, None),
    ],
)
def test_isa_class_gives_flop_per_cycle(flags: str, vendor: str, tag: str, fp32: int, bf16: int | None) -> None:
    isa = isa_class(frozenset(flags.split()), vendor)
    assert (isa.tag, isa.flop_per_cycle["fp32"], isa.flop_per_cycle.get("bf16")) == (tag, fp32, bf16)


@pytest.mark.parametrize(
    ("model", "slug"),
    [("Intel(R) Xeon(R) Processor", "xeon"), ("AMD EPYC 7B13 64-Core Processor", "epyc-7b13"),
     ("Intel(R) Xeon(R) Platinum 8480+ @ 2.00GHz", "xeon-platinum-8480")],
)
def test_model_slug(model: str, slug: str) -> None:
    assert model_slug(model) == slug


def test_host_profile_is_a_valid_cpu_profile_with_derived_peaks() -> None:
    info = _host()
    assert host_profile_name(info) == "host-xeon-spr-2vcpu"
    device = AcceleratorSpec.model_validate(host_profile(info, 25e9, "best of 18 memory-stream rows", "2026-11-22"))
    assert device.kind is DeviceKind.CPU and device.cpu is not None and device.cpu.cores == 2
    assert device.peak_flops(DType.FP32) == pytest.approx(2 * 2.0e9 * 64)
    assert device.peak_flops(DType.BF16) == pytest.approx(2 * 2.0e9 * 1024)
    assert device.memory_bandwidth_bytes_per_s == pytest.approx(25e9)
    assert device.memory.bandwidth.source.startswith("measured:")
    assert device.compute.fp32 is not None and device.compute.fp32.source.startswith("derived:")
    assert device.power.idle is not None and device.power.idle.si == pytest.approx(0.25 * device.power.tdp.si)
    assert "MEASURED HOST PROFILE" in device.notes and "sandbox VM" in device.notes


def _fake_op(durations: list[float], clock: list[float]):
    """An op that advances a fake clock by the next duration on each call."""

    def call(index: int) -> None:
        clock[0] += durations[index % len(durations)]

    return call


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    clock = [0.0]
    monkeypatch.setattr("hetsim.bench.timing.time.perf_counter_ns", lambda: int(clock[0] * 1e9))
    monkeypatch.setattr("hetsim.bench.timing.scheduler_wait_ns", lambda: 0)
    return clock


def test_round_runs_until_block_time_and_reports_min_of_round_medians(fake_clock: list[float]) -> None:
    policy = TimingPolicy(block_s=0.01, max_repeats=100)
    timing = OpTiming()
    call = _fake_op([0.002], fake_clock)
    assert time_round(call, timing, policy)
    assert len(timing.rounds[0]) == 5  # 5 x 2 ms reach the 10 ms block
    slower = _fake_op([0.003], fake_clock)
    time_round(slower, timing, policy)
    assert timing.seconds == pytest.approx(0.002) and timing.spread == pytest.approx(0.5)
    assert not timing.is_confirmed(policy)  # the two best rounds differ by 50%


def test_long_ops_are_confirmed_by_one_clean_round(fake_clock: list[float]) -> None:
    policy = TimingPolicy(long_op_s=0.25)
    timing = OpTiming()
    time_round(_fake_op([0.5], fake_clock), timing, policy)
    assert len(timing.rounds[0]) == 1 and timing.is_confirmed(policy)


def test_unclean_rounds_do_not_count_while_a_clean_one_exists(monkeypatch: pytest.MonkeyPatch,
                                                             fake_clock: list[float]) -> None:
    policy = TimingPolicy(block_s=0.0)
    timing = OpTiming()
    waits = iter([0, 10**9, 10**9, 10**9])  # the first round waited 1 s for a CPU
    monkeypatch.setattr("hetsim.bench.timing.scheduler_wait_ns", lambda: next(waits))
    assert not time_round(_fake_op([0.001], fake_clock), timing, policy)
    assert time_round(_fake_op([0.004], fake_clock), timing, policy)
    assert timing.clean_rounds == 1 and timing.seconds == pytest.approx(0.004)


def test_quiet_waiter_backs_off_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("hetsim.bench.timing.time.sleep", slept.append)
    waiter = QuietWaiter(budget_s=0.5)
    for _ in range(4):
        waiter.after_round(False)
    waiter.after_round(True)
    assert slept == pytest.approx([0.1, 0.2, 0.2])  # the third pause is cut to the budget, the fourth skipped
    assert waiter.waited_s == pytest.approx(0.5)
