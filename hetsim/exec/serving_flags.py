"""How a pool serves beyond tensor and pipeline parallelism, as each engine's own arguments:
expert parallelism with data-parallel attention, the expert balancer, and speculative decoding.

vLLM (``vllm serve``; flags of vLLM 0.10 and later): ``--data-parallel-size`` attention groups
with ``--enable-expert-parallel`` (experts split over tp x dp devices), ``--enable-eplb`` with
``--eplb-config '{"num_redundant_experts": N}'``, ``--enable-dbo`` (dual-batch overlap), ``--speculative-config`` as JSON (methods
``eagle``, ``mtp``, ``ngram``, ``draft_model``; docs.vllm.ai features/speculative_decoding).
SGLang (``python -m sglang.launch_server``): ``--tp-size`` over all of a stage's devices with
``--dp-size`` and ``--enable-dp-attention``, ``--ep-size``, ``--enable-eplb`` with
``--ep-num-redundant-experts``, ``--speculative-algorithm`` (EAGLE, NGRAM, STANDALONE for a draft
model; an MTP module runs as EAGLE from the model's own NextN weights) with
``--speculative-num-steps``, ``--speculative-eagle-topk 1`` (a chain, as hetsim prices it) and
``--speculative-num-draft-tokens`` (docs.sglang.ai advanced_features/speculative_decoding).

An EAGLE head is a checkpoint of its own that the catalog does not know: name it in the
``--weights`` file as ``<model>:eagle``.
"""

from __future__ import annotations

import json

from hetsim.errors import ExecutorError
from hetsim.exec.engine import EngineArgs, sglang_lora_arguments
from hetsim.specs.plan import PoolSpec, SpeculationSpec

HeadSources = dict[str, str]  # '<model>:eagle' or a draft model's name -> where its weights are


def head_key(model: str) -> str:
    """The ``--weights`` key naming ``model``'s EAGLE head."""
    return f"{model}:eagle"


def _proposer_source(pool: PoolSpec, spec: SpeculationSpec, sources: HeadSources) -> str | None:
    """Where the proposer's weights are (None: none needed, n-gram lookup or the model's own MTP)."""
    assert pool.llm is not None
    if spec.method in ("ngram", "mtp"):
        return None
    key = head_key(pool.llm.model) if spec.method == "eagle" else spec.draft_model
    assert key is not None
    if key not in sources:
        raise ExecutorError(f"plan pool {pool.name!r}: llm.speculation: the {spec.method} proposer's weights are not named; "
                            f"add '{key}: <hub id or path>' to the --weights file")  # fmt: skip
    return sources[key]


def vllm_serving_args(pool: PoolSpec, sources: HeadSources) -> EngineArgs:
    """vLLM's arguments for the pool's expert parallelism and speculation (empty without)."""
    llm = pool.llm
    if llm is None:
        return {}
    args: EngineArgs = {}
    if pool.dp_attention > 1:
        args["data_parallel_size"] = pool.dp_attention
    if pool.ep > 1:
        args["enable_expert_parallel"] = True
        if llm.expert_balancing:
            args["enable_eplb"] = True
            args["eplb_config"] = json.dumps({"num_redundant_experts": llm.redundant_experts})
        if llm.overlap.value == "two-batch":
            args["enable_dbo"] = True  # vLLM's dual-batch overlap
    spec = llm.speculation
    if spec is not None:
        config: dict[str, object] = {"method": "draft_model" if spec.method == "draft" else spec.method,
                                     "num_speculative_tokens": spec.proposed}  # fmt: skip
        source = _proposer_source(pool, spec, sources)
        if source is not None:
            config["model"] = source
        if spec.method == "ngram":
            config["prompt_lookup_max"] = 4  # vLLM's documented example; hetsim prices the lookup as free host work
        args["speculative_config"] = json.dumps(config)
    return args


_SGLANG_ALGORITHM = {"eagle": "EAGLE", "mtp": "EAGLE", "ngram": "NGRAM", "draft": "STANDALONE"}


def sglang_argv(pool: PoolSpec, model_source: str, sources: HeadSources) -> list[str]:
    """``python3 -m sglang.launch_server`` with the pool's serving as SGLang's flags."""
    llm = pool.llm
    if llm is None:
        raise ExecutorError(f"pool {pool.name!r}: not an LLM pool; it has no engine")
    stage_devices = pool.tp * pool.dp_attention
    argv = ["python3", "-m", "sglang.launch_server", "--model-path", model_source, "--served-model-name", llm.model,
            "--tp-size", str(stage_devices), "--max-running-requests", str(llm.max_num_seqs),
            "--chunked-prefill-size", str(llm.max_batch_tokens), "--mem-fraction-static", f"{llm.memory_utilization:g}"]  # fmt: skip
    if pool.pp > 1:
        argv += ["--pp-size", str(pool.pp)]
    if pool.dp_attention > 1:
        argv += ["--dp-size", str(pool.dp_attention), "--enable-dp-attention"]
    if pool.ep > 1:
        argv += ["--ep-size", str(pool.ep)]
        if llm.expert_balancing:
            argv += ["--enable-eplb", "--ep-num-redundant-experts", str(llm.redundant_experts)]
    if llm.overlap.value == "two-batch":
        argv += ["--enable-two-batch-overlap"]
    if not llm.prefix_caching:
        argv += ["--disable-radix-cache"]
    if llm.stage.value != "aggregated":
        argv += ["--disaggregation-mode", llm.stage.value]
    if llm.lora is not None:  # adapters named at run time (SGLang's /load_lora_adapter): none at start
        argv += sglang_lora_arguments(pool, [])
    spec = llm.speculation
    if spec is not None:
        argv += ["--speculative-algorithm", _SGLANG_ALGORITHM[spec.method]]
        source = _proposer_source(pool, spec, sources)
        if source is not None:
            argv += ["--speculative-draft-model-path", source]
        if spec.method == "ngram":
            argv += ["--speculative-num-draft-tokens", str(spec.proposed)]
        else:
            argv += ["--speculative-num-steps", str(spec.proposed), "--speculative-eagle-topk", "1",
                     "--speculative-num-draft-tokens", str(spec.proposed + 1)]  # fmt: skip
    return argv
