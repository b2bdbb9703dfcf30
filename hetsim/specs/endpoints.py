"""Endpoints of serving engines that someone else runs (``hetsim run --backend openai``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from hetsim.specs.common import FrozenModel


class EndpointPool(FrozenModel):
    """The OpenAI-compatible base URLs of one plan pool's replicas (one URL a replica)."""

    urls: tuple[str, ...] = Field(min_length=1)
    served_model: str | None = Field(default=None, description="the name the engines serve; default: the plan's model name")
    vocab_size: int | None = Field(default=None, ge=16, description="prompt ids are drawn below it; default: the catalog's")

    @field_validator("urls")
    @classmethod
    def _http(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"expected http:// or https:// URLs, got {url!r}")
        return tuple(u.rstrip("/") for u in urls)


class EndpointsSpec(FrozenModel):
    schema_version: int = Field(ge=1, le=1)
    pools: dict[str, EndpointPool] = Field(min_length=1)
