"""Open311 services from the duty list: each item in force is one service a request can name.

An item of the duty list (职责清单) is exactly what a citizen's problem is "about" in this system: it
names the lead department a whistle goes to and the deadlines. Its code is the service code, so a
request that names one arrives with the item already suggested (`suggested_item`). Every service has
metadata: the definition asks for the street (required, it owns the case) and the community.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.reference import DutyItem, ReferenceData, Section
from gateway.open311.schemas import Attribute, AttributeValue, Service, ServiceDefinition

#: The section names of the Beijing street duty list, as its readers know them.
SECTION_NAMES = {
    Section.PARTY_BUILDING: "党群工作",
    Section.PUBLIC_SAFETY: "平安建设",
    Section.URBAN_MANAGEMENT: "城市管理",
    Section.COMMUNITY_BUILDING: "社区建设",
    Section.LIVELIHOOD: "民生保障",
    Section.GENERAL_SUPPORT: "综合保障",
}

STREET_ATTRIBUTE = "street"
COMMUNITY_ATTRIBUTE = "community"


def service(item: DutyItem, reference: ReferenceData) -> Service:
    lead = reference.departments.get(item.lead_department)
    lead_name = lead.name if lead else item.lead_department
    short = lead.short_name if lead else item.lead_department
    return Service(
        service_code=item.code,
        service_name=item.name,
        description=f"{item.name}（牵头部门：{lead_name}；处置时限 {item.handling_limit_working_days} 个工作日）",
        metadata=True,
        type="realtime",  # a POST becomes a case at once; its id is the service_request_id
        keywords=", ".join([item.section.value, short]),
        group=SECTION_NAMES[item.section],
    )


def service_list(items: Iterable[DutyItem], reference: ReferenceData) -> list[Service]:
    return [service(item, reference) for item in sorted(items, key=lambda i: i.code)]


def service_definition(item: DutyItem, reference: ReferenceData) -> ServiceDefinition:
    """The attributes a request for `item` carries: where the problem is, in the district's units."""
    streets = [AttributeValue(key=s.code, name=s.name) for s in reference.streets.values()]
    communities = [
        AttributeValue(key=c.code, name=f"{reference.streets[c.street].name} {c.name}")
        for c in reference.communities.values()
    ]
    return ServiceDefinition(
        service_code=item.code,
        attributes=[
            Attribute(
                variable=True,
                code=STREET_ATTRIBUTE,
                datatype="singlevaluelist",
                required=True,
                datatype_description=None,
                order=1,
                description="问题所在街乡 / the street or township where the problem is",
                values=streets,
            ),
            Attribute(
                variable=True,
                code=COMMUNITY_ATTRIBUTE,
                datatype="singlevaluelist",
                required=False,
                datatype_description="须属于所选街乡 / must lie in the chosen street",
                order=2,
                description="问题所在社区（可选）/ the community, if known",
                values=communities,
            ),
        ],
    )


def find_item(items: Iterable[DutyItem], code: str) -> DutyItem | None:
    return next((item for item in items if item.code == code), None)
