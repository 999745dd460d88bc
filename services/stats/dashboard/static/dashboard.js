// The dashboard's figures: drawn from the state the server embedded in the page, then kept up to date from
// the event stream (/events), which starts with the whole state and then sends every change. Charts are
// bars of inline SVG beside HTML labels (readable at any width), each with a table giving the same numbers.

const root = document.getElementById("dashboard");
const labels = JSON.parse(document.getElementById("labels").textContent);
let state = JSON.parse(document.getElementById("initial-state").textContent);
const view = root.dataset.view; // "overview" or "hospital"
const shown = root.dataset.scope; // "registry" or the hospital's id
const locale = document.documentElement.lang === "nb" ? "nb-NO" : "en-GB";
const number = new Intl.NumberFormat(locale);
const decimal = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });
const day = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" });
const clock = new Intl.DateTimeFormat(locale, { timeStyle: "medium" });
const monthName = new Intl.DateTimeFormat(locale, { month: "long", year: "numeric", timeZone: "UTC" });

const FORMS = ["diagnosis", "treatment", "follow_up"];
const SHARES = [
  "with_treatment_report",
  "with_due_follow_up_report",
  "morphologically_verified",
  "unspecified_morphology",
  "unknown_primary_site",
  "accepted_with_override",
];
const TIMELINESS = ["days_to_diagnosis_report", "days_to_first_treatment_report"];
const NO_SHARE = { numerator: 0, denominator: 0, ratio: null, target: null, target_is_maximum: false };
const NO_TIMES = { count: 0, median_days: null, p90_days: null, buckets: {} };

// -- words and numbers ----------------------------------------------------------------------------------

function t(key, values = {}) {
  const text = labels[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

function esc(value) {
  const entities = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  return String(value).replace(/[&<>"']/g, (c) => entities[c]);
}

const n = (value) => number.format(value);
const days = (value) => (value === null ? "–" : t("days", { n: decimal.format(value) }));
const ratio = (share) => (share.ratio === null ? "–" : percent.format(share.ratio));
const date = (iso) => day.format(new Date(`${iso}T00:00:00Z`));
const month = (key) => monthName.format(new Date(`${key}-01T00:00:00Z`));
const groupName = (group) => labels[`group_${group}`] ?? group;
const findingName = (code) => labels[`finding_${code}`] ?? code;

function hospitalName(id) {
  return state.hospitals.find((h) => h.id === id)?.name ?? id;
}

// -- the period shown: one diagnosis year, or all ---------------------------------------------------------

const period = document.getElementById("period");
const thisYear = () => state.today.slice(0, 4);
let chosen = new URLSearchParams(location.search).get("year"); // null until a person picks one
let selected = thisYear();

function years() {
  const found = new Set([thisYear()]);
  for (const scope of Object.values(state.scopes)) {
    for (const year of Object.keys(scope.snapshot.by_diagnosis_year)) found.add(year);
  }
  return [...found].sort().reverse();
}

// This year once it has a case; until then (early January, a demo of last year) the newest year that has.
// Cases, not reports: a report rejected before its tumour was known counts on the year it arrived.
function defaultYear() {
  const withCases = years().filter((year) =>
    Object.values(state.scopes).some((scope) => scope.snapshot.by_diagnosis_year[year]?.tumours),
  );
  return withCases.includes(thisYear()) || !withCases.length ? thisYear() : withCases[0];
}

function periodLabel() {
  return selected === "all" ? t("all_years") : selected;
}

function renderPeriod() {
  selected = chosen ?? defaultYear();
  const options = [["all", t("all_years")]];
  for (const year of years()) options.push([year, year === thisYear() ? t("this_year", { year }) : year]);
  if (!options.some(([value]) => value === selected)) options.push([selected, selected]);
  const key = JSON.stringify(options);
  if (period.dataset.key !== key) {
    period.dataset.key = key;
    period.innerHTML = options.map(([value, text]) => `<option value="${esc(value)}">${esc(text)}</option>`).join("");
  }
  period.value = selected;
}

period.addEventListener("change", () => {
  chosen = period.value;
  const url = new URL(location.href);
  url.searchParams.set("year", chosen);
  history.replaceState(null, "", url);
  for (const link of document.querySelectorAll("a[hreflang]")) {
    const target = new URL(link.href);
    target.searchParams.set("year", chosen);
    link.href = target.pathname + target.search;
  }
  render();
});

// -- figures ----------------------------------------------------------------------------------------------

function figures(scope) {
  const snapshot = state.scopes[scope]?.snapshot;
  if (!snapshot) return null;
  return selected === "all" ? snapshot.total : (snapshot.by_diagnosis_year[selected] ?? null);
}

function reports(fig) {
  const total = { received: 0, accepted: 0, rejected: 0 };
  for (const counts of Object.values(fig?.submissions ?? {})) {
    total.received += counts.received;
    total.accepted += counts.accepted;
    total.rejected += counts.rejected;
  }
  return total;
}

const pending = (c) => Math.max(0, c.received - c.accepted - c.rejected);

function openReminders(scope) {
  if (scope !== "registry") return state.reminders[scope] ?? [];
  return Object.values(state.reminders).flat();
}

// -- charts -----------------------------------------------------------------------------------------------

// One row per bar: an HTML label, an SVG bar stretched to the row's width, the value as text. A bar is made
// of segments (stacked) and may carry a target mark; `scale` is the value that fills a whole row.
function bars(rows, scale) {
  const top = Math.max(scale ?? 0, ...rows.map((r) => r.segments.reduce((sum, s) => sum + s.value, 0)), 1);
  return rows
    .map((row) => {
      let x = 0;
      let shapes = "";
      for (const segment of row.segments) {
        const width = (segment.value / top) * 100;
        if (width > 0) shapes += `<rect class="${segment.cls}" x="${x}" y="0" width="${width}" height="10"></rect>`;
        x += width;
      }
      if (row.mark !== undefined && row.mark !== null) {
        const at = (row.mark / top) * 100;
        shapes += `<line class="mark" x1="${at}" x2="${at}" y1="0" y2="10" vector-effect="non-scaling-stroke"></line>`;
      }
      return (
        `<div class="bar-row"><span class="bar-label">${esc(row.label)}</span>` +
        `<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false">` +
        `<rect class="track" x="0" y="0" width="100" height="10"></rect>${shapes}</svg>` +
        `<span class="bar-value">${esc(row.text)}</span></div>`
      );
    })
    .join("");
}

// A bar of one segment, its value written beside it.
function single(label, value, cls) {
  return { label, segments: [{ value: Math.max(0, value), cls }], text: n(value) };
}

function legend(items) {
  return (
    `<ul class="legend">` +
    items.map(([cls, text]) => `<li><span class="swatch ${cls}" aria-hidden="true"></span>${esc(text)}</li>`).join("") +
    `</ul>`
  );
}

function table(caption, head, rows, numeric = []) {
  const cell = (value, i, tag) => `<${tag}${numeric.includes(i) ? ' class="num"' : ""}>${value}</${tag}>`;
  return (
    `<table><caption>${esc(caption)}</caption>` +
    `<thead><tr>${head.map((h, i) => cell(esc(h), i, "th")).join("")}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((v, i) => cell(v, i, i ? "td" : "th")).join("")}</tr>`).join("")}</tbody>` +
    `</table>`
  );
}

// A wide table scrolls sideways on a narrow screen; focusable, so the keyboard can scroll it too.
function scrollable(tableHtml, name) {
  return `<div class="table-scroll" role="region" aria-label="${esc(name)}" tabindex="0">${tableHtml}</div>`;
}

// A chart is an image named by its caption; the table beside it says the same in numbers.
function figure(id, caption, chart, tableHtml, note = "") {
  return (
    `<figure class="chart"><figcaption id="${id}-caption">${esc(caption)}</figcaption>${note}` +
    `<div class="bars" role="img" aria-labelledby="${id}-caption">${chart}</div>` +
    `<details id="${id}-table"><summary>${esc(t("show_table"))}</summary>${tableHtml}</details></figure>`
  );
}

function section(id, heading, body, wide = false) {
  return {
    id,
    html:
      `<section id="${id}" class="card${wide ? " wide" : ""}" aria-labelledby="${id}-h">` +
      `<h2 id="${id}-h">${esc(heading)}</h2>${body}</section>`,
  };
}

const empty = (text) => `<p class="empty">${esc(text)}</p>`;

// -- sections ---------------------------------------------------------------------------------------------

function keyFigures(scope) {
  const counts = reports(figures(scope));
  const fig = figures(scope);
  const items = [
    ["received", t("received"), counts.received],
    ["accepted", t("accepted"), counts.accepted],
    ["rejected", t("rejected"), counts.rejected],
    ["pending", t("pending"), pending(counts)],
    ["children", t("children"), fig?.children ?? 0],
    ["tumours", t("tumours"), fig?.tumours ?? 0],
    ["reminders", t("reminders_open"), openReminders(scope).length],
  ];
  const list = items
    .map(([key, label, value]) => `<div><dt>${esc(label)}</dt><dd data-figure="${key}">${n(value)}</dd></div>`)
    .join("");
  return section("key-figures", `${t("key_figures")}, ${periodLabel()}`, `<dl class="figures">${list}</dl>`, true);
}

function caseMix(scope) {
  const groups = Object.entries(figures(scope)?.case_mix_main_group ?? {});
  const caption = `${t("case_mix")}, ${periodLabel()}`;
  if (!groups.length) return section("case-mix", t("case_mix"), empty(t("no_data")));
  const chart = bars(groups.map(([g, count]) => single(g, count, "s-main")));
  const rows = groups.map(([g, count]) => [esc(g), esc(groupName(g)), n(count)]);
  const tableHtml = table(caption, [t("group"), t("description"), t("count")], rows, [2]);
  const names = groups.map(([g]) => `<li><b>${esc(g)}</b> ${esc(groupName(g))}</li>`).join("");
  const legendOfGroups = `<ul class="group-names">${names}</ul>`;
  return section("case-mix", t("case_mix"), figure("case-mix-chart", caption, chart, tableHtml) + legendOfGroups);
}

function reportsByForm(scope) {
  const submissions = figures(scope)?.submissions ?? {};
  const caption = `${t("reports_by_form")}, ${periodLabel()}`;
  const forms = FORMS.filter((f) => submissions[f]);
  if (!forms.length) return section("reports", t("reports_by_form"), empty(t("no_data")));
  const chart = bars(
    forms.map((f) => {
      const c = submissions[f];
      return {
        label: t(`form_${f}`),
        segments: [
          { value: c.accepted, cls: "s-accepted" },
          { value: c.rejected, cls: "s-rejected" },
          { value: pending(c), cls: "s-pending" },
        ],
        text: n(c.received),
      };
    }),
  );
  const key = legend([["s-accepted", t("accepted")], ["s-rejected", t("rejected")], ["s-pending", t("pending")]]);
  const rows = forms.map((f) => {
    const c = submissions[f];
    return [esc(t(`form_${f}`)), n(c.received), n(c.accepted), n(c.rejected), n(pending(c))];
  });
  const head = [t("form"), t("received"), t("accepted"), t("rejected"), t("pending")];
  const tableHtml = table(caption, head, rows, [1, 2, 3, 4]);
  return section("reports", t("reports_by_form"), key + figure("reports-chart", caption, chart, tableHtml));
}

function completeness(scope) {
  const fig = figures(scope);
  const caption = `${t("completeness")}, ${periodLabel()}`;
  if (!fig || !fig.tumours) return section("completeness", t("completeness"), empty(t("no_data")));
  const shares = SHARES.map((key) => [key, fig[key] ?? NO_SHARE]);
  // A target is a minimum (at least) or, for shares where lower is better, a maximum (at most).
  const met = (s) => (s.target_is_maximum ? s.ratio <= s.target : s.ratio >= s.target);
  const verdict = (s) =>
    s.target === null || s.ratio === null ? "–" : esc(met(s) ? t("target_met") : t("target_missed"));
  const goal = (s) => t(s.target_is_maximum ? "at_most" : "at_least", { value: percent.format(s.target) });
  const chart = bars(
    shares.map(([key, s]) => ({
      label: t(key),
      segments: [{ value: s.ratio ?? 0, cls: "s-main" }],
      mark: s.target,
      text: s.target === null || s.ratio === null ? ratio(s) : `${ratio(s)} (${goal(s)})`,
    })),
    1,
  );
  const rows = shares.map(([key, s]) => [
    esc(t(key)),
    esc(t("n_of_d", { n: n(s.numerator), d: n(s.denominator) })),
    ratio(s),
    s.target === null ? "–" : `${esc(goal(s))} (${verdict(s)})`,
  ]);
  const tableHtml = table(caption, [t("measure"), t("count"), t("share"), t("target")], rows, [2]);
  const key = legend([["s-main", t("share")], ["mark", t("target")]]);
  return section("completeness", t("completeness"), key + figure("completeness-chart", caption, chart, tableHtml));
}

// Median as the dark part of a bar, the 90th percentile as the light part beyond it.
function timeliness(rowsOf) {
  const rowsByMeasure = TIMELINESS.map((measure) => [measure, rowsOf(measure)]);
  if (!rowsByMeasure.some(([, rows]) => rows.some((r) => r.times.count))) {
    return section("timeliness", t("timeliness"), empty(t("no_data")));
  }
  const scale = Math.max(1, ...rowsByMeasure.flatMap(([, rows]) => rows.map((r) => r.times.p90_days ?? 0)));
  let body = `<p class="intro">${esc(t("timeliness_intro"))}</p>`;
  body += legend([["s-median", t("median")], ["s-p90", t("p90")]]);
  for (const [measure, rows] of rowsByMeasure) {
    const caption = `${t(measure)}, ${periodLabel()}`;
    const chart = bars(
      rows.map((r) => ({
        label: r.label,
        segments: [
          { value: r.times.median_days ?? 0, cls: "s-median" },
          { value: (r.times.p90_days ?? 0) - (r.times.median_days ?? 0), cls: "s-p90" },
        ],
        text: r.times.count ? `${days(r.times.median_days)} / ${days(r.times.p90_days)}` : "–",
      })),
      scale,
    );
    const tableRows = rows.map((r) => [
      esc(r.label),
      n(r.times.count),
      days(r.times.median_days),
      days(r.times.p90_days),
    ]);
    const head = [view === "overview" ? t("hospital") : t("measure"), t("count"), t("median"), t("p90")];
    body += figure(`${measure}-chart`, caption, chart, table(caption, head, tableRows, [1, 2, 3]));
  }
  return section("timeliness", t("timeliness"), body);
}

// How many tumours' reports arrived within each range of days after the diagnosis date.
function timelinessDistribution(scope) {
  const fig = figures(scope);
  const measures = TIMELINESS.filter((m) => (fig?.[m] ?? NO_TIMES).count);
  if (!measures.length) return section("distribution", t("distribution"), empty(t("no_data")));
  let body = `<p class="intro">${esc(t("distribution_intro"))}</p>`;
  for (const measure of measures) {
    const buckets = Object.entries(fig[measure].buckets ?? {});
    const caption = `${t(measure)}, ${periodLabel()}`;
    const label = (range) => t("day_range", { range });
    const chart = bars(buckets.map(([range, count]) => single(label(range), count, "s-main")));
    const rows = buckets.map(([range, count]) => [esc(label(range)), n(count)]);
    const tableHtml = table(caption, [t("day_range_head"), t("count")], rows, [1]);
    body += figure(`${measure}-distribution`, caption, chart, tableHtml);
  }
  return section("distribution", t("distribution"), body);
}

function rejections(scope) {
  const codes = Object.entries(figures(scope)?.rejections_by_code ?? {}).sort((a, b) => b[1] - a[1]);
  const caption = `${t("rejection_reasons")}, ${periodLabel()}`;
  if (!codes.length) return section("rejections", t("rejection_reasons"), empty(t("no_rejections")));
  const chart = bars(codes.map(([code, count]) => single(findingName(code), count, "s-rejected")));
  const rows = codes.map(([code, count]) => [`<code>${esc(code)}</code>`, esc(findingName(code)), n(count)]);
  const tableHtml = table(caption, [t("code"), t("description"), t("count")], rows, [2]);
  return section("rejections", t("rejection_reasons"), figure("rejections-chart", caption, chart, tableHtml));
}

function reminders(scope) {
  const open = openReminders(scope);
  let body = `<p class="intro">${esc(t("reminders_intro"))}</p>`;
  if (!open.length) return section("reminders", t("reminders"), body + empty(t("no_reminders")), true);
  const today = Date.parse(`${state.today}T00:00:00Z`);
  const rows = open.map((r) => [
    esc(r.tumour_ref),
    esc(t(`kind_${r.kind}`, { year: r.follow_up_year ?? "" })),
    esc(date(r.diagnosis_date)),
    esc(date(r.due_date)),
    n(Math.max(0, Math.round((today - Date.parse(`${r.due_date}T00:00:00Z`)) / 86400000))),
  ]);
  const head = [t("tumour_ref"), t("missing"), t("diagnosis_date"), t("due_date"), t("overdue")];
  body += scrollable(table(t("reminders"), head, rows, [4]), t("reminders"));
  return section("reminders", t("reminders"), body, true);
}

// Reports received in each month of this year (the registry's local months), stacked by their outcome so
// far; counted by stats from every submission, so the whole year is there however much the topic compacted.
function monthly(scope) {
  const year = thisYear();
  const counted = state.scopes[scope]?.snapshot.total.reports_by_month ?? {};
  const last = Number(state.today.slice(5, 7));
  const months = Array.from({ length: last }, (_, i) => `${year}-${String(i + 1).padStart(2, "0")}`);
  const caption = `${t("monthly")}, ${year}`;
  if (!months.some((key) => counted[key])) return section("monthly", t("monthly"), empty(t("no_data")));
  const none = { received: 0, accepted: 0, rejected: 0 };
  const chart = bars(
    months.map((key) => {
      const c = counted[key] ?? none;
      return {
        label: month(key),
        segments: [
          { value: c.accepted, cls: "s-accepted" },
          { value: c.rejected, cls: "s-rejected" },
          { value: pending(c), cls: "s-pending" },
        ],
        text: n(c.received),
      };
    }),
  );
  const key = legend([["s-accepted", t("accepted")], ["s-rejected", t("rejected")], ["s-pending", t("pending")]]);
  const rows = months.map((key) => {
    const c = counted[key] ?? none;
    return [esc(month(key)), n(c.received), n(c.accepted), n(c.rejected), n(pending(c))];
  });
  const head = [t("month"), t("received"), t("accepted"), t("rejected"), t("pending")];
  const tableHtml = table(caption, head, rows, [1, 2, 3, 4]);
  const note = `<p class="note">${esc(t("monthly_note"))}</p>`;
  return section("monthly", t("monthly"), key + figure("monthly-chart", caption, chart, tableHtml, note));
}

function hospitalsTable() {
  const rows = state.hospitals.map((h) => {
    const fig = figures(h.id);
    const c = reports(fig);
    return [
      `<a href="/hospitals/${encodeURIComponent(h.id)}">${esc(h.name)}</a>`,
      n(c.received),
      n(c.accepted),
      n(c.rejected),
      n(openReminders(h.id).length),
      ratio(fig?.with_treatment_report ?? NO_SHARE),
      days((fig?.days_to_diagnosis_report ?? NO_TIMES).median_days),
    ];
  });
  const head = [
    t("hospital"),
    t("received"),
    t("accepted"),
    t("rejected"),
    t("reminders_open"),
    t("with_treatment_report"),
    `${t("days_to_diagnosis_report")} (${t("median")})`,
  ];
  const caption = `${t("hospital_table")}, ${periodLabel()}`;
  const tableHtml = table(caption, head, rows, [1, 2, 3, 4, 5, 6]);
  return section("hospitals", t("hospital_table"), scrollable(tableHtml, caption), true);
}

function sections() {
  if (view === "overview") {
    const hospitalRows = (measure) =>
      state.hospitals.map((h) => ({ label: h.name, times: figures(h.id)?.[measure] ?? NO_TIMES }));
    return [
      keyFigures("registry"),
      caseMix("registry"),
      reportsByForm("registry"),
      completeness("registry"),
      timeliness(hospitalRows),
      timelinessDistribution("registry"),
      hospitalsTable(),
      rejections("registry"),
      monthly("registry"),
    ];
  }
  const measureRows = (measure) => [{ label: t(measure), times: figures(shown)?.[measure] ?? NO_TIMES }];
  return [
    keyFigures(shown),
    reminders(shown),
    rejections(shown),
    reportsByForm(shown),
    caseMix(shown),
    completeness(shown),
    timeliness(measureRows),
    timelinessDistribution(shown),
    monthly(shown),
  ];
}

// -- drawing: only the sections that changed, keeping open tables and keyboard focus ------------------------

const drawn = new Map();

function render() {
  renderPeriod();
  const focused = document.activeElement?.id;
  const open = new Set([...root.querySelectorAll("details[open]")].map((d) => d.id));
  const wanted = sections();
  if (wanted.map((s) => s.id).join() !== [...drawn.keys()].join()) {
    drawn.clear();
    root.innerHTML = "";
    for (const s of wanted) {
      root.insertAdjacentHTML("beforeend", s.html);
      drawn.set(s.id, s.html);
    }
  } else {
    for (const s of wanted) {
      if (drawn.get(s.id) === s.html) continue;
      document.getElementById(s.id).outerHTML = s.html;
      drawn.set(s.id, s.html);
    }
  }
  for (const id of open) document.getElementById(id)?.setAttribute("open", "");
  if (focused && document.activeElement?.id !== focused) document.getElementById(focused)?.focus();
  showUpdated();
}

let pendingFrame = 0;
function scheduleRender() {
  if (!pendingFrame) pendingFrame = requestAnimationFrame(() => {
    pendingFrame = 0;
    render();
  });
}

function showUpdated() {
  const moments = Object.values(state.scopes)
    .filter((s) => view === "overview" || s.scope === shown)
    .map((s) => Date.parse(s.snapshot.occurred_at));
  const text = moments.length ? t("updated_at", { time: clock.format(new Date(Math.max(...moments))) }) : "";
  const updated = document.getElementById("updated");
  if (updated.textContent !== text) updated.textContent = text;
}

// The connection's state is a live region of its own: said when it changes, not with every figure.
function setConnection(which) {
  const status = document.getElementById("connection");
  if (status.dataset.state === which) return;
  status.dataset.state = which;
  status.textContent = t(`status_${which}`);
}

// -- announcing changes to screen readers: at most one message per few seconds ------------------------------

const announcer = document.getElementById("announcer");
const changedScopes = new Set();
let announceTimer = 0;

function announce(scope) {
  if (view !== "overview" && scope !== shown) return;
  changedScopes.add(scope === "registry" ? t("registry") : hospitalName(scope));
  if (announceTimer) return;
  announceTimer = setTimeout(() => {
    announcer.textContent = [...changedScopes].map((name) => t("announce", { scope: name })).join(" ");
    changedScopes.clear();
    announceTimer = 0;
  }, 3000);
}

// -- the event stream -------------------------------------------------------------------------------------

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("open", () => setConnection("live"));
  source.addEventListener("state", (event) => {
    state = JSON.parse(event.data);
    scheduleRender();
  });
  source.addEventListener("scope", (event) => {
    const scope = JSON.parse(event.data);
    state.scopes[scope.scope] = scope;
    announce(scope.scope);
    scheduleRender();
  });
  source.addEventListener("reminder", (event) => {
    const reminder = JSON.parse(event.data);
    const open = (state.reminders[reminder.hospital_id] ?? []).filter((r) => r.reminder_id !== reminder.reminder_id);
    if (reminder.status === "open") open.push(reminder);
    open.sort((a, b) => a.due_date.localeCompare(b.due_date) || a.tumour_ref.localeCompare(b.tumour_ref));
    state.reminders[reminder.hospital_id] = open;
    announce(reminder.hospital_id);
    scheduleRender();
  });
  source.addEventListener("error", () => {
    setConnection("reconnecting");
    if (source.readyState === EventSource.CLOSED) {
      // Refused (the session ended, say) rather than dropped: EventSource gives up; find out why.
      setTimeout(async () => {
        const answer = await fetch("/api/state", { credentials: "same-origin" }).catch(() => null);
        if (answer && answer.status === 401) location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
        else connect();
      }, 3000);
    }
  });
}

render();
connect();
