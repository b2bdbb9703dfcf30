"""Streamed completion calls to an OpenAI-compatible engine, timed token by token.

The prompt goes as token ids (no tokenizer is needed on either side), with ``ignore_eos`` so
the engine produces exactly the output length the trace asks for. vLLM returns the generated
ids of each streamed chunk (``return_token_ids``; the first chunk can carry two); an engine
that does not is counted one token per non-empty chunk, and the usage block gives the totals.
Token arrival times are read on this side, as serving benchmarks measure them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0
"""Longest silence allowed within a stream (a long prefill on a slow device, a deep queue)."""


class EngineUnavailable(Exception):
    """The replica cannot be reached or dropped the stream: retry elsewhere."""


class EngineRejected(Exception):
    """The engine refused the request (HTTP 4xx/5xx with a body): retrying will not help."""


@dataclass
class StreamResult:
    """One completed call: when it was sent, when each token arrived, what the engine counted."""

    sent_s: float
    token_times_s: list[float] = field(default_factory=list)
    prompt_tokens: int = -1
    completion_tokens: int = -1
    cached_tokens: int = -1
    finish_reason: str | None = None


def request_body(model: str, prompt: list[int], max_tokens: int, seed: int) -> dict:
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "min_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
        "seed": seed,
        "stream": True,
        "return_token_ids": True,
        "stream_options": {"include_usage": True},
    }


async def stream_completion(
    client: httpx.AsyncClient,
    url: str,
    body: dict,
    clock: Callable[[], float],
) -> StreamResult:
    """POST ``body`` to ``url``/v1/completions and read the stream to its end.

    Raises:
        EngineUnavailable: no connection, or the stream broke off (the engine died).
        EngineRejected: the engine answered with an error status or an error event.
    """
    result = StreamResult(sent_s=clock())
    try:
        async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                raise EngineRejected(f"HTTP {response.status_code}: {_error_message(text)}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return _finished(result)
                _read_chunk(json.loads(data), clock(), result)
    except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
        raise EngineUnavailable(f"{type(exc).__name__}: {str(exc) or 'connection lost'}") from None
    raise EngineUnavailable("the stream ended without its [DONE] event")


def _read_chunk(chunk: dict, now: float, result: StreamResult) -> None:
    if "error" in chunk:
        raise EngineRejected(_error_message(json.dumps(chunk)))
    for choice in chunk.get("choices") or []:
        ids = choice.get("token_ids")
        count = len(ids) if ids is not None else (1 if choice.get("text") else 0)
        result.token_times_s.extend([now] * count)
        if choice.get("finish_reason"):
            result.finish_reason = choice["finish_reason"]
    usage = chunk.get("usage")
    if usage:
        result.prompt_tokens = int(usage.get("prompt_tokens", -1))
        result.completion_tokens = int(usage.get("completion_tokens", -1))
        details = usage.get("prompt_tokens_details") or {}
        if details.get("cached_tokens") is not None:
            result.cached_tokens = int(details["cached_tokens"])


def _finished(result: StreamResult) -> StreamResult:
    if result.completion_tokens > len(result.token_times_s) and result.token_times_s:
        # an engine that streams text only may pack several tokens in a chunk: the usage total
        # is the truth, and the missing tokens are given the arrival of the chunk that held them
        result.token_times_s.extend([result.token_times_s[-1]] * (result.completion_tokens - len(result.token_times_s)))
    return result


def _error_message(text: str) -> str:
    try:
        payload = json.loads(text)
    except ValueError:
        return text.strip().splitlines()[0][:300] if text.strip() else "(empty body)"
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    message = error.get("message", error) if isinstance(error, dict) else error
    return str(message).strip().splitlines()[0][:300]


def make_client(max_connections: int = 1024) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    timeout = httpx.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S, write=30.0, pool=None)
    return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)


def monotonic_clock(origin: float) -> Callable[[], float]:
    """Seconds since ``origin`` (a ``time.perf_counter`` reading)."""
    return lambda: time.perf_counter() - origin
