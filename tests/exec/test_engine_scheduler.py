"""A plan's iteration scheduler on a real engine: vLLM V1 chunks prefills and serves running
requests first, so decode-priority runs as V1 with its token budget; prefill-first and
schedulers of your own are simulated only, and a run says so instead of ignoring them."""

from __future__ import annotations

import pytest

from hetsim.errors import ExecutorError
from hetsim.exec.engine import vllm_arguments
from hetsim.specs.plan import PoolSpec


def _pool(**llm) -> PoolSpec:
    return PoolSpec.model_validate(
        {"name": "chat", "device": "h100-sxm", "replicas": 1, "llm": {"model": "llama-3-8b", **llm}}
    )


def _budget(**llm) -> int:
    return int(vllm_arguments(_pool(**llm), "/models/llama", False, "gpu", None)["max_num_batched_tokens"])


def test_decode_priority_runs_as_vllm_with_its_token_budget():
    assert _budget() == 8192
    assert _budget(scheduler="decode-priority") == 512
    assert _budget(scheduler="decode-priority", token_budget=1024) == 1024
    assert _budget(scheduler="decode-priority", token_budget=20000) == 8192  # never past max_batch_tokens


@pytest.mark.parametrize("scheduler", ["prefill-first", "mine.module:Scheduler"])
def test_a_scheduler_vllm_v1_lacks_is_refused_for_a_run(scheduler):
    with pytest.raises(
        ExecutorError,
        match=rf"pool 'chat': llm.scheduler: expected chunked-prefill or decode-priority .*got '{scheduler}'",
    ):
        _budget(scheduler=scheduler)
