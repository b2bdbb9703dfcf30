"""Non-LLM stages executed for real (``hetsim run``): a catalog model's network as a torch
module with random weights, run on the step's input size.

An encoder (``torch.nn.TransformerEncoder``) reads ``units x inputs_per_unit`` positions in
windows of ``max_inputs``; a speech recogniser then decodes ``units x outputs_per_unit`` text
tokens one at a time with a ``TransformerDecoder`` over the encoder's output (no KV cache: each
token recomputes its prefix, as a simple greedy decoder does). Inputs are random embeddings:
the front ends (audio convolutions, token embeddings) are left out, so the time measured is
that of the transformer stacks. This module owns torch, like the rest of ``hetsim.bench``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from hetsim.specs.model import NetworkSpec


@dataclass
class StageNetwork:
    """One model's modules, built once per replica."""

    spec: NetworkSpec
    encoder: torch.nn.Module
    decoder: torch.nn.Module | None

    @classmethod
    def build(cls, spec: NetworkSpec, seed: int = 0) -> StageNetwork:
        torch.manual_seed(seed)
        layer = torch.nn.TransformerEncoderLayer(spec.hidden_size, spec.heads, spec.intermediate_size, batch_first=True, dropout=0.0)
        encoder = torch.nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False).eval()
        decoder = None
        if spec.decoder_layers and spec.outputs_per_unit:
            block = torch.nn.TransformerDecoderLayer(spec.hidden_size, spec.heads, spec.intermediate_size, batch_first=True, dropout=0.0)
            decoder = torch.nn.TransformerDecoder(block, spec.decoder_layers).eval()
        return cls(spec, encoder, decoder)

    @torch.inference_mode()
    def run(self, units: float) -> dict[str, float]:
        """Serve one step of ``units`` (audio seconds, tokens, ...); what it did and how long it took."""
        started = time.perf_counter()
        spec = self.spec
        positions = max(1, math.ceil(units * spec.inputs_per_unit))
        memory = None
        done = 0
        while done < positions:
            window = min(spec.max_inputs, positions - done)
            memory = self.encoder(torch.randn(1, window, spec.hidden_size))
            done += window
        outputs = 0
        if self.decoder is not None and memory is not None:
            outputs = max(1, math.ceil(units * spec.outputs_per_unit))
            tokens = torch.randn(1, 1, spec.hidden_size)
            for _ in range(outputs):
                step = self.decoder(tokens, memory)
                tokens = torch.cat([tokens, step[:, -1:, :]], dim=1)
        return {"positions": float(positions), "outputs": float(outputs), "seconds": time.perf_counter() - started}


class StageWorker:
    """A replica of a non-LLM pool: the networks of the models it serves, run on request.

    Used as a Ray actor (threaded: ``concurrency`` requests at once); torch runs one thread per
    request, so a replica's concurrency is its cores."""

    def __init__(self, networks: dict[str, NetworkSpec], seed: int = 0) -> None:
        torch.set_num_threads(1)
        self.networks = {name: StageNetwork.build(spec, seed) for name, spec in networks.items()}

    def run(self, model: str, units: float) -> dict[str, float]:
        return self.networks[model].run(units)

    def ready(self) -> list[str]:
        return sorted(self.networks)
