"""A resolved hardware catalog: every accelerator, link and node of one profile set, by name."""

from __future__ import annotations

from dataclasses import dataclass, field

from hetsim.errors import ProfileError
from hetsim.specs.hardware import AcceleratorSpec, LinkSpec, NodeSpec
from hetsim.specs.model import ModelSpec


def _lookup(kind: str, table: dict[str, object], name: str, aliases: dict[str, str]) -> object:
    key = aliases.get(name.lower(), name.lower())
    if key not in table:
        choices = ", ".join(sorted(table))
        raise ProfileError(f"unknown {kind} {name!r}; expected one of: {choices}")
    return table[key]


@dataclass(frozen=True)
class HardwareCatalog:
    """Accelerators, links and nodes of one profile set, cross-checked by name."""

    profile_set: str
    accelerators: dict[str, AcceleratorSpec]
    links: dict[str, LinkSpec] = field(default_factory=dict)
    nodes: dict[str, NodeSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_references()

    @property
    def _aliases(self) -> dict[str, str]:
        return {alias.lower(): spec.name for spec in self.accelerators.values() for alias in spec.aliases}

    def accelerator(self, name: str) -> AcceleratorSpec:
        """The device called ``name`` (or one of its aliases); unknown names list the choices."""
        return _lookup("device", self.accelerators, name, self._aliases)  # type: ignore[return-value]

    def link(self, name: str) -> LinkSpec:
        return _lookup("link", self.links, name, {})  # type: ignore[return-value]

    def node(self, name: str) -> NodeSpec:
        return _lookup("node", self.nodes, name, {})  # type: ignore[return-value]

    def _check_references(self) -> None:
        for device in self.accelerators.values():
            for fabric in (device.scale_up, device.scale_out):
                if fabric is not None and self.links and fabric.link not in self.links:
                    raise ProfileError(
                        f"device {device.name!r}: link {fabric.link!r} is not a known link "
                        f"(expected one of: {', '.join(sorted(self.links))})"
                    )
        for node in self.nodes.values():
            self._check_node(node)

    def _check_node(self, node: NodeSpec) -> None:
        for part in (node.accelerators, node.host_cpus):
            if part is not None and part.device not in self.accelerators:
                raise ProfileError(f"node {node.name!r}: unknown device {part.device!r}")
        if node.host_cpus.device in self.accelerators and self.accelerators[node.host_cpus.device].cpu is None:
            raise ProfileError(f"node {node.name!r}: host_cpus device {node.host_cpus.device!r} is not a CPU")
        for link in (node.scale_up_link, node.nics.link if node.nics else None):
            if link is not None and link not in self.links:
                raise ProfileError(f"node {node.name!r}: unknown link {link!r}")


@dataclass(frozen=True)
class ModelCatalog:
    """Every model of the catalog, by name (aliases resolve too)."""

    models: dict[str, ModelSpec]

    def model(self, name: str) -> ModelSpec:
        aliases = {alias.lower(): spec.name for spec in self.models.values() for alias in spec.aliases}
        return _lookup("model", self.models, name, aliases)  # type: ignore[return-value]

    @property
    def names(self) -> frozenset[str]:
        """Names and aliases, for validating workload specs without file access."""
        return frozenset(self.models) | {alias for spec in self.models.values() for alias in spec.aliases}
