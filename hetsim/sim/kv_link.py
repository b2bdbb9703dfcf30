"""The links KV caches cross from prefill replicas to decode replicas, shared by transfers.

Each prefill replica sends over its own link (its NIC ports or fabric links together: the
plan's ``links_per_replica`` times the link's bandwidth). Transfers that overlap share it as
a FIFO queue: a transfer holds the whole bandwidth for ``bytes / bandwidth`` once those ahead
of it have gone, then arrives a propagation latency later (latency does not hold the link).

Why FIFO and not processor sharing: an RDMA NIC works through its send queue in order, and a
FIFO moves the same bytes in the same time as sharing would (the link is busy exactly as long);
it only lets the first transfer finish first instead of all finishing late together, which is
what the decode pool, waiting for whole caches, sees from a real queue. It is also O(1) per
transfer with one timer, where sharing reschedules every transfer in flight on each change.
"""

from __future__ import annotations


class KvLinks:
    """The egress links of one prefill pool: one FIFO queue per prefill replica."""

    __slots__ = ("bandwidth_bytes_per_s", "busy_s", "bytes", "free_at_s", "kv_bytes_per_token", "latency_s", "transfers", "wait_s")

    def __init__(self, replicas: int, bandwidth_bytes_per_s: float, latency_s: float, kv_bytes_per_token: float) -> None:
        self.bandwidth_bytes_per_s, self.latency_s = bandwidth_bytes_per_s, latency_s
        self.kv_bytes_per_token = kv_bytes_per_token
        self.free_at_s = [0.0] * replicas  # when each link has sent everything queued on it
        self.busy_s = [0.0] * replicas
        self.bytes = [0.0] * replicas
        self.transfers = [0] * replicas
        self.wait_s = [0.0] * replicas

    def send(self, replica: int, tokens: int, now: float) -> tuple[float, float]:
        """Queue the KV cache of ``tokens`` on ``replica``'s link at ``now``; returns (seconds
        until it has arrived at the decode pool, seconds of that spent waiting for the link)."""
        size = tokens * self.kv_bytes_per_token
        sending = size / self.bandwidth_bytes_per_s
        free = self.free_at_s[replica]
        wait = free - now if free > now else 0.0
        self.free_at_s[replica] = now + wait + sending
        self.busy_s[replica] += sending
        self.bytes[replica] += size
        self.transfers[replica] += 1
        self.wait_s[replica] += wait
        return wait + (self.latency_s + sending), wait
