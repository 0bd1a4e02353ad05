/* The kiosk pages, in plain JavaScript (no framework, no build step).

   /kiosk/setup: staff sign in with their staff token (checked by the server, kept in memory
   only), then paste the kiosk key once; it is checked and kept in localStorage.
   /kiosk: the patient form. It sends POST /v1/reports with that key, shows a 422's field
   errors next to their fields, and then polls GET /v1/reports/<id> for the outcome.

   The kiosk is shared: patient data lives only in the form and the outcome screen, and both
   are cleared after sending, on "Start a new report", and after inactivity. */
(function () {
  "use strict";

  const KEY_STORAGE = "clinic.kioskKey";
  const POLL_MS = 2000;
  const REQUEST_TIMEOUT_MS = 15000;
  // A patient who walks away: after 90 s without use the screen asks "are you still there?",
  // and 30 s later (2 minutes in all) clears the answers or the outcome.
  const IDLE_WARN_MS = 90 * 1000;
  const IDLE_GRACE_MS = 30 * 1000;
  const SLOW_OUTCOME_MS = 60 * 1000;
  // The kiosk stops polling once the patient has what they came for; a waitlisted referral
  // may still be booked later, but the clinic contacts the patient then.
  const SETTLED = ["referred", "waitlisted", "closed"];

  const $ = (id) => document.getElementById(id);

  // The patient page's words in its language (kiosk_text.py, rendered into #kiosk-texts);
  // `{name}` placeholders are filled from `values`.
  let TEXTS = {};
  function t(key, values) {
    const words = TEXTS[key] || key;
    return values ? words.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole)) : words;
  }

  // --- the stored key ----------------------------------------------------------------
  // localStorage can throw (storage disabled, private mode): treat that as "no key".
  function storedKey() {
    try { return window.localStorage.getItem(KEY_STORAGE); } catch (e) { return null; }
  }
  function storeKey(key) { window.localStorage.setItem(KEY_STORAGE, key); }
  function forgetKey() {
    try { window.localStorage.removeItem(KEY_STORAGE); } catch (e) { /* nothing stored then */ }
  }

  // crypto.randomUUID exists only in secure contexts (https, localhost); kiosks on a clinic
  // LAN may use plain http, where getRandomValues still works.
  function uuid4() {
    if (window.crypto.randomUUID) return window.crypto.randomUUID();
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // fetch with a deadline: a request that hangs must end in "please try again".
  async function request(url, options) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      return await fetch(url, { ...options, signal: controller.signal, cache: "no-store" });
    } finally {
      clearTimeout(timer);
    }
  }

  async function jsonOrNull(response) {
    try { return await response.json(); } catch (e) { return null; }
  }

  // =====================================================================================
  // /kiosk/setup
  // =====================================================================================
  function initSetup() {
    const staffForm = $("staff-form");
    const staffInput = $("staff-token");
    const form = $("setup-form");
    const input = $("kiosk-key");
    const state = $("setup-state");
    const save = $("setup-save");
    const STAFF_IDLE_MS = 2 * 60 * 1000;

    // The staff token lives in this closure only, and only until the staff member is done
    // (or walks away): it is never stored on the kiosk.
    let staffToken = null;
    let staffTimer = null;

    function showState() {
      const isSet = Boolean(storedKey());
      state.textContent = isSet
        ? "This kiosk is set up. To change or remove its key, sign in with your staff token."
        : "This kiosk is not set up yet. Sign in with your staff token to set it up.";
      state.hidden = false;
      $("setup-actions").hidden = !isSet;
    }

    function fieldError(inputEl, errorEl, hintId, message) {
      errorEl.textContent = message;
      errorEl.hidden = !message;
      inputEl.setAttribute("aria-invalid", message ? "true" : "false");
      inputEl.setAttribute("aria-describedby", message ? `${hintId} ${errorEl.id}` : hintId);
      if (message) inputEl.focus();
    }
    const showError = (message) => fieldError(input, $("kiosk-key-error"), "kiosk-key-hint", message);
    const showStaffError = (message) => fieldError(staffInput, $("staff-token-error"), "staff-token-hint", message);

    // Back to the first step: the staff token is forgotten.
    function signOutStaff(message) {
      staffToken = null;
      clearTimeout(staffTimer);
      input.value = "";
      showError("");
      form.hidden = true;
      staffForm.hidden = false;
      showState();
      if (message) showStaffError(message);
    }

    function armStaffTimer() {
      clearTimeout(staffTimer);
      staffTimer = setTimeout(() => signOutStaff(""), STAFF_IDLE_MS);
    }

    // 204 only for a scheduler's or an admin's token in force: checked by the server.
    async function staffCheck(token) {
      const response = await request("/kiosk/setup/staff-check", {
        method: "POST", headers: { "Authorization": "Bearer " + token },
      });
      return response.status;
    }

    function staffRefusal(status) {
      if (status === 429) return "Too many attempts that failed. Wait a few minutes, then try again.";
      if (status === 401 || status === 403) {
        return "This staff token was not accepted. Check that you copied all of it, and that it has not been revoked.";
      }
      return "Could not check the token (the intake service did not answer). Try again.";
    }

    staffForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = staffInput.value.trim();
      if (!token) { showStaffError("Enter your staff token first."); return; }
      $("staff-continue").disabled = true;
      showStaffError("");
      try {
        const status = await staffCheck(token);
        if (status !== 204) { showStaffError(staffRefusal(status)); return; }
        staffToken = token;
        staffInput.value = "";
        staffForm.hidden = true;
        form.hidden = false;
        $("setup-forget").hidden = !storedKey();
        armStaffTimer();
        input.focus();
      } catch (e) {
        showStaffError(staffRefusal(0));
      } finally {
        $("staff-continue").disabled = false;
      }
    });

    // Before saving or removing: the token must still be in force (it may have been revoked).
    async function staffStillValid() {
      if (!staffToken) return false;
      const status = await staffCheck(staffToken);
      if (status === 204) return true;
      signOutStaff(staffRefusal(status));
      return false;
    }

    // An empty report tells a kiosk key from anything else without storing anything:
    // POST /v1/reports checks the key first (401), then validates the body (422).
    async function keyIsAccepted(key) {
      const response = await request("/v1/reports", {
        method: "POST",
        headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" },
        body: "{}",
      });
      if (response.status === 422) return true;
      if (response.status === 401) return false;
      throw new Error("unexpected status " + response.status);
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) { showError("Paste the kiosk key first."); return; }
      save.disabled = true;
      showError("");
      armStaffTimer();
      try {
        if (!(await staffStillValid())) return;
        if (!(await keyIsAccepted(key))) {
          showError("This key was not accepted. Check that you copied all of it, and that it has not been revoked.");
          return;
        }
        storeKey(key);
        signOutStaff("");
        state.textContent = "Saved. This kiosk is set up.";
        $("setup-actions").querySelector("a").focus();
      } catch (e) {
        showError("Could not check the key (the intake service did not answer). The key was not saved; try again.");
      } finally {
        save.disabled = false;
      }
    });

    $("setup-forget").addEventListener("click", async () => {
      try {
        if (!(await staffStillValid())) return;
      } catch (e) {
        showError("Could not check your staff token (the intake service did not answer). Nothing was removed.");
        return;
      }
      forgetKey();
      signOutStaff("");
      state.textContent = "The key was removed. This kiosk is not set up.";
      staffInput.focus();
    });

    $("setup-done").addEventListener("click", () => signOutStaff(""));

    staffForm.hidden = false;
    showState();
  }

  // =====================================================================================
  // /kiosk
  // =====================================================================================
  function initForm() {
    TEXTS = JSON.parse($("kiosk-texts").textContent);
    const form = $("report-form");
    const outcome = $("outcome");
    const sendButton = $("send");
    const idleDialog = $("idle-dialog");

    let attempt = null;       // {json, key}: the body last sent and its Idempotency-Key
    let sending = false;
    let poll = null;          // {reportId, timer, started, last}
    let idleTimer = null;
    let graceTimer = null;
    let focusBeforeIdle = null;   // where focus goes back after "I am still here"

    // --- reading the form ----------------------------------------------------------------
    const field = (name) => form.elements.namedItem(name);
    const text = (name) => field(name).value.trim();
    const checkedValue = (name) => {
      const box = form.querySelector(`input[name="${name}"]:checked`);
      return box ? box.value : null;
    };
    const checkedValues = (name) =>
      Array.from(form.querySelectorAll(`input[name="${name}"]:checked`), (box) => box.value);

    // Day, month and year boxes to YYYY-MM-DD. The API checks the date itself; an incomplete
    // one is left out of the body (the API then says the field is required) and `local`
    // keeps a plainer message for it.
    function dateValue(path, local) {
      const parts = ["day", "month", "year"].map((part) => text(`${path}.${part}`));
      const [day, month, year] = parts;
      if (parts.every((part) => part === "")) return undefined;
      if (!/^\d{1,2}$/.test(day) || !/^\d{1,2}$/.test(month) || !/^\d{4}$/.test(year)) {
        local[path] = t("error.date_numbers");
        return undefined;
      }
      return `${year}-${month.padStart(2, "0")}-${day.padStart(2, "0")}`;
    }

    const YES_NO = { yes: true, no: false };
    const YES_NO_UNSURE = { yes: true, no: false, unsure: null };

    // Leaves out what was not answered, so the API names it as required.
    function put(target, key, value) {
      if (value !== undefined && value !== null && value !== "") target[key] = value;
    }
    function putAnswer(target, key, answer, meanings) {
      if (answer !== null && answer in meanings) target[key] = meanings[answer];
    }

    // A ticked channel whose address is empty: sent all the same, so the API names
    // patient.contact_consent with the other mistakes, and this says it in the patient's words.
    // Whole sentences per case, so that each language can word them its own way.
    const CONSENT_ADDRESS = { sms: "phone", email: "email" };
    function consentWithoutAddress(consent, patient) {
      const missing = consent.filter((channel) => CONSENT_ADDRESS[channel] && !patient[CONSENT_ADDRESS[channel]]);
      if (!missing.length) return null;
      return t(missing.length === 2 ? "error.consent_both" : `error.consent_${missing[0]}`);
    }

    function readForm() {
      const local = {};
      const patient = {}, activity = {}, pain = {}, fn = {}, homeCare = {};
      put(patient, "mrn", text("patient.mrn"));
      put(patient, "given_name", text("patient.given_name"));
      put(patient, "family_name", text("patient.family_name"));
      put(patient, "birth_date", dateValue("patient.birth_date", local));
      put(patient, "phone", text("patient.phone"));
      put(patient, "email", text("patient.email"));
      // No box ticked: left out (the API's "none"), so such a body is what it was before consent.
      const consent = checkedValues("patient.contact_consent");
      if (consent.length) patient.contact_consent = consent;
      const unreachable = consentWithoutAddress(consent, patient);
      if (unreachable) local["patient.contact_consent"] = unreachable;

      put(activity, "sport", text("activity.sport"));
      putAnswer(activity, "high_impact", checkedValue("activity.high_impact"), YES_NO);

      const locations = checkedValues("pain.locations");
      if (locations.length) pain.locations = locations;
      put(pain, "side", checkedValue("pain.side"));
      const severity = checkedValue("pain.severity");
      if (severity !== null) pain.severity = Number(severity);
      put(pain, "onset", checkedValue("pain.onset"));
      put(pain, "started_on", dateValue("pain.started_on", local));
      putAnswer(pain, "direct_trauma", checkedValue("pain.direct_trauma"), YES_NO_UNSURE);

      for (const name of ["joint_locking", "instability", "persistent_dysfunction"]) {
        putAnswer(fn, name, checkedValue(`function.${name}`), YES_NO_UNSURE);
      }

      // Consistent by construction: nothing tried means 0 days and "not tried".
      homeCare.measures = checkedValues("home_care.measures");
      if (homeCare.measures.length === 0) {
        homeCare.days = 0;
        homeCare.improving = "not_tried";
      } else {
        const days = text("home_care.days");
        if (days !== "") homeCare.days = /^\d+$/.test(days) ? Number(days) : days;
        put(homeCare, "improving", checkedValue("home_care.improving"));
      }

      const body = { patient, activity, pain, function: fn, home_care: homeCare };
      return { body, local };
    }

    function formHasAnswers() {
      return Array.from(form.elements).some((el) =>
        (el.type === "checkbox" || el.type === "radio") ? el.checked : (el.tagName === "INPUT" && el.value !== ""));
    }

    function syncHomeCare() {
      const tried = checkedValues("home_care.measures").length > 0;
      $("home-care-follow-up").hidden = !tried;
    }

    // --- field errors ---------------------------------------------------------------------
    // The API's messages are written for any client, in English; a few are said more plainly
    // here. On a page in another language, any other mistake gets its question's own message
    // (data-invalid-message, from the catalogue) rather than the API's English.
    function plainMessage(container, message) {
      if (/^This field is required/.test(message)) {
        return (container && container.dataset.requiredMessage) || t("error.answer");
      }
      if (container && "date" in container.dataset) {
        if (/^Must be a date/.test(message)) return t("error.date_real");
        // "(latest: 2026-11-27)" is for API clients in other time zones, not for a patient.
        if (/^Cannot be in the future/.test(message)) return t("error.date_future");
      }
      if (form.dataset.language !== "en") return (container && container.dataset.invalidMessage) || t("error.answer");
      return message;
    }

    // "pain.locations.1" belongs to the "pain.locations" question: climb until one matches.
    function containerFor(path) {
      const parts = path ? path.split(".") : [];
      while (parts.length) {
        const found = form.querySelector(`[data-field="${CSS.escape(parts.join("."))}"]`);
        if (found) return found;
        parts.pop();
      }
      return null;
    }

    const inputsOf = (container) => Array.from(container.querySelectorAll("input"));

    function focusTarget(container) {
      const inputs = inputsOf(container);
      return inputs.find((el) => el.checked) || inputs[0];
    }

    function setDescribedBy(el, id, on) {
      const ids = (el.getAttribute("aria-describedby") || "").split(/\s+/).filter((x) => x && x !== id);
      if (on) ids.push(id);
      if (ids.length) el.setAttribute("aria-describedby", ids.join(" "));
      else el.removeAttribute("aria-describedby");
    }

    function clearErrors() {
      for (const container of form.querySelectorAll(".question.has-error")) {
        container.classList.remove("has-error");
        const slot = container.querySelector(".field-error");
        slot.hidden = true;
        slot.textContent = "";
        const describe = container.tagName === "FIELDSET" ? [container] : inputsOf(container);
        describe.forEach((el) => setDescribedBy(el, slot.id, false));
        inputsOf(container).forEach((el) => el.removeAttribute("aria-invalid"));
      }
      $("error-summary").hidden = true;
      $("error-summary-list").replaceChildren();
    }

    function showFieldErrors(fields, local) {
      clearErrors();
      // One message per question, in the order the questions appear on the screen.
      const byContainer = new Map();
      const loose = [];
      for (const { field: path, message } of fields) {
        const container = containerFor(path);
        const words = (container && local[container.dataset.field]) || plainMessage(container, message);
        if (!container) loose.push(words);
        else if (!byContainer.has(container)) byContainer.set(container, words);
      }
      const ordered = Array.from(form.querySelectorAll("[data-field]")).filter((c) => byContainer.has(c));
      const list = $("error-summary-list");
      for (const container of ordered) {
        const words = byContainer.get(container);
        container.classList.add("has-error");
        const slot = container.querySelector(".field-error");
        slot.textContent = words;
        slot.hidden = false;
        const describe = container.tagName === "FIELDSET" ? [container] : inputsOf(container);
        describe.forEach((el) => setDescribedBy(el, slot.id, true));
        inputsOf(container).forEach((el) => el.setAttribute("aria-invalid", "true"));

        const target = focusTarget(container);
        const link = document.createElement("a");
        link.href = "#" + target.id;
        link.textContent = t("error.link", { question: container.dataset.label, message: words });
        link.addEventListener("click", (event) => {
          event.preventDefault();
          container.scrollIntoView({ block: "center" });
          target.focus({ preventScroll: true });
        });
        const item = document.createElement("li");
        item.append(link);
        list.append(item);
      }
      for (const words of loose) {
        const item = document.createElement("li");
        item.textContent = words;
        list.append(item);
      }
      const summary = $("error-summary");
      summary.hidden = false;
      summary.scrollIntoView({ block: "start" });
      summary.focus({ preventScroll: true });
    }

    // --- sending ------------------------------------------------------------------------
    function showProblem(message, canRetry) {
      $("send-problem-text").textContent = message;
      $("send-retry").hidden = !canRetry;
      $("send-problem").hidden = false;
      (canRetry ? $("send-retry") : $("send-problem")).focus();
    }
    function hideProblem() { $("send-problem").hidden = true; }

    function setSending(on) {
      sending = on;
      sendButton.disabled = on;
      $("send-retry").disabled = on;
      sendButton.textContent = t(on ? "send.sending" : "send.button");
    }

    async function send() {
      if (sending) return;
      const key = storedKey();
      if (!key) { showNotSetUp(); return; }
      const { body, local } = readForm();
      body.language = form.dataset.language;   // the report records the language it was filled in
      const json = JSON.stringify(body);
      // One Idempotency-Key per body: a retry of the same answers reuses it, so a report the
      // server stored before the connection failed is not stored twice.
      if (!attempt || attempt.json !== json) attempt = { json, key: uuid4() };
      hideProblem();
      setSending(true);
      let response;
      try {
        response = await request("/v1/reports", {
          method: "POST",
          headers: {
            "Authorization": "Bearer " + key,
            "Content-Type": "application/json",
            "Idempotency-Key": attempt.key,
          },
          body: json,
        });
      } catch (e) {
        setSending(false);
        showProblem(t("send.retry"), true);
        return;
      }
      setSending(false);
      const data = await jsonOrNull(response);
      if (response.status === 202 && data && data.report_id) {
        attempt = null;
        showOutcome(data.report_id);
      } else if (response.status === 422 && data && data.error && data.error.fields) {
        hideProblem();
        showFieldErrors(data.error.fields, local);
      } else if (response.status === 401) {
        showProblem(t("send.not_set_up"), false);
      } else if (response.status === 409) {
        attempt = null;   // the key was used for other answers: the next try gets a new one
        showProblem(t("send.retry"), true);
      } else if (response.status === 503 || response.status === 429 || response.status >= 500) {
        showProblem(t("send.retry"), true);
      } else {
        showProblem(t("send.failed"), false);
      }
    }

    // --- the outcome ----------------------------------------------------------------------
    function showOutcome(reportId) {
      clearForm();
      form.hidden = true;
      $("languages").hidden = true;   // the report was filled in this language: its outcome is in it
      outcome.hidden = false;
      $("outcome-title").focus();
      window.scrollTo(0, 0);
      poll = { reportId, timer: null, started: Date.now(), last: null };
      pollOnce();
      armIdle();
    }

    async function pollOnce() {
      const current = poll;
      if (!current) return;
      let response = null;
      try {
        response = await request(`/v1/reports/${encodeURIComponent(current.reportId)}`, {
          headers: { "Authorization": "Bearer " + (storedKey() || "") },
        });
      } catch (e) {
        response = null;   // the network hiccuped: try again at the next tick
      }
      if (poll !== current) return;   // reset while the request was in flight
      if (response && (response.status === 401 || response.status === 404)) {
        note(t("outcome.unavailable"));
        return;
      }
      const report = response && response.ok ? await jsonOrNull(response) : null;
      if (poll !== current) return;
      if (report) {
        renderOutcome(report);
        if (SETTLED.includes(report.status)) return;
      }
      if (Date.now() - current.started > SLOW_OUTCOME_MS && !(report && report.care_level)) {
        note(t("outcome.slow"));
      }
      current.timer = setTimeout(pollOnce, POLL_MS);
    }

    function note(message) {
      $("outcome-note").textContent = message;
      $("outcome-note").hidden = false;
    }

    function statusWords(report) {
      switch (report.status) {
        case "received": case "triaged": case "referred": case "waitlisted": return t(`status.${report.status}`);
        case "closed": return t(report.care_level === "self_care" && !report.referral ? "status.closed_self_care" : "status.closed");
        default: return t("status.sent");
      }
    }

    function renderOutcome(report) {
      // Redraw only on change, so the live status is not announced again every 2 seconds.
      const snapshot = JSON.stringify(report);
      if (poll.last === snapshot) return;
      poll.last = snapshot;

      $("outcome-status").textContent = statusWords(report);
      const care = $("outcome-care");
      const level = report.care_level ? ` care-${report.care_level}` : "";
      care.className = "care card" + level;
      care.hidden = !report.care_level;
      const careLevel = $("outcome-care-level");
      careLevel.className = "care-level" + level;
      careLevel.textContent = report.care_level ? t(`care.${report.care_level}`) : "";
      careLevel.hidden = !report.care_level;
      // Safety-netting (when to get help sooner) apart from the rest of the advice. A decision
      // made before the lines had ids has only `advice`: all of it under "What to do".
      const items = (report.advice_items && report.advice_items.length)
        ? report.advice_items : (report.advice || []).map((text) => ({ text, safety_netting: false }));
      fillList("outcome-advice", items.filter((item) => !item.safety_netting).map((item) => item.text));
      const safety = items.filter((item) => item.safety_netting).map((item) => item.text);
      fillList("outcome-safety-list", safety);
      $("outcome-safety").hidden = !safety.length;
      const reasons = (report.reasons || []).map((reason) => reason.text);
      fillList("outcome-reason-list", reasons);
      $("outcome-reasons").hidden = !reasons.length;
      $("print-summary").hidden = !report.care_level;
      if (report.care_level) $("outcome-note").hidden = true;

      const referral = report.referral;
      const appointment = referral && referral.appointment;
      $("outcome-appointment").hidden = !(appointment && referral.status === "booked");
      if (appointment) {
        $("appointment-when").textContent = when(appointment.start, appointment.end);
        $("appointment-provider").textContent = nameOf(appointment.provider);
        $("appointment-location").textContent = nameOf(appointment.location);
      }
      $("outcome-waitlist").hidden = !(referral && referral.status === "waitlisted");
    }

    function fillList(id, lines) {
      $(id).replaceChildren(...lines.map((line) => {
        const item = document.createElement("li");
        item.textContent = line;
        return item;
      }));
    }

    function nameOf(value) {
      if (value && typeof value === "object") return value.name || "";
      return value || "";
    }

    // In the clinic's time zone (CLINIC_TIME_ZONE) and the page's language, e.g. "Monday
    // 30 November 2026, 09:30 to 10:00" or "lunes, 30 de noviembre de 2026, 09:30 a 10:00".
    function when(start, end) {
      const from = new Date(start);
      if (Number.isNaN(from.getTime())) return start || "";
      const language = form.dataset.language;
      const timeZone = document.body.dataset.timeZone || "UTC";
      const day = new Intl.DateTimeFormat(language,
        { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone }).format(from);
      const time = new Intl.DateTimeFormat(language, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone });
      const to = end ? new Date(end) : null;
      if (!to || Number.isNaN(to.getTime())) return `${day}, ${time.format(from)}`;
      return t("appointment.when", { day, start: time.format(from), end: time.format(to) });
    }

    // --- clearing -------------------------------------------------------------------------
    function clearForm() {
      form.reset();
      clearErrors();
      hideProblem();
      syncHomeCare();
      attempt = null;
    }

    function clearOutcome() {
      if (poll && poll.timer) clearTimeout(poll.timer);
      poll = null;
      $("outcome-status").textContent = t("status.sent");
      $("outcome-care").hidden = true;
      $("outcome-care-level").textContent = "";
      $("outcome-care-level").hidden = true;
      for (const id of ["outcome-advice", "outcome-safety-list", "outcome-reason-list"]) $(id).replaceChildren();
      for (const id of ["outcome-safety", "outcome-reasons", "print-summary"]) $(id).hidden = true;
      for (const id of ["appointment-when", "appointment-provider", "appointment-location"]) $(id).textContent = "";
      $("outcome-appointment").hidden = true;
      $("outcome-waitlist").hidden = true;
      $("outcome-note").hidden = true;
    }

    function startOver() {
      clearTimeout(idleTimer);
      clearTimeout(graceTimer);
      focusBeforeIdle = null;
      if (idleDialog.open) idleDialog.close();
      clearOutcome();
      clearForm();
      // The next patient starts in the kiosk's own language, not the one this patient chose.
      if ("languageChosen" in document.body.dataset) { window.location.replace(window.location.pathname); return; }
      if (!storedKey()) { showNotSetUp(); return; }
      outcome.hidden = true;
      $("languages").hidden = false;
      form.hidden = false;
      window.scrollTo(0, 0);
      $("form-title").focus();
    }

    // --- inactivity: a patient who walks away must not leave their answers on the screen ---
    function armIdle() {
      clearTimeout(idleTimer);
      if (!idleDialog.open) idleTimer = setTimeout(askStillThere, IDLE_WARN_MS);
    }

    // Said before clearing, on the outcome and on a form with answers (an empty form has
    // nothing to clear).
    function askStillThere() {
      if (outcome.hidden && !formHasAnswers()) { armIdle(); return; }
      focusBeforeIdle = document.activeElement;
      idleDialog.showModal();
      $("idle-stay").focus();
      graceTimer = setTimeout(startOver, IDLE_GRACE_MS);
    }

    function stillHere() {
      clearTimeout(graceTimer);
      if (idleDialog.open) idleDialog.close();
      if (focusBeforeIdle && focusBeforeIdle.isConnected && focusBeforeIdle !== document.body) {
        focusBeforeIdle.focus();
      }
      focusBeforeIdle = null;
      armIdle();
    }

    for (const type of ["pointerdown", "keydown", "input", "focusin"]) {
      document.addEventListener(type, () => { if (!idleDialog.open) armIdle(); }, { passive: true });
    }
    $("idle-stay").addEventListener("click", stillHere);
    idleDialog.addEventListener("cancel", stillHere);   // Escape also means "still here"

    // A page restored from the back-forward cache would still show the last patient's answers.
    window.addEventListener("pageshow", (event) => { if (event.persisted) startOver(); });

    function showNotSetUp() {
      form.hidden = true;
      outcome.hidden = true;
      $("not-set-up").hidden = false;
    }

    form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
    $("send-retry").addEventListener("click", send);
    $("new-report").addEventListener("click", startOver);
    $("print-summary").addEventListener("click", () => window.print());
    form.addEventListener("change", (event) => {
      if (event.target.name === "home_care.measures") syncHomeCare();
    });

    if (!storedKey()) { showNotSetUp(); return; }
    clearForm();
    form.hidden = false;
    armIdle();
  }

  function init() {
    $("loading").hidden = true;
    if (document.body.dataset.page === "setup") initSetup();
    else initForm();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
