import { describe, expect, it } from "vitest";
import { actionBody, actionForm, alertActions, timeLeft, urbanQueues } from "../src/centres";
import { severityLevel } from "../src/levels";

describe("alert actions", () => {
  it("follows the API's next states and offers a case while there is none", () => {
    expect(alertActions({ next_states: ["acknowledged", "resolved"], case_id: null })).toEqual(["acknowledge", "resolve", "case"]);
    expect(alertActions({ next_states: ["resolved"], case_id: "c1" })).toEqual(["resolve"]);
    expect(alertActions({ next_states: [], case_id: "c1" })).toEqual([]);
  });
});

describe("time left", () => {
  const now = new Date("2026-11-21T08:00:00Z");
  it("counts hours and minutes before the due time", () => {
    expect(timeLeft("2026-11-21T11:30:00Z", now)).toMatchObject({ key: "time.left", hours: 3, minutes: 30, overdue: false, color: "#1a9850" });
    expect(timeLeft("2026-11-21T08:45:00Z", now)).toMatchObject({ key: "time.left", minutes: 45, color: "#fc8d59" });
  });
  it("marks an overdue case in red with the time past", () => {
    expect(timeLeft("2026-11-21T06:50:00Z", now)).toMatchObject({ key: "time.overdue", hours: 1, minutes: 10, overdue: true, color: "#d73027" });
  });
  it("takes the API's verdict over the wall clock", () => {
    expect(timeLeft("2026-11-21T09:00:00Z", now, true).overdue).toBe(true);
  });
  it("has nothing to count without a due time", () => {
    expect(timeLeft(null, now).key).toBe("time.none");
  });
});

describe("action forms", () => {
  const dispatch = { name: "dispatch", effect: "dispatch", needs_reason: false };
  const reopen = { name: "reopen", effect: "rework", needs_reason: true };
  it("asks a department for a dispatch and a note where a reason is needed", () => {
    expect(actionForm(dispatch)).toEqual({ department: true, note: "optional" });
    expect(actionForm(reopen)).toEqual({ department: false, note: "required" });
  });
  it("builds the body or names what is missing", () => {
    expect(actionBody(dispatch, "", "")).toEqual({ missing: "cases.needDepartment" });
    expect(actionBody(dispatch, "urban", " go ")).toEqual({ body: { action: "dispatch", department: "urban", note: "go" } });
    expect(actionBody(reopen, "", "  ")).toEqual({ missing: "cases.needNote" });
    expect(actionBody({ name: "close", effect: "close", needs_reason: false }, "urban", "")).toEqual({ body: { action: "close" } });
  });
});

describe("urban queues", () => {
  it("flattens the centres' queues with titles in the language", () => {
    const answer = {
      tenant: "410100",
      command: { title_zh: "指挥中心", title_en: "Command centre", queues: { dispatch: { title_zh: "待派遣", title_en: "To dispatch", count: 1, items: [] } } },
    };
    expect(urbanQueues(answer, "en")).toEqual([{ key: "command.dispatch", title: "Command centre: To dispatch", count: 1, items: [] }]);
    expect(urbanQueues(answer, "zh-CN")[0].title).toBe("指挥中心·待派遣");
  });
});

describe("alert severities", () => {
  it("colours the rule engine's five severities and greys anything else", () => {
    for (const s of ["critical", "major", "minor", "warning", "info"]) expect(severityLevel({ severity: s }).key).toBe(`severity.${s}`);
    expect(severityLevel({ severity: "high" }).key).toBe("unknown");
  });
});
