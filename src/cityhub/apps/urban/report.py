"""The monthly report 城市管理月度报告: a self-contained HTML page (zh-CN, styles inline, no
external assets) and a CSV file (UTF-8 with a byte order mark, so that Excel reads the Chinese
text), from the figures :func:`service.monthly` gathers."""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any

SOURCES = {"citizen": "市民上报", "supervisor": "监督员采集", "alert": "物联告警", "inspection": "巡查"}
RATES = (
    ("handling_rate", "处置率"),
    ("on_time_rate", "按期处置率"),
    ("rework_rate", "返工率"),
    ("overdue_rate", "超期率"),
    ("extension_rate", "延期率"),
)
WEIGHT_TITLES = {
    "handling": "处置率",
    "on_time": "按期处置率",
    "rework": "返工率",
    "overdue": "超期率",
    "extension": "延期率",
}
FORMULA = "得分 = 处置率×权重 + 按期处置率×权重 + (1−返工率)×权重 + (1−超期率)×权重 + (1−延期率)×权重"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _title(data: dict[str, Any]) -> str:
    year, month = data["period"].split("-")
    return f"{year}年{int(month)}月 城市管理月度报告"


def _department(line: dict[str, Any]) -> str:
    name = line.get("name")
    label = f"{line['department_tenant']}/{line['department']}"
    return f"{name}（{label}）" if name else label


def html(data: dict[str, Any]) -> str:
    summary = data["summary"]
    statistics = data["statistics"]
    rows = []
    for line in data["departments"]:
        cells = [
            escape(_department(line)),
            str(line["dispatched"]),
            str(line["handled"]),
            *(percent(line[key]) for key, _ in RATES),
            _number(line["score"]),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    departments = "".join(rows) or '<tr><td colspan="9">本月无派遣案件</td></tr>'
    hot = (
        "".join(
            f"<tr><td>{i}</td><td>{escape(line['grid_cell'] or '')}</td><td>{escape(line['name'] or '')}</td>"
            f"<td>{escape(line['district'] or '')}</td><td>{line['cases']}</td>"
            f"<td>{line['reports']}</td></tr>"
            for i, line in enumerate(statistics["hot_spots"], start=1)
        )
        or '<tr><td colspan="6">无</td></tr>'
    )
    categories = (
        "".join(
            f"<tr><td>{escape(c['category'])}</td><td>{escape(c['name_zh'])}</td><td>{c['cases']}</td></tr>"
            for c in statistics["categories"]
        )
        or '<tr><td colspan="3">无</td></tr>'
    )
    sources = "、".join(f"{escape(SOURCES.get(k, k))} {v}" for k, v in summary["by_source"].items()) or "无"
    weights = "，".join(f"{WEIGHT_TITLES[k]} {v:g}" for k, v in data["weights"].items())
    title = escape(_title(data))
    period = f"{data['start'].isoformat()} 至 {data['end'].isoformat()}（不含）"
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.5em; }} h2 {{ font-size: 1.2em; margin-top: 1.5em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ border: 1px solid #999; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #eee; }} td:first-child, th:first-child {{ text-align: left; }}
.note {{ color: #555; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="note">行政区划 {escape(data["tenant"])}；统计期间 {period}</p>
<h2>一、案件概况</h2>
<table>
<tr><th>立案数</th><th>上报数（含重复）</th><th>重复上报</th><th>已结案</th><th>作废</th><th>超期</th></tr>
<tr><td>{summary["cases"]}</td><td>{summary["reports"]}</td><td>{summary["duplicates"]}</td><td>{summary["closed"]}</td><td>{summary["cancelled"]}</td><td>{summary["overdue"]}</td></tr>
</table>
<p>案件来源：{sources}</p>
<h2>二、部门综合评价</h2>
<p class="note">权重：{escape(weights)}。{FORMULA}</p>
<table>
<tr><th>部门</th><th>派遣数</th><th>处置数</th>{"".join(f"<th>{t}</th>" for _, t in RATES)}<th>得分</th></tr>
{departments}
</table>
<h2>三、网格热点（前十）</h2>
<table>
<tr><th>排名</th><th>网格</th><th>名称</th><th>区划</th><th>案件数</th><th>上报数</th></tr>
{hot}
</table>
<h2>四、案件类别</h2>
<table>
<tr><th>类别</th><th>名称</th><th>案件数</th></tr>
{categories}
</table>
</body>
</html>
"""


def csv_text(data: dict[str, Any]) -> str:
    """Three tables one after another, each under its title line: the department evaluation,
    the hot spots and the categories. Rates are fractions (0.5), as a spreadsheet computes with."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_title(data)])
    writer.writerow(["统计期间", data["start"].isoformat(), data["end"].isoformat()])
    writer.writerow([])
    writer.writerow(["部门综合评价"])
    writer.writerow(
        ["部门", "部门代码", "所属区划", "派遣数", "处置数", "按期处置数", "返工数", "超期数", "延期数"]
        + [t for _, t in RATES]
        + ["得分"]
    )
    for line in data["departments"]:
        writer.writerow(
            [
                line.get("name") or "",
                line["department"],
                line["department_tenant"],
                line["dispatched"],
                line["handled"],
                line["on_time"],
                line["reworked"],
                line["overdue"],
                line["extended"],
                *("" if line[key] is None else round(line[key], 4) for key, _ in RATES),
                "" if line["score"] is None else line["score"],
            ]
        )
    writer.writerow([])
    writer.writerow(["网格热点"])
    writer.writerow(["网格", "名称", "区划", "案件数", "上报数"])
    for line in data["statistics"]["hot_spots"]:
        writer.writerow(
            [line["grid_cell"], line["name"] or "", line["district"] or "", line["cases"], line["reports"]]
        )
    writer.writerow([])
    writer.writerow(["案件类别"])
    writer.writerow(["类别", "名称", "案件数"])
    for line in data["statistics"]["categories"]:
        writer.writerow([line["category"], line["name_zh"], line["cases"]])
    return "\ufeff" + out.getvalue()
