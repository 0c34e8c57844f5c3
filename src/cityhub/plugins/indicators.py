"""The 20 second-level indicators of the new-type smart city evaluation system, grouped under the
five first-level task areas (Zhengzhou's interpretation of the Henan guidance). Every application's
manifest names the indicators it serves, so the evaluation system can tell what covers what."""

from __future__ import annotations

from enum import StrEnum


class TaskArea(StrEnum):
    INFRASTRUCTURE = "infrastructure"
    GOVERNANCE = "governance"
    LIVELIHOOD = "livelihood"
    ECOLOGY = "ecology"
    INDUSTRY = "industry"


class Indicator(StrEnum):
    BROADBAND_NETWORK = "broadband_network"
    IOT_SENSING = "iot_sensing"
    CITY_HUB_PLATFORM = "city_hub_platform"
    NETWORK_SECURITY = "network_security"
    SMART_TRAFFIC = "smart_traffic"
    SMART_URBAN_MANAGEMENT = "smart_urban_management"
    SMART_PUBLIC_SAFETY = "smart_public_safety"
    SMART_EMERGENCY = "smart_emergency"
    LEADERSHIP_COCKPIT = "leadership_cockpit"
    SMART_HEALTHCARE = "smart_healthcare"
    SMART_EDUCATION = "smart_education"
    SMART_FINANCE = "smart_finance"
    SMART_TOURISM = "smart_tourism"
    GOVERNMENT_SERVICES = "government_services"
    SMART_ECO_ENVIRONMENT = "smart_eco_environment"
    SMART_COMMUNITY = "smart_community"
    SMART_MANUFACTURING = "smart_manufacturing"
    SMART_INDUSTRIAL_PARKS = "smart_industrial_parks"
    SMART_AGRICULTURE = "smart_agriculture"
    SMART_LOGISTICS = "smart_logistics"

    @property
    def area(self) -> TaskArea:
        return _AREA[self]

    @property
    def title_zh(self) -> str:
        return _TITLES[self][0]

    @property
    def title_en(self) -> str:
        return _TITLES[self][1]


_I = Indicator
_AREA: dict[Indicator, TaskArea] = {
    **dict.fromkeys(
        (_I.BROADBAND_NETWORK, _I.IOT_SENSING, _I.CITY_HUB_PLATFORM, _I.NETWORK_SECURITY),
        TaskArea.INFRASTRUCTURE,
    ),
    **dict.fromkeys(
        (
            _I.SMART_TRAFFIC,
            _I.SMART_URBAN_MANAGEMENT,
            _I.SMART_PUBLIC_SAFETY,
            _I.SMART_EMERGENCY,
            _I.LEADERSHIP_COCKPIT,
        ),
        TaskArea.GOVERNANCE,
    ),
    **dict.fromkeys(
        (
            _I.SMART_HEALTHCARE,
            _I.SMART_EDUCATION,
            _I.SMART_FINANCE,
            _I.SMART_TOURISM,
            _I.GOVERNMENT_SERVICES,
        ),
        TaskArea.LIVELIHOOD,
    ),
    **dict.fromkeys((_I.SMART_ECO_ENVIRONMENT, _I.SMART_COMMUNITY), TaskArea.ECOLOGY),
    **dict.fromkeys(
        (
            _I.SMART_MANUFACTURING,
            _I.SMART_INDUSTRIAL_PARKS,
            _I.SMART_AGRICULTURE,
            _I.SMART_LOGISTICS,
        ),
        TaskArea.INDUSTRY,
    ),
}

_TITLES: dict[Indicator, tuple[str, str]] = {
    _I.BROADBAND_NETWORK: ("宽带网络设施", "Broadband network facilities"),
    _I.IOT_SENSING: ("物联感知", "IoT sensing"),
    _I.CITY_HUB_PLATFORM: ("城市中枢平台", "City hub platform"),
    _I.NETWORK_SECURITY: ("网络和信息安全", "Network and information security"),
    _I.SMART_TRAFFIC: ("智慧交通", "Smart traffic"),
    _I.SMART_URBAN_MANAGEMENT: ("智慧城管", "Smart urban management"),
    _I.SMART_PUBLIC_SAFETY: ("智慧安防", "Smart public safety"),
    _I.SMART_EMERGENCY: ("智慧应急", "Smart emergency management"),
    _I.LEADERSHIP_COCKPIT: ("领导驾驶舱", "Leadership cockpit"),
    _I.SMART_HEALTHCARE: ("智慧医疗", "Smart healthcare"),
    _I.SMART_EDUCATION: ("智慧教育", "Smart education"),
    _I.SMART_FINANCE: ("智慧金融", "Smart finance (credit)"),
    _I.SMART_TOURISM: ("智慧文旅", "Smart tourism"),
    _I.GOVERNMENT_SERVICES: ("互联网+政务服务", "Internet + government services"),
    _I.SMART_ECO_ENVIRONMENT: ("智慧生态环保", "Smart eco-environment protection"),
    _I.SMART_COMMUNITY: ("智慧社区", "Smart community"),
    _I.SMART_MANUFACTURING: ("智能制造", "Smart manufacturing"),
    _I.SMART_INDUSTRIAL_PARKS: ("智慧园区", "Smart industrial parks"),
    _I.SMART_AGRICULTURE: ("智慧农业", "Smart agriculture"),
    _I.SMART_LOGISTICS: ("智慧物流", "Smart logistics"),
}
