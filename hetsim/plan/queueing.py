"""Queueing approximations the planner uses for latency under load (verified by simulation)."""

from __future__ import annotations

import math


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability an arrival waits in M/M/c with ``offered_load`` = lambda / mu (< servers)."""
    if offered_load <= 0:
        return 0.0
    if offered_load >= servers:
        return 1.0
    # Iterative Erlang B, then C: numerically stable for hundreds of servers.
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    rho = offered_load / servers
    return blocking / (1 - rho + rho * blocking)


def mmc_wait_s(servers: int, service_s: float, utilization: float) -> float:
    """Mean queueing delay of M/M/c at ``utilization`` (per server) with mean service ``service_s``."""
    if utilization <= 0:
        return 0.0
    if utilization >= 1:
        return math.inf
    load = utilization * servers
    return erlang_c(servers, load) * service_s / (servers * (1 - utilization))


def md1_wait_s(service_s: float, utilization: float) -> float:
    """Mean queueing delay of M/D/1 (Pollaczek-Khinchine) at ``utilization``."""
    if utilization >= 1:
        return math.inf
    return utilization * service_s / (2 * (1 - utilization))


def mmc_wait_quantile_s(servers: int, service_s: float, utilization: float, percentile: float) -> float:
    """The ``percentile``-th percentile of M/M/c queueing delay: P(W > t) = C e^{-c mu (1 - rho) t}
    (C the Erlang-C probability of waiting), so t = ln(C / (1 - p)) service / (c (1 - rho)),
    and 0 when fewer than 1 - p of arrivals wait at all."""
    if utilization <= 0:
        return 0.0
    if utilization >= 1:
        return math.inf
    waits = erlang_c(servers, utilization * servers)
    tail = 1.0 - percentile / 100.0
    if tail <= 0.0:
        return math.inf
    if waits <= tail:
        return 0.0
    return math.log(waits / tail) * service_s / (servers * (1.0 - utilization))
