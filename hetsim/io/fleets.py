"""Read fleet and comparison files, their node and link names checked against the hardware catalog."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hetsim.cost.tco import PRESETS, CostBasis
from hetsim.errors import ScenarioError
from hetsim.io.catalog import PROFILE_SETS, load_catalog
from hetsim.io.yamlfile import load_spec, one_line
from hetsim.specs.catalog import HardwareCatalog
from hetsim.specs.fleet import ComparisonSpec, FleetSpec, OwnedNodes, PlannerOptions, PurchasableNodes


def load_fleet(path: Path) -> FleetSpec:
    """A fleet file, validated; a node or link it names that the catalog lacks is refused here,
    naming the file and the field."""
    fleet = load_spec(path, FleetSpec, ScenarioError)
    check_cost_names(path, fleet.tco, fleet.cost_basis)
    catalog = catalog_of(path, fleet.profile_set)
    _check_names(path, catalog, fleet.kv_link, (("inventory", fleet.inventory), ("catalog", fleet.catalog)))
    _check_host_links(path, catalog, fleet.options)
    return fleet


def load_comparison(path: Path) -> ComparisonSpec:
    """A comparison file, validated like a fleet file for each of its candidate fleets."""
    spec = load_spec(path, ComparisonSpec, ScenarioError)
    check_cost_names(path, spec.tco, spec.cost_basis)
    catalog = catalog_of(path, spec.profile_set)
    for index, fleet in enumerate(spec.fleets):
        groups = ((f"fleets.{index}.inventory", fleet.inventory), (f"fleets.{index}.catalog", fleet.catalog))
        _check_names(path, catalog, spec.kv_link, groups)
    _check_host_links(path, catalog, spec.options)
    return spec


def catalog_of(path: Path, profile_set: str) -> HardwareCatalog:
    """The hardware catalog a file names (``profile_set``); an unknown set names the file."""
    if profile_set not in PROFILE_SETS:
        raise ScenarioError(one_line(f"{path}: field 'profile_set': expected one of {', '.join(PROFILE_SETS)}, got {profile_set!r:.80}"))
    return load_catalog(profile_set)


def check_cost_names(path: Path, tco: str | None, cost_basis: str | None) -> None:
    """A file's TCO preset (None: not set) and cost basis are ones hetsim knows."""
    if tco is not None and tco not in PRESETS:
        raise ScenarioError(one_line(f"{path}: field 'tco': expected a TCO preset ({', '.join(PRESETS)}), got {tco!r:.80}"))
    bases = [basis.value for basis in CostBasis]
    if cost_basis is not None and cost_basis not in bases:
        raise ScenarioError(one_line(f"{path}: field 'cost_basis': expected one of {', '.join(bases)}, got {cost_basis!r:.80}"))


def _check_host_links(path: Path, catalog: HardwareCatalog, options: PlannerOptions) -> None:
    """The links ``options.lora`` copies adapters over are links the catalog has."""
    for index, choice in enumerate(options.lora):
        if choice.host_link is not None and catalog.links and choice.host_link not in catalog.links:
            raise ScenarioError(one_line(f"{path}: field 'options.lora.{index}.host_link': expected a link "
                                         f"({', '.join(sorted(catalog.links))}), got {choice.host_link!r:.80}"))  # fmt: skip


def _check_names(
    path: Path, catalog: HardwareCatalog, kv_link: str, groups: Iterable[tuple[str, tuple[OwnedNodes | PurchasableNodes, ...]]]
) -> None:
    for field, entries in groups:
        for index, entry in enumerate(entries):
            if entry.node not in catalog.nodes:
                known = ", ".join(sorted(catalog.nodes)) or f"none in the {catalog.profile_set} set"
                raise ScenarioError(one_line(f"{path}: field '{field}.{index}.node': expected a node SKU ({known}), got {entry.node!r:.80}"))
    if catalog.links and kv_link not in catalog.links:
        raise ScenarioError(one_line(f"{path}: field 'kv_link': expected a link ({', '.join(sorted(catalog.links))}), got {kv_link!r:.80}"))
