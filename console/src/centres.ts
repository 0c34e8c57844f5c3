// Browser-side logic of the alert centre and the case centre: what an alert allows, how much time
// a case has left, and what an action's form needs. Kept out of the views so Vitest can check it.

export interface Alert {
  id: string;
  state: string;
  next_states: string[];
  severity: string;
  message_zh: string;
  message_en: string;
  entity_id: string;
  entity_type: string;
  raised_at: string;
  last_seen_at: string;
  count: number;
  case_id: string | null;
  acknowledged_by: string | null;
  resolved_by: string | null;
}

export interface CaseAction {
  name: string;
  title_zh: string;
  title_en: string;
  needs_reason: boolean;
  effect: string | null;
}

export interface CaseItem {
  id: string;
  title: string;
  state: string;
  category: string;
  department: string | null;
  due_at: string | null;
  overdue: boolean;
  allowed_actions?: string[];
  case_type?: string;
}

/** What can be done to an alert now: the API's next states, and a case while it has none. */
export function alertActions(alert: Pick<Alert, "next_states" | "case_id">): string[] {
  const actions: string[] = [];
  if (alert.next_states.includes("acknowledged")) actions.push("acknowledge");
  if (alert.next_states.includes("resolved")) actions.push("resolve");
  if (!alert.case_id) actions.push("case");
  return actions;
}

export interface TimeLeft {
  /** i18n key: time.left, time.overdue or time.none */
  key: string;
  hours: number;
  minutes: number;
  color: string;
  overdue: boolean;
}

const SOON_MINUTES = 120;

/** Time left before ``due`` (ISO 8601) at ``now``: wall-clock hours and minutes, overdue in red,
 *  less than two hours in orange. The workflow counts working time; the API's ``overdue`` is the
 *  authority and wins when given. */
export function timeLeft(due: string | null, now: Date, overdue?: boolean): TimeLeft {
  if (!due) return { key: "time.none", hours: 0, minutes: 0, color: "#888888", overdue: false };
  const minutes = Math.round((Date.parse(due) - now.getTime()) / 60000);
  const late = overdue ?? minutes < 0;
  const span = Math.abs(minutes);
  const parts = { hours: Math.floor(span / 60), minutes: span % 60 };
  if (late) return { key: "time.overdue", ...parts, color: "#d73027", overdue: true };
  return { key: "time.left", ...parts, color: minutes < SOON_MINUTES ? "#fc8d59" : "#1a9850", overdue: false };
}

/** The fields an action's form shows. */
export function actionForm(action: Pick<CaseAction, "effect" | "needs_reason">): { department: boolean; note: "required" | "optional" } {
  return { department: action.effect === "dispatch", note: action.needs_reason ? "required" : "optional" };
}

/** The request body of an action, or an i18n key saying what is missing. */
export function actionBody(
  action: Pick<CaseAction, "name" | "effect" | "needs_reason">,
  department: string,
  note: string,
): { body: Record<string, string> } | { missing: string } {
  const form = actionForm(action);
  const body: Record<string, string> = { action: action.name };
  if (form.department) {
    if (!department) return { missing: "cases.needDepartment" };
    body.department = department;
  }
  if (note.trim()) body.note = note.trim();
  else if (form.note === "required") return { missing: "cases.needNote" };
  return { body };
}

/** Queues to show: the urban app's centres when it answers, else one queue per case state. */
export interface Queue {
  key: string;
  title: string;
  count: number;
  items: CaseItem[];
}

interface UrbanQueues {
  [centre: string]: unknown;
}

export function urbanQueues(answer: UrbanQueues, locale: string): Queue[] {
  const queues: Queue[] = [];
  for (const [centre, value] of Object.entries(answer)) {
    if (centre === "tenant" || !value || typeof value !== "object") continue;
    const group = value as { title_zh: string; title_en: string; queues: Record<string, { title_zh: string; title_en: string; count: number; items: CaseItem[] }> };
    for (const [name, line] of Object.entries(group.queues ?? {})) {
      const title = locale === "en" ? `${group.title_en}: ${line.title_en}` : `${group.title_zh}·${line.title_zh}`;
      queues.push({ key: `${centre}.${name}`, title, count: line.count, items: line.items });
    }
  }
  return queues;
}
