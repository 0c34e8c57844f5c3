"""GB/T 2260 administrative division codes: the code table tenants are drawn from.

A code is six digits: two for the province, two for the prefecture-level city, two for the county
level. ``XX0000`` is a province, ``XXXX00`` a city, anything else a county-level division; codes
``XX90YY`` are county-level cities administered directly by the province (e.g. 419001 Jiyuan).

The table below covers Henan (every prefecture-level city, Zhengzhou's districts and counties) and
Hebei's capital, the two provinces whose guidance CityHub follows. Other divisions can still be
created as tenants with their names given explicitly; the table only supplies defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DivisionLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"


@dataclass(frozen=True)
class Division:
    code: str
    name: str
    name_en: str


def is_valid_code(code: str) -> bool:
    return len(code) == 6 and code.isdigit() and code[:2] != "00"


def level_of(code: str) -> DivisionLevel:
    if code[2:] == "0000":
        return DivisionLevel.PROVINCE
    if code[4:] == "00":
        return DivisionLevel.CITY
    return DivisionLevel.COUNTY


def parent_of(code: str) -> str | None:
    """The code of the division directly above, by the structure of the code."""
    level = level_of(code)
    if level is DivisionLevel.PROVINCE:
        return None
    if level is DivisionLevel.CITY or code[2:4] == "90":
        return code[:2] + "0000"
    return code[:4] + "00"


_TABLE = [
    ("410000", "河南省", "Henan Province"),
    ("410100", "郑州市", "Zhengzhou"),
    ("410102", "中原区", "Zhongyuan District"),
    ("410103", "二七区", "Erqi District"),
    ("410104", "管城回族区", "Guancheng Hui District"),
    ("410105", "金水区", "Jinshui District"),
    ("410106", "上街区", "Shangjie District"),
    ("410108", "惠济区", "Huiji District"),
    ("410122", "中牟县", "Zhongmou County"),
    ("410181", "巩义市", "Gongyi"),
    ("410182", "荥阳市", "Xingyang"),
    ("410183", "新密市", "Xinmi"),
    ("410184", "新郑市", "Xinzheng"),
    ("410185", "登封市", "Dengfeng"),
    ("410200", "开封市", "Kaifeng"),
    ("410300", "洛阳市", "Luoyang"),
    ("410400", "平顶山市", "Pingdingshan"),
    ("410500", "安阳市", "Anyang"),
    ("410600", "鹤壁市", "Hebi"),
    ("410700", "新乡市", "Xinxiang"),
    ("410800", "焦作市", "Jiaozuo"),
    ("410900", "濮阳市", "Puyang"),
    ("411000", "许昌市", "Xuchang"),
    ("411100", "漯河市", "Luohe"),
    ("411200", "三门峡市", "Sanmenxia"),
    ("411300", "南阳市", "Nanyang"),
    ("411400", "商丘市", "Shangqiu"),
    ("411500", "信阳市", "Xinyang"),
    ("411600", "周口市", "Zhoukou"),
    ("411700", "驻马店市", "Zhumadian"),
    ("419001", "济源市", "Jiyuan"),
    ("130000", "河北省", "Hebei Province"),
    ("130100", "石家庄市", "Shijiazhuang"),
]

DIVISIONS: dict[str, Division] = {code: Division(code, zh, en) for code, zh, en in _TABLE}


def lookup(code: str) -> Division | None:
    return DIVISIONS.get(code)


def lineage(code: str) -> list[str]:
    """The code and its ancestors, top first (``410102`` → 410000, 410100, 410102)."""
    chain = [code]
    parent = parent_of(code)
    while parent is not None:
        chain.append(parent)
        parent = parent_of(parent)
    return list(reversed(chain))
