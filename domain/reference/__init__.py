"""The district's reference data, shipped as TOML in this package and checked when loaded."""

from domain.reference.loader import ReferenceData, load_reference
from domain.reference.model import (
    Community,
    CooperationMode,
    Department,
    DutyItem,
    Liaison,
    Section,
    Street,
    StreetRole,
)

__all__ = [
    "Community",
    "CooperationMode",
    "Department",
    "DutyItem",
    "Liaison",
    "ReferenceData",
    "Section",
    "Street",
    "StreetRole",
    "load_reference",
]
