// The review desk console: vanilla JavaScript, no library, no request to any other origin.
// Pages: #/sign-in, #/queue, #/case/<id>, #/ops. Every refusal shows the problem document's own message.
"use strict";

const LABELS = {
  state: {
    awaiting_subdistrict: "待街道审核 Awaiting sub-district", awaiting_district: "待区复核 Awaiting district",
    approved: "已通过 Approved", rejected: "已驳回 Rejected", cancelled: "已撤销 Cancelled",
    reversed_after_payment: "支付后冲销 Reversed after payment", nothing_to_pay: "无需支付 Nothing to pay",
  },
  category: { extreme_poverty: "特困人员 Extreme poverty", subsistence: "低保对象 Subsistence allowance",
              low_income: "低收入家庭 Low income" },
  visit: { inpatient: "住院 Inpatient", outpatient_chronic: "门诊慢特病 Chronic outpatient", outpatient: "门诊 Outpatient" },
  flag: {
    large_amount: "大额救助 Large amount", frequent_settlements: "短期内多次结算 Many settlements",
    reversal_pending: "冲销待追回 Reversal pending", account_changed_recently: "近期变更账户 Account changed",
    payment_failed_before: "曾支付失败 Payment failed before",
  },
  figure: {
    policy_scope_amount: "范围内费用 Policy-scope amount", basic_insurance_paid: "基本医保 Basic insurance",
    critical_illness_paid: "大病保险 Critical-illness insurance", base: "救助基数 Base",
    deductible: "年度起付线 Annual deductible", deductible_used_before: "此前已用起付线 Deductible used before",
    deductible_left: "起付线余额 Deductible left", deductible_applied: "本次扣除起付线 Deductible applied",
    ratio: "救助比例 Ratio", amount_before_caps: "限额前金额 Before caps",
    per_settlement_cap: "单次限额 Per-settlement cap", amount_after_settlement_cap: "单次限额后 After per-settlement cap",
    cap: "年度限额 Annual cap", committed_before: "此前已救助 Committed before", cap_left: "年度限额余额 Cap left",
    assistance: "救助金额 Assistance",
  },
  journey: { received: "受理 Received", eligible: "符合条件 Eligible", parked: "暂缓 Parked", calculated: "已核算 Calculated",
             nothing_to_pay: "无需支付 Nothing to pay", approved: "已通过 Approved", rejected: "已驳回 Rejected",
             cancelled: "已撤销 Cancelled", paid: "已支付 Paid", payment_failed: "支付失败 Payment failed",
             reversed: "已冲销 Reversed" },
  role: { clerk: "街道经办人 Clerk", district_reviewer: "区复核员 District reviewer", ops: "运维 Ops" },
};
const FLOW = [["received", "受理 Accepted"], ["screened", "筛查 Screened"], ["calculated", "核算 Calculated"],
              ["approved", "通过 Approved"], ["paid", "支付 Paid"], ["payment_failed", "失败 Failed"],
              ["rejected", "驳回 Rejected"]];
const SERVICES = ["intake", "eligibility", "calculation", "approval", "disbursement"];

const $ = (sel, root = document) => root.querySelector(sel);
const label = (kind, value) => (LABELS[kind] && LABELS[kind][value]) || value || "—";
const yuan = (v) => (v === null || v === undefined || v === "") ? "—"
  : Number(v).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}
// "中文 English" → 中文 with the English in a <small>
function bilingual(text) {
  const at = text.search(/ [A-Za-z]/);
  return at < 0 ? document.createTextNode(text) : el("span", {}, text.slice(0, at) + " ", el("small", {}, text.slice(at + 1)));
}
function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 3600) return `${Math.round(s / 60)} 分钟 min`;
  if (s < 86400) return `${Math.floor(s / 3600)} 小时 h`;
  return `${Math.floor(s / 86400)} 天 d ${Math.floor((s % 86400) / 3600)} 小时 h`;
}

// --- session and API ---------------------------------------------------------------------------------------
const session = {
  get token() { return sessionStorage.getItem("token"); },
  get profile() { return JSON.parse(sessionStorage.getItem("profile") || "null"); },
  save(token, profile) { sessionStorage.setItem("token", token); sessionStorage.setItem("profile", JSON.stringify(profile)); },
  clear() { sessionStorage.clear(); },
};

class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status; this.code = body.code; this.field = body.field;
  }
}

async function api(service, path, { method = "GET", body, params } = {}) {
  const query = params ? "?" + params.toString() : "";
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/${service}/${path}${query}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) { session.clear(); location.hash = "#/sign-in"; }
    throw new Problem(response.status, data);
  }
  return data;
}

function alertBox(message, kind = "error") {
  const box = $("#alert");
  box.className = `alert ${kind}`; box.textContent = message; box.hidden = !message;
}
async function guarded(work) {
  try { await work(); } catch (err) { alertBox(err.message); }
}

// --- pages -----------------------------------------------------------------------------------------------
function mount(templateId) {
  const main = $("#main");
  main.replaceChildren($(`#${templateId}`).content.cloneNode(true));
  return main;
}

async function signInPage() {
  const page = mount("tpl-sign-in");
  const config = await fetch("/console/config").then((r) => r.json());
  if (config.oidc) {
    $("[data-oidc]", page).hidden = false;
    const url = new URL(config.oidc.authorize_url);
    url.search = new URLSearchParams({ client_id: config.oidc.client_id, response_type: "code", scope: "openid",
                                       redirect_uri: location.origin + "/" }).toString();
    $("[data-oidc-link]", page).href = url.toString();
  }
  if (!config.dev_sign_in && !config.oidc) $("[data-none]", page).hidden = false;
  if (!config.dev_sign_in) return;
  const form = $("[data-dev]", page);
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const f = new FormData(form);
      const area = f.get("role") === "clerk" || f.get("role") === "district_reviewer";
      const profile = { role: f.get("role"), district_code: area ? (f.get("district_code") || null) : null,
                        subdistrict_code: f.get("role") === "clerk" ? (f.get("subdistrict_code") || null) : null,
                        subject: f.get("subject") };
      const response = await fetch("/console/dev-sign-in", { method: "POST", headers: { "Content-Type": "application/json" },
                                                             body: JSON.stringify(profile) });
      const data = await response.json();
      if (!response.ok) throw new Problem(response.status, data);
      session.save(data.token, profile);
      alertBox("");
      location.hash = profile.role === "ops" ? "#/ops" : "#/queue";
    });
  });
  form.querySelector("select").focus();
}

const queueState = { offset: 0 };

async function queuePage() {
  const page = mount("tpl-queue");
  const form = $("[data-filters]", page);
  const flags = $("fieldset.flags", form);
  for (const [code, text] of Object.entries(LABELS.flag)) {
    flags.append(el("label", {}, el("input", { type: "checkbox", name: "flag", value: code }), bilingual(text)));
  }
  const restore = queueState.params;
  if (restore) {
    for (const [k, v] of restore) {
      const input = form.elements[k];
      if (k === "flag") flags.querySelector(`input[value="${v}"]`).checked = true;
      else if (input) input.value = v;
    }
  }
  let latest = 0;  // a query sent before another may answer after it: only the latest one is shown
  const load = () => guarded(async () => {
    const mine = ++latest;
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.append(k, v);
    queueState.params = [...params];
    params.set("offset", queueState.offset);
    const data = await api("approval", "v1/cases", { params });
    if (mine === latest) renderQueue(page, data);
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); queueState.offset = 0; load(); });
  $("[data-prev]", page).addEventListener("click", () => {
    queueState.offset = Math.max(0, queueState.offset - Number(form.elements.limit.value)); load(); });
  $("[data-next]", page).addEventListener("click", () => {
    queueState.offset += Number(form.elements.limit.value); load(); });
  $("[data-select-all]", page).addEventListener("change", (event) => {
    for (const box of page.querySelectorAll("[data-case]")) { box.checked = event.target.checked; mark(box); }
  });
  $("[data-batch]", page).addEventListener("click", () => batchApprove(page, load));
  $("[data-batch]", page).hidden = session.profile.role !== "clerk";
  await load();
}

function mark(box) { box.closest("tr").classList.toggle("selected", box.checked); }

function renderQueue(page, data) {
  const rows = $("[data-rows]", page);
  rows.replaceChildren(...data.items.map((c) => el("tr", { "data-case-row": c.case_id },
    el("td", {}, el("input", { type: "checkbox", "data-case": c.case_id, "aria-label": `选择 Select ${c.case_id.slice(0, 8)}`,
                              onchange: (e) => mark(e.target) })),
    el("td", {}, el("a", { href: `#/case/${c.case_id}` }, c.case_id.slice(0, 8))),
    el("td", {}, c.hospital_id), el("td", {}, bilingual(label("category", c.category))),
    el("td", {}, c.discharge_date), el("td", { class: "num" }, yuan(c.amount)),
    el("td", {}, bilingual(label("state", c.state))),
    el("td", {}, (c.flags || []).map((f) => el("span", { class: "badge", "data-flag": f }, label("flag", f)))),
    el("td", {}, age(c.created_at)))));
  if (!data.items.length) rows.append(el("tr", {}, el("td", { colspan: 9 }, "没有符合条件的案件 No cases match")));
  const summary = `共 ${data.total} 件 · ${data.total} cases` +
    (data.oldest_created_at ? ` · 最久等待 oldest ${age(data.oldest_created_at)}` : "");
  $("[data-summary]", page).textContent = summary;
  const pages = Math.max(1, Math.ceil(data.total / data.limit));
  $("[data-page]", page).textContent = `第 ${Math.floor(data.offset / data.limit) + 1} / ${pages} 页 Page`;
  $("[data-prev]", page).disabled = data.offset === 0;
  $("[data-next]", page).disabled = data.offset + data.limit >= data.total;
  $("[data-select-all]", page).checked = false;
}

async function batchApprove(page, reload) {
  const ids = [...page.querySelectorAll("[data-case]:checked")].map((b) => b.dataset.case);
  const out = $("[data-batch-result]", page);
  if (!ids.length) { alertBox("请先选择案件。Select cases first."); return; }
  await guarded(async () => {
    const result = await api("approval", "v1/cases:batch-approve", { method: "POST", body: { case_ids: ids } });
    out.replaceChildren(el("h3", {}, `批量通过结果：成功 ${result.approved}，失败 ${result.failed} `,
                           el("small", {}, `Batch result: ${result.approved} approved, ${result.failed} failed`)),
      el("ul", { class: "results" }, result.results.map((r) => el("li", { class: r.ok ? "ok" : "failed", "data-result": r.case_id },
        `${r.case_id.slice(0, 8)}: `, r.ok ? bilingual(label("state", r.state)) : `${r.message} (${r.code})`))));
    alertBox(result.failed ? "部分案件未通过，见下方结果。Some cases were refused: see the results." : "已通过所选案件。Approved.",
             result.failed ? "error" : "ok");
    await reload();
  });
}

function dl(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, bilingual(k)), el("dd", {}, v ?? "—")]));
}

async function casePage(caseId) {
  const page = mount("tpl-case");
  const load = async () => {
    const view = await api("approval", `v1/cases/${caseId}/review`);
    renderCase(page, view);
  };
  const act = (action, body) => guarded(async () => {
    await api("approval", `v1/cases/${caseId}/${action}`, { method: "POST", body });
    alertBox({ approve: "已通过。Approved.", reject: "已驳回。Rejected.", "send-back": "已退回街道。Sent back." }[action], "ok");
    await load();
  });
  const comment = (form) => form.elements.comment.value.trim() || undefined;
  $("[data-approve]", page).addEventListener("submit", (e) => { e.preventDefault(); act("approve", { comment: comment(e.target) }); });
  $("[data-reject]", page).addEventListener("submit", (e) => {
    e.preventDefault(); act("reject", { reason: e.target.elements.reason.value, comment: comment(e.target) }); });
  $("[data-send-back]", page).addEventListener("submit", (e) => {
    e.preventDefault(); act("send-back", { comment: e.target.elements.comment.value }); });
  await guarded(load);
}

function renderCase(page, view) {
  const { case: c, who, what, why, year_so_far: year, flags } = view;
  $("[data-case-id]", page).textContent = c.case_id.slice(0, 8);
  $("[data-state]", page).replaceChildren(bilingual(label("state", c.state)));
  $("[data-flags]", page).replaceChildren(...(flags.length ? flags.map((f) => el("span", { class: "badge", "data-flag": f.code },
    `${f.label_zh} ${f.label_en}`)) : [el("span", { class: "note" }, "无提示 No flags")]));
  dl($("[data-who]", page), who.known ? [
    ["姓名 Name", el("strong", { "data-name": "" }, who.name)], ["身份证号 National ID", who.national_id_masked],
    ["救助类别 Category", bilingual(label("category", who.category))],
    ["类别有效期 Valid", `${who.category_valid_from || "—"} ~ ${who.category_valid_to || "长期 open"}` +
      (who.category_valid_on_discharge ? "" : " ⚠ 出院日不在有效期内 not valid on discharge")],
    ["授权签署 Consent signed", who.consent_signed_on], ["授权撤回 Consent revoked", who.consent_revoked_on],
    ["街道 Sub-district", who.subdistrict_code],
  ] : [["救助对象 Person", "登记信息尚未到达 The registry's entry has not arrived yet"],
       ["救助类别 Category", bilingual(label("category", who.category))], ["街道 Sub-district", who.subdistrict_code]]);
  dl($("[data-what]", page), [
    ["医院 Hospital", `${what.hospital_name || what.hospital_id}（${what.hospital_level} 级 level）`],
    ["就诊类型 Visit", bilingual(label("visit", what.visit_type))],
    ["结算单号 Settlement no.", what.hospital_settlement_id],
    ["入院 Admitted", what.admission_date], ["出院 Discharged", what.discharge_date],
    ["总费用 Total", yuan(what.total_amount)], ["范围内费用 Policy scope", yuan(what.policy_scope_amount)],
    ["基本医保 Basic insurance", yuan(what.basic_insurance_paid)], ["大病保险 Critical illness", yuan(what.critical_illness_paid)],
    ["冲销/更正 Reversed / corrected", (what.reversed ? "医院已冲销 Reversed by the hospital" : "否 No") +
      (what.corrected_by.length ? `；已更正 corrected by ${what.corrected_by.map((s) => s.slice(0, 8)).join(", ")}` : "")],
  ]);
  $("[data-words-zh]", page).textContent = why.explanation_zh;
  $("[data-words-en]", page).textContent = why.explanation_en;
  $("[data-figures]", page).replaceChildren(
    ...Object.entries(why.figures).map(([name, value]) => el("tr", { "data-figure": name },
      el("td", {}, bilingual(label("figure", name))),
      el("td", { class: "num" }, name === "ratio" ? `${(Number(value) * 100).toFixed(2).replace(/\.?0+$/, "")}%` : yuan(value)))),
    el("tr", {}, el("td", {}, bilingual("政策 Policy")), el("td", { class: "num" }, `${why.policy_id} v${why.policy_version}`)));
  dl($("[data-year]", page), [
    ["年度 Year", year.year], ["起付线已用 Deductible used", `${yuan(year.deductible_used)} / ${yuan(year.deductible)}`],
    ["已救助 Assistance committed", yuan(year.committed)], ["年度限额余额 Cap left", `${yuan(year.cap_left)} / ${yuan(year.cap)}`],
  ]);
  $("[data-year-rows]", page).replaceChildren(...year.settlements.map((s) => el("tr", { class: s.this_case ? "selected" : "" },
    el("td", {}, s.discharge_date), el("td", {}, s.hospital_id), el("td", { class: "num" }, yuan(s.assistance)),
    el("td", {}, s.case_id && !s.this_case ? el("a", { href: `#/case/${s.case_id}` }, label("state", s.state)) : bilingual(label("state", s.state))),
    el("td", {}, s.payment_status || "—"))));
  const role = session.profile.role;
  const open = c.state === "awaiting_subdistrict" || c.state === "awaiting_district";
  $("[data-actions]", page).hidden = !open || !["clerk", "district_reviewer"].includes(role);
  $("[data-send-back]", page).hidden = role !== "district_reviewer";
  $("[data-audit]", page).replaceChildren(...c.audit.map((a) => el("li", {},
    `${a.at.slice(0, 19).replace("T", " ")} · ${a.actor} (${a.role}) · ${a.action}: ${a.from_state || "—"} → ${a.to_state}` +
    (a.reason ? ` · ${a.reason}` : "") + (a.comment ? ` · “${a.comment}”` : ""))));
}

function table(target, head, rows) {
  target.replaceChildren(el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, bilingual(h))))),
    el("tbody", {}, rows.length ? rows.map((r) => el("tr", {}, r.map((v, i) => el("td", { class: i && typeof v === "number" ? "num" : "" }, v))))
      : [el("tr", {}, el("td", { colspan: head.length }, "暂无 None"))]));
}

async function opsPage() {
  const page = mount("tpl-ops");
  const load = () => guarded(async () => {
    const [flow, queues, recon, alarms, ...kafka] = await Promise.all([
      api("intake", "v1/ops/flow", { params: new URLSearchParams({ hours: 24 }) }), api("approval", "v1/queues"),
      api("disbursement", "v1/reconciliation"), api("disbursement", "v1/reconciliation/alarms"),
      ...SERVICES.map((s) => api(s, "ops/kafka"))]);
    const count = (counts, key) => key === "screened" ? (counts.eligible || 0) + (counts.parked || 0) : (counts[key] || 0);
    const inReview = queues.reduce((n, q) => n + q.count, 0);
    table($("[data-flow]", page), ["小时 Hour", ...FLOW.map((f) => f[1])],
      [...flow.hours.map((h) => [h.hour.slice(5, 16).replace("T", " "), ...FLOW.map(([k]) => count(h.counts, k))]),
       ["合计 Total", ...FLOW.map(([k]) => count(flow.totals, k))]]);
    $("[data-flow]", page).querySelector("tbody tr:last-child").setAttribute("data-flow-total", "");
    table($("[data-queues]", page), ["街道 Sub-district", "状态 State", "件数 Cases", "最久等待 Oldest"],
      [...queues.map((q) => [q.subdistrict_code, label("state", q.state), q.count, age(q.oldest_created_at)]),
       ["审核中合计 In review", "", inReview, ""]]);
    const sum = (key) => recon.reduce((n, r) => n + r[key].count, 0);
    const amount = (key) => recon.reduce((n, r) => n + Number(r[key].amount), 0);
    table($("[data-payments]", page), ["状态 Status", "笔数 Count", "金额 Amount"],
      [["approved", "已批准 Approved"], ["settled", "已到账 Settled"], ["in_flight", "处理中 In flight"],
       ["failed", "失败 Failed"], ["cancelled", "已取消 Cancelled"]].map(([k, t]) => [t, sum(k), yuan(amount(k))]));
    const gaps = recon.filter((r) => r.alarm);
    $("[data-alarms]", page).replaceChildren(el("p", { "data-alarm-count": alarms.length + gaps.length },
      `告警 ${alarms.length + gaps.length} 条 · ${alarms.length + gaps.length} alarms`),
      el("ul", {}, [...gaps.map((r) => el("li", {}, `${r.district_code} ${r.day}: 差额 difference ${r.difference}`)),
                    ...alarms.map((a) => el("li", {}, `${a.kind} · ${a.district_code || "—"} · ${yuan(a.amount)}`))]));
    const lag = kafka.flatMap((k) => k.lag.map((r) => [r.group, r.topic, r.lag]));
    table($("[data-lag]", page), ["消费组 Group", "主题 Topic", "延迟 Lag"], lag);
    const dead = {};
    for (const k of kafka) for (const [t, n] of Object.entries(k.dead_letters)) dead[t] = Math.max(dead[t] || 0, n);
    table($("[data-dlq]", page), ["死信主题 Dead-letter topic", "条数 Messages"], Object.entries(dead).map(([t, n]) => [`${t}.dlq`, n]));
  });
  $("[data-refresh]", page).addEventListener("click", load);
  $("[data-find]", page).addEventListener("submit", (event) => {
    event.preventDefault();
    const id = event.target.elements.settlement_id.value.trim();
    guarded(async () => {
      const s = await api("intake", `v1/ops/settlements/${encodeURIComponent(id)}`);
      const traces = (await fetch("/console/config").then((r) => r.json())).trace_search_url;
      const trace = traces ? el("a", { href: traces.replace("{settlement_id}", encodeURIComponent(s.settlement_id)),
        target: "_blank", rel: "noopener", "data-trace-link": "" }, "追踪 Trace") : "";
      $("[data-journey]", page).replaceChildren(el("h3", {}, `结算 ${s.settlement_id.slice(0, 8)} · ${s.hospital_id} ${s.hospital_settlement_id} · `,
        bilingual(label("journey", s.status)), " ", trace),
        el("ol", { class: "audit", "data-journey-steps": "" }, s.journey.map((j) => el("li", {},
          `${j.at.slice(0, 19).replace("T", " ")} · `, bilingual(label("journey", j.status)), j.reason ? ` · ${j.reason}` : ""))));
    });
  });
  await load();
}

// --- routing ---------------------------------------------------------------------------------------------
async function route() {
  const hash = location.hash || "#/queue";
  const profile = session.profile;
  $("#nav").hidden = !profile;
  if (!profile && hash !== "#/sign-in") { location.hash = "#/sign-in"; return; }
  if (profile) {
    $("#who").textContent = `${label("role", profile.role)} · ${profile.subject} · ${profile.subdistrict_code || profile.district_code || "全市 city"}`;
    $('[data-nav="ops"]').hidden = profile.role !== "ops";
    $('[data-nav="queue"]').hidden = profile.role === "ops";
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.toggleAttribute("aria-current", hash.startsWith(`#/${a.dataset.nav}`));
      if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
    }
  }
  if (hash.startsWith("#/case/")) await casePage(hash.slice(7));
  else if (hash === "#/ops") await opsPage();
  else if (hash === "#/sign-in") await signInPage();
  else await queuePage();
  // the page's content takes the focus, unless the user is already working in it: a page whose data arrives
  // while a filter is being typed must not take the keys away from it
  const main = $("#main");
  if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", () => { alertBox(""); route(); });
document.addEventListener("DOMContentLoaded", () => {
  $("#sign-out").addEventListener("click", () => { session.clear(); location.hash = "#/sign-in"; });
  route();
});
