"""Display names of the reference data (departments, streets, communities) in the session's
language, read from the gateway once per cache period: every page labels codes the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dashboard import ui
from dashboard.i18n import lang


@dataclass(frozen=True)
class Names:
    """Display names of departments, streets and communities in the session's language."""

    departments: Mapping[str, str]
    streets: Mapping[str, str]
    communities: Mapping[str, str]

    def department(self, code: str) -> str:
        return self.departments.get(code, code)

    def street(self, code: str) -> str:
        return self.streets.get(code, code)

    def community(self, code: str) -> str:
        return self.communities.get(code, code)


def names() -> Names:
    """The reference data's names (cached reads; a few dozen rows): short Chinese or English names."""
    english = lang() == "en"
    departments = {
        d["code"]: (d.get("name_en") or d["short_name"]) if english else d["short_name"]
        for d in ui.get("/api/v1/reference/departments")
    }
    streets = {
        s["code"]: (s.get("name_en") or s["name"]) if english else s["name"]
        for s in ui.get("/api/v1/reference/streets")
    }
    # Communities have Chinese names only: English readers get the name with its code.
    communities = {
        c["code"]: f"{c['name']} ({c['code']})" if english else c["name"]
        for c in ui.get("/api/v1/reference/communities")
    }
    return Names(departments, streets, communities)
