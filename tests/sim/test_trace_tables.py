"""The step graph of a trace: parents must come before their children, so a cycle (which
would never run and silently vanish from the counts) is refused in one line."""

import pytest

from hetsim.errors import ScenarioError
from hetsim.sim.trace_tables import build_tables
from hetsim.workload.frame import steps_to_frame
from hetsim.workload.trace import NodeType, TraceStep


def _step(step_id: int, parents: tuple[int, ...]) -> TraceStep:
    return TraceStep(session_id="s", step_id=step_id, arrival_s=0.0, node="n", node_type=NodeType.TOOL, parents=parents,
                     model=None, input_tokens=0, output_tokens=0, reasoning_tokens=0, cached_prefix_tokens=None,
                     prefix_hash_ids=(), duration_s=1.0, units=None, branch=None)  # fmt: skip


def test_a_chain_links_each_step_to_its_child():
    tables = build_tables(steps_to_frame([_step(1, ()), _step(2, (1,)), _step(3, (2,))]), None)
    assert tables.roots == [0]


@pytest.mark.parametrize("steps", [[_step(1, (2,)), _step(2, (1,))], [_step(1, ()), _step(2, (2,))]])
def test_a_cycle_or_a_self_parent_is_refused(steps):
    with pytest.raises(ScenarioError, match=r"session 's' step \d lists parent \d, which does not come before it"):
        build_tables(steps_to_frame(steps), None)
