"""Routing policies read the pool's RouterState: loads kept by the replicas, first-block holders
kept by their prefix caches."""

from __future__ import annotations

import pytest

from hetsim.errors import ScenarioError
from hetsim.sim.engine import WorkQueue
from hetsim.sim.policies import OFFLINE_LOAD, RouterState, least_outstanding, policy, prefix_aware, round_robin
from hetsim.sim.prefix_cache import PrefixCache


class CachedReplica:
    """A replica as a policy sees it: a slot in the router's state and a prefix cache there,
    sharing the router's holders."""

    def __init__(self, router: RouterState) -> None:
        self.slot = router.register()
        self.cache = router.caches[self.slot] = PrefixCache(100, router.holders, 1 << self.slot)


def test_least_outstanding_reads_the_loads_the_replicas_keep_and_breaks_ties_low():
    router = RouterState()
    queues = [WorkQueue(1, router) for _ in range(3)]
    assert least_outstanding(queues, (), router) == 0
    queues[0].add_outstanding(2)
    queues[1].add_outstanding(1)
    assert [queue.outstanding for queue in queues] == router.loads == [2, 1, 0]
    assert least_outstanding(queues, (), router) == 2
    queues[2].add_outstanding(1)
    assert least_outstanding(queues, (), router) == 1


def test_prefix_aware_prefers_the_holder_of_the_prompt_until_it_is_much_busier():
    router = RouterState()
    replicas = [CachedReplica(router) for _ in range(3)]
    replicas[2].cache.remember((10, 11, 12, 13))
    prompt = (10, 11, 12, 13, 14)
    assert router.holders == {10: 0b100}
    assert prefix_aware(replicas, prompt, router) == 2  # 4 of 5 blocks cached: worth 3.2 requests
    router.loads[2] = 3
    assert prefix_aware(replicas, prompt, router) == 2
    router.loads[2] = 4
    assert prefix_aware(replicas, prompt, router) == 0  # the hit no longer pays for the queue
    assert prefix_aware(replicas, (99,), router) == 0  # nobody holds it: least loaded


def test_round_robin_cycles_and_unknown_names_list_the_choices():
    router = RouterState()
    for _ in range(3):
        router.register()
    assert [round_robin([object()] * 3, (), router) for _ in range(4)] == [0, 1, 2, 0]
    router.loads[1] += OFFLINE_LOAD  # a replica that is not serving (autoscaled) is passed over
    assert [round_robin([object()] * 3, (), router) for _ in range(3)] == [2, 0, 2]
    with pytest.raises(ScenarioError, match="round-robin, least-outstanding, prefix-aware"):
        policy("random")
