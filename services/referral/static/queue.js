// The schedulers' queue: reads GET /v1/referrals every few seconds and acts through the
// JSON API with the session cookie plus the page's CSRF token. Data is only ever put in
// the page as text (textContent), never as HTML.
"use strict";

(() => {
  const POLL_MS = 5000;
  const PAGE_SIZE = 50;
  const MAX_LIMIT = 200;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (selector) => document.querySelector(selector);
  const els = {
    filters: $("#filters"), body: $("#queue-body"), empty: $("#empty"), more: $("#more"),
    status: $("#status"), alert: $("#alert"), updated: $("#updated"),
  };
  const whenOptions = { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
                        timeZoneName: "short" };
  const thisYear = new Intl.DateTimeFormat(undefined, whenOptions);
  const otherYear = new Intl.DateTimeFormat(undefined, { ...whenOptions, year: "numeric" });
  const when = { // the year only when it is not this one
    format: (ms) => (new Date(ms).getFullYear() === new Date().getFullYear() ? thisYear : otherYear).format(ms),
  };
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const clockSeconds = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  let shown = PAGE_SIZE;     // rows wanted; "Show more" raises it
  let lastJson = "";         // re-render only when the queue changed, so focus stays put
  let generation = 0;        // a newer refresh makes older ones drop their answer
  let pollTimer = null;
  let acting = null;         // { referral, focusKey } while a dialog is open

  // -- talking to the API ------------------------------------------------------------
  async function api(path, { method = "GET", body, background = false } = {}) {
    const headers = { Accept: "application/json" };
    // The periodic refresh is not the scheduler's activity: the session's idle timeout runs on.
    if (background) headers["X-Clinic-Background"] = "1";
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
    const response = await fetch(path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      window.location.reload(); // signed out or token revoked: back to the sign-in form
      throw new Error("signed out");
    }
    let data = null;
    try { data = await response.json(); } catch (_) { /* an empty or non-JSON answer */ }
    if (!response.ok) throw new Error(describeError(data, response.status));
    return data;
  }

  function describeError(data, status) {
    const error = data && data.error;
    if (!error) return `The request failed (HTTP ${status}).`;
    const fields = (error.fields || []).map((f) => (f.field ? `${f.field}: ` : "") + f.message);
    return [error.message, ...fields].join(" ");
  }

  // -- filters (kept in the address so a reload keeps them) ----------------------------
  function queryParams() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(els.filters)) {
      if (String(value).trim()) params.set(name, String(value).trim());
    }
    return params;
  }

  function restoreFilters() {
    const url = new URLSearchParams(window.location.search);
    for (const name of ["status", "priority", "review", "contact_needed", "report_id"]) {
      if (url.has(name)) els.filters.elements[name].value = url.get(name);
    }
  }

  function applyFilters(event) {
    if (event) event.preventDefault();
    const params = queryParams();
    const url = params.toString() ? `?${params}` : window.location.pathname;
    window.history.replaceState(null, "", url);
    shown = PAGE_SIZE;
    lastJson = "";
    refresh();
  }

  // -- loading and rendering ---------------------------------------------------------
  async function loadQueue(background) {
    let items = [];
    let cursor = null;
    do { // keyset pages until enough rows are shown
      const params = queryParams();
      params.set("limit", String(Math.min(MAX_LIMIT, shown - items.length)));
      if (cursor) params.set("cursor", cursor);
      const page = await api(`/v1/referrals?${params}`, { background });
      items = items.concat(page.items);
      cursor = page.next_cursor;
    } while (cursor && items.length < shown);
    return { items, more: Boolean(cursor) };
  }

  async function refresh(background = false) {
    const mine = ++generation;
    clearTimeout(pollTimer);
    try {
      const result = await loadQueue(background);
      if (mine !== generation) return;
      hideAlert();
      const json = JSON.stringify(result);
      if (json !== lastJson) {
        lastJson = json;
        render(result);
      } else {
        updateClocks();
      }
      els.updated.textContent = `Updated ${clockSeconds.format(new Date())}.`;
    } catch (error) {
      if (mine === generation && error.message !== "signed out") showAlert(`Could not load the queue: ${error.message}`);
    } finally {
      if (mine === generation) pollTimer = setTimeout(() => refresh(true), POLL_MS);
    }
  }

  function render({ items, more }) {
    const focusKey = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.focusKey : undefined;
    els.body.replaceChildren(...items.map(row));
    els.empty.hidden = items.length > 0;
    els.more.hidden = !more;
    if (focusKey) focusByKey(focusKey);
  }

  function focusByKey(key) {
    const target = els.body.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (target) target.focus();
  }

  function node(tag, { text, className, attrs } = {}, children = []) {
    const el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    if (className) el.className = className;
    for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
    for (const child of children) if (child) el.append(child);
    return el;
  }

  function duration(ms) {
    const minutes = Math.max(0, Math.floor(ms / 60000));
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function isOpen(r) { return r.status === "booked" || r.status === "waitlisted"; }

  function waitingText(r) {
    return isOpen(r) ? duration(Date.now() - Date.parse(r.created_at)) : "closed";
  }

  function windowCell(r) {
    const ends = Date.parse(r.window_ends_at);
    if (r.breached) {
      return [node("span", { text: "Breached", className: "badge breached" }),
        node("div", { text: `window ended ${duration(Date.now() - ends)} ago`, className: "muted clock",
                      attrs: { "data-breached-since": r.window_ends_at } })];
    }
    const label = r.status === "waitlisted" ? `ends in ${duration(ends - Date.now())}` : `ends ${when.format(ends)}`;
    return [node("span", { text: label, className: r.status === "waitlisted" ? "" : "muted" })];
  }

  function appointmentCell(r) {
    const a = r.appointment;
    if (!a) return [node("span", { text: "—", attrs: { "aria-label": "none" } })];
    return [node("div", { text: `${when.format(Date.parse(a.start))} – ${clock.format(Date.parse(a.end))}` }),
      node("div", { text: `${a.provider}, ${a.location}`, className: "muted" })];
  }

  function actionButton(label, action, r) {
    const name = r.patient.display_name;
    return node("button", {
      text: label, className: `action-${action}`,
      attrs: { type: "button", "data-action": action, "data-referral-id": r.referral_id,
               "data-focus-key": `${action}:${r.referral_id}`, "aria-label": `${label}: ${name}` },
    });
  }

  // Same MRN as another open referral, another birth date: not linked, for a scheduler to
  // review. Names the other referral by id and MRN only (never the other patient's name).
  function duplicateMarker(r) {
    const other = r.possible_duplicate_of;
    if (!other) return null;
    return node("div", { text: `Possible duplicate of ${other.referral_id} (MRN ${other.mrn})`,
                         className: "badge duplicate", attrs: { "data-duplicate-of": other.referral_id } });
  }

  // The language to phone the patient in (issue 18), when it is not English: in words, the
  // language named in English and in itself (marked with its own lang, so a screen reader
  // says it right), e.g. "Speaks Spanish (Español)".
  const LANGUAGES = { es: { english: "Spanish", own: "Español" } };

  function languageTag(r) {
    const code = r.patient.language;
    if (!code || code === "en") return null;
    const known = LANGUAGES[code];
    return node("div", { className: "badge language", attrs: { "data-patient-language": code } }, [
      document.createTextNode(`Speaks ${known ? known.english : code} (`),
      node("span", { text: known ? known.own : code, attrs: { lang: code } }),
      document.createTextNode(")")]);
  }

  function speaks(r) { // for the dialogs' sentences
    const code = r.patient.language;
    return !code || code === "en" ? "" : `, speaks ${(LANGUAGES[code] || { english: code }).english}`;
  }

  // What the patient was told (docs/patient-messages.md): the newest message on each channel,
  // e.g. "Email sent 09:31 · SMS failed 09:32"; and, when a message may not have reached
  // them, the marker schedulers phone from.
  const CHANNELS = { email: "Email", sms: "SMS", phone: "No consented channel" };
  const MESSAGE_STATUSES = { queued: "queued", sent: "sent", failed: "failed", uncertain: "uncertain",
                             not_sent: "not sent" };

  function messagesSummary(messages) {
    const newest = new Map(); // channel -> its newest message (the list is oldest first)
    for (const m of messages) newest.set(m.channel, m);
    return [...newest.values()]
      .map((m) => `${CHANNELS[m.channel] || m.channel} ${MESSAGE_STATUSES[m.status] || m.status} ${clock.format(Date.parse(m.at))}`)
      .join(" · ");
  }

  function contactCell(r) {
    const contact = r.contact;
    const cells = [];
    if (contact.needed) {
      const phone = contact.callback_phone ? `phone ${contact.callback_phone}` : "no phone number on record";
      cells.push(node("div", { text: `Contact needed — ${phone}`, className: "badge contact-needed",
                               attrs: { "data-contact-needed": r.referral_id } }));
    }
    cells.push(node("div", { text: contact.messages.length ? messagesSummary(contact.messages) : "No messages",
                             className: contact.messages.length ? "messages" : "muted" }));
    if (contact.contacted_at) {
      cells.push(node("div", { text: `Contacted ${when.format(Date.parse(contact.contacted_at))}`, className: "muted" }));
    }
    return cells;
  }

  function row(r) {
    const tr = node("tr", { className: [r.priority, r.breached ? "breached" : ""].join(" ").trim(),
                            attrs: { "data-referral-id": r.referral_id } });
    const priority = node("td", {}, [node("span", { text: r.priority === "urgent" ? "Urgent" : "Routine",
                                                    className: `badge ${r.priority}` })]);
    const patient = node("td", {}, [node("div", { text: r.patient.display_name }), languageTag(r),
      node("div", { text: `MRN ${r.patient.mrn}`, className: "muted" }),
      r.report_ids.length > 1 ? node("div", { text: `${r.report_ids.length} reports`, className: "muted" }) : null,
      duplicateMarker(r)]);
    const status = node("td", { text: r.status, className: "status-cell" });
    const waiting = node("td", { text: waitingText(r), className: "clock",
                                 attrs: { "data-since": r.created_at, "data-open": String(isOpen(r)) } });
    const actions = [];
    if (isOpen(r)) actions.push(actionButton(r.status === "waitlisted" ? "Book" : "Reschedule", "reschedule", r));
    if (r.status === "booked") actions.push(actionButton("Complete", "complete", r));
    if (isOpen(r)) actions.push(actionButton("Cancel", "cancel", r));
    if (r.contact.needed) actions.push(actionButton("Mark contacted", "contacted", r));
    tr.append(priority, patient, status, waiting, node("td", {}, windowCell(r)), node("td", {}, appointmentCell(r)),
              node("td", {}, contactCell(r)), node("td", {}, [node("div", { className: "actions" }, actions)]));
    tr.referral = r;
    return tr;
  }

  function updateClocks() { // waiting times move even when the data does not
    for (const cell of els.body.querySelectorAll("[data-since]")) {
      if (cell.dataset.open === "true") cell.textContent = duration(Date.now() - Date.parse(cell.dataset.since));
    }
    for (const cell of els.body.querySelectorAll("[data-breached-since]")) {
      cell.textContent = `window ended ${duration(Date.now() - Date.parse(cell.dataset.breachedSince))} ago`;
    }
  }

  // -- messages ----------------------------------------------------------------------
  function say(message) { els.status.textContent = message; }
  function showAlert(message) { els.alert.textContent = message; els.alert.hidden = false; }
  function hideAlert() { els.alert.hidden = true; els.alert.textContent = ""; }

  // -- actions -------------------------------------------------------------------------
  const dialogs = {
    reschedule: $("#reschedule-dialog"), cancel: $("#cancel-dialog"), complete: $("#complete-dialog"),
    contacted: $("#contacted-dialog"),
  };

  function dialogError(dialog, message) {
    const box = dialog.querySelector(".error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function openDialog(action, referral, focusKey) {
    const dialog = dialogs[action];
    acting = { referral, focusKey };
    dialog.querySelector(".who").textContent =
      `${referral.patient.display_name} (MRN ${referral.patient.mrn}${speaks(referral)}), ${referral.priority}, `
      + referral.status;
    dialogError(dialog, "");
    if (action === "cancel") $("#cancel-reason").value = "";
    if (action === "contacted") {
      $("#contacted-note").value = "";
      dialog.querySelector(".callback").textContent = referral.contact.callback_phone
        ? `Phone: ${referral.contact.callback_phone}` : "No phone number on record.";
    }
    if (action === "reschedule") {
      $("#reschedule-title").textContent = referral.status === "waitlisted" ? "Book a slot" : "Move to another slot";
      $("#slots-from").value = new Date().toISOString().slice(0, 10);
      loadFreeSlots();
    }
    dialog.showModal();
  }

  function closeDialog(dialog) {
    dialog.close();
    if (acting) focusByKey(acting.focusKey); // the row may have been redrawn meanwhile
    acting = null;
  }

  let slotsLoad = 0; // the latest loadFreeSlots call: an older answer must not land after a newer one

  async function loadFreeSlots() {
    const mine = ++slotsLoad;
    const select = $("#slot-choice");
    const hint = $("#slots-hint");
    const submit = $("#reschedule-form button[type=submit]");
    select.replaceChildren();
    submit.disabled = true;
    hint.textContent = "Loading free slots…";
    const from = $("#slots-from").value || new Date().toISOString().slice(0, 10);
    try {
      const now = new Date().toISOString();
      const start = from > now.slice(0, 10) ? from : now; // never offer a slot that has started
      const page = await api(`/v1/slots?${new URLSearchParams({ free: "true", from: start, limit: String(MAX_LIMIT) })}`);
      // The dialog loads today's slots as it opens; a day typed meanwhile starts a newer load,
      // whose list must not be mixed with (or overwritten by) the older answer.
      if (mine !== slotsLoad) return;
      for (const slot of page.items) {
        select.append(node("option", {
          text: `${when.format(Date.parse(slot.start))} – ${clock.format(Date.parse(slot.end))}, ${slot.provider} (${slot.location})`,
          attrs: { value: slot.slot_id },
        }));
      }
      hint.textContent = page.items.length ? `${page.items.length} free slot(s)${page.next_cursor ? " (the first ones)" : ""}.`
        : "No free slots from that day.";
      submit.disabled = page.items.length === 0;
    } catch (error) {
      if (mine !== slotsLoad) return;
      hint.textContent = "";
      if (error.message !== "signed out") dialogError(dialogs.reschedule, error.message);
    }
  }

  async function act(action, dialog, body, done) {
    const referral = acting.referral;
    const submit = dialog.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const updated = await api(`/v1/referrals/${encodeURIComponent(referral.referral_id)}/${action}`,
                                { method: "POST", body });
      closeDialog(dialog);
      say(done(updated));
      lastJson = "";
      await refresh();
    } catch (error) {
      if (error.message !== "signed out") dialogError(dialog, error.message);
    } finally {
      submit.disabled = false;
    }
  }

  function bindDialogs() {
    for (const dialog of Object.values(dialogs)) {
      dialog.querySelector("button.close").addEventListener("click", () => closeDialog(dialog));
      dialog.addEventListener("cancel", (event) => { event.preventDefault(); closeDialog(dialog); }); // Escape
    }
    $("#slots-from").addEventListener("change", loadFreeSlots);
    $("#reschedule-form").addEventListener("submit", (event) => {
      event.preventDefault();
      act("reschedule", dialogs.reschedule, { slot_id: $("#slot-choice").value },
          (r) => `${r.patient.display_name} is booked for ${when.format(Date.parse(r.appointment.start))}.`);
    });
    $("#cancel-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = $("#cancel-reason").value.trim();
      if (!reason) { dialogError(dialogs.cancel, "Please give a reason."); return; }
      act("cancel", dialogs.cancel, { reason }, (r) => `Referral for ${r.patient.display_name} cancelled.`);
    });
    $("#contacted-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const note = $("#contacted-note").value.trim();
      act("contacted", dialogs.contacted, note ? { note } : {},
          (r) => `${r.patient.display_name} marked contacted.`);
    });
    $("#complete-form").addEventListener("submit", (event) => {
      event.preventDefault();
      act("complete", dialogs.complete, {}, (r) => `Referral for ${r.patient.display_name} marked completed.`);
    });
  }

  els.body.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const referral = button.closest("tr").referral;
    openDialog(button.dataset.action, referral, button.dataset.focusKey);
  });
  els.filters.addEventListener("submit", applyFilters);
  for (const select of els.filters.querySelectorAll("select")) select.addEventListener("change", applyFilters);
  els.more.addEventListener("click", () => { shown += PAGE_SIZE; refresh(); });

  restoreFilters();
  bindDialogs();
  refresh();
})();
