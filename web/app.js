// WealthWise browser client: plain ES module, no dependencies, same-origin only.
// Session cookies are HttpOnly; the browser sends them with `credentials: "same-origin"`.

const ENDPOINT = "/graphql";
const PAGE_SIZE = 25;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- GraphQL

class GraphQLFailure extends Error {
  constructor(errors, data = null) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.data = data;
  }
  get codes() {
    return this.errors.map((e) => e.extensions?.code).filter(Boolean);
  }
  get unauthenticated() {
    return this.codes.includes("UNAUTHENTICATED");
  }
}

async function post(query, variables) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new GraphQLFailure([{ message: `Network error: ${err.message}`, extensions: { code: "NETWORK_ERROR" } }]);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new GraphQLFailure([{
      message: `Unexpected response from server (HTTP ${response.status})`,
      extensions: { code: `HTTP_${response.status}` },
    }]);
  }
  if (body.errors?.length) throw new GraphQLFailure(body.errors, body.data ?? null);
  return body.data;
}

const REFRESH = `mutation Refresh { refreshSession { user { id } } }`;
let refreshing = null; // one refresh at a time, shared by concurrent callers

function refreshOnce() {
  refreshing ??= post(REFRESH).then(() => true, () => false).finally(() => { refreshing = null; });
  return refreshing;
}

/** Run an operation; on UNAUTHENTICATED refresh the session once and retry. */
async function gql(query, variables = {}) {
  try {
    return await post(query, variables);
  } catch (err) {
    if (!(err instanceof GraphQLFailure) || !err.unauthenticated) throw err;
    if (!(await refreshOnce())) throw err;
    return post(query, variables);
  }
}

// ---------------------------------------------------------------- Operations

const MONEY = `amount currency`;

const LOGIN = `mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { user { name } }
}`;

const LOGOUT = `mutation Logout { logout { sessionsEnded } }`;

const LOGIN_PROVIDERS = `query LoginProviders { loginProviders { name displayName loginUrl } }`;

// The `login_error` codes a failed provider sign-in redirects back with (see api/oidc.py).
const LOGIN_ERRORS = {
  UNKNOWN_PROVIDER: "That sign-in provider is not configured here.",
  PROVIDER_UNAVAILABLE: "The sign-in provider could not be reached. Try again in a moment.",
  PROVIDER_DENIED: "The sign-in was cancelled at the provider.",
  STATE_MISMATCH: "The sign-in expired or was started in another window. Please try again.",
  TOKEN_EXCHANGE_FAILED: "The sign-in provider refused to complete the sign-in. Please try again.",
  INVALID_ID_TOKEN: "The sign-in provider's answer could not be verified.",
  EMAIL_NOT_VERIFIED: "Your email address is not verified with that provider, so it cannot be used to sign in.",
  LOGIN_FAILED: "The sign-in could not be completed. Please try again.",
};

const DASHBOARD = `query Dashboard($start: Date!, $end: Date!) {
  me { user { id name email } }
  workspace { id name baseCurrency role }
  netWorth(months: 12) {
    net { ${MONEY} } assets { ${MONEY} } liabilities { ${MONEY} }
    history { month net { ${MONEY} } }
    unconverted { ${MONEY} }
  }
  accounts { id name kind currency institution maskedNumber balance { ${MONEY} } }
  spendingSummary(period: { start: $start, end: $end }, groupBy: CATEGORY) {
    total { ${MONEY} }
    rows { key label postingCount amount { ${MONEY} } }
  }
}`;

const TRANSACTIONS = `query Transactions($first: Int!, $after: String, $filter: TransactionFilter) {
  transactions(first: $first, after: $after, filter: $filter) {
    edges { node {
      id date kind payee narration
      amount { ${MONEY} }
      category { name }
      account { name }
      tags { id name }
    } }
    pageInfo { hasNextPage endCursor }
  }
}`;

// ---------------------------------------------------------------- Formatting

const moneyFormats = new Map();

function formatMoney(money, { signed = false } = {}) {
  if (!money) return "—";
  const key = `${money.currency}|${signed}`;
  let fmt = moneyFormats.get(key);
  if (fmt === undefined) {
    try {
      fmt = new Intl.NumberFormat(undefined, {
        style: "currency",
        currency: money.currency,
        signDisplay: signed ? "exceptZero" : "auto",
      });
    } catch {
      fmt = null; // not an ISO currency code: fall back to the raw string
    }
    moneyFormats.set(key, fmt);
  }
  // The server's decimal string is exact; Number() is used for display only.
  return fmt ? fmt.format(Number(money.amount)) : `${money.amount} ${money.currency}`;
}

function signOf(amount) {
  const n = Number(amount);
  return n < 0 ? "negative" : n > 0 ? "positive" : "zero";
}

const dateFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const monthFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "long" });

function parseDay(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  return new Date(y, m - 1, d || 1); // local time: no UTC day shift
}

function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function currentMonth() {
  const now = new Date();
  return {
    start: isoDay(new Date(now.getFullYear(), now.getMonth(), 1)),
    end: isoDay(new Date(now.getFullYear(), now.getMonth() + 1, 0)),
    label: monthFormat.format(now),
  };
}

const KIND_LABELS = {
  CHECKING: "Checking", SAVINGS: "Savings", CREDIT_CARD: "Credit card", CASH: "Cash",
  LOAN: "Loan", INVESTMENT: "Investment", WALLET: "Wallet",
};

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  return el;
}

// ---------------------------------------------------------------- Errors

function showErrors(err) {
  const errors = err instanceof GraphQLFailure
    ? err.errors
    : [{ message: String(err?.message ?? err), extensions: { code: "CLIENT_ERROR" } }];
  const list = $("error-list");
  list.replaceChildren(...errors.map((e) => {
    const code = e.extensions?.code;
    const where = e.path?.length ? h("span", { class: "where" }, ` (${e.path.join(".")})`) : null;
    return h("li", {}, e.message, where, code ? h("code", { class: "code" }, code) : null);
  }));
  $("errors").hidden = false;
}

function clearErrors() {
  $("errors").hidden = true;
  $("error-list").replaceChildren();
}

// ---------------------------------------------------------------- Views

function showLogin() {
  $("booting").hidden = true;
  $("app-view").hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("login-view").hidden = false;
  $("login-submit").disabled = false;
  $("email").focus();
  showProviders();
}

let providersShown = false;

/** Buttons for the configured sign-in providers (plain links: the flow is a navigation). */
async function showProviders() {
  if (providersShown) return;
  providersShown = true;
  let providers = [];
  try {
    providers = (await post(LOGIN_PROVIDERS)).loginProviders;
  } catch {
    providersShown = false; // password sign-in still works; try again next time
    return;
  }
  $("provider-list").replaceChildren(...providers.map((p) =>
    h("li", {}, h("a", { class: "btn", href: p.loginUrl }, `Sign in with ${p.displayName}`))));
  $("providers").hidden = providers.length === 0;
}

/** A provider sign-in that failed comes back as `/?login_error=CODE`: show it once. */
function takeLoginError() {
  const params = new URLSearchParams(window.location.search);
  const code = params.get("login_error");
  if (!code) return;
  params.delete("login_error");
  const query = params.toString();
  window.history.replaceState(null, "", window.location.pathname + (query ? `?${query}` : "") + window.location.hash);
  showErrors(new GraphQLFailure([{
    message: LOGIN_ERRORS[code] ?? "The sign-in could not be completed.",
    extensions: { code },
  }]));
}

function showApp() {
  $("booting").hidden = true;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("who").hidden = false;
  $("logout").hidden = false;
}

function renderHeader(me, workspace) {
  $("user-name").textContent = me.user.name;
  $("workspace-name").textContent = workspace.name;
  $("workspace-name").title = `${workspace.role.toLowerCase()} · base currency ${workspace.baseCurrency}`;
}

function sparkline(points) {
  const values = points.map((p) => Number(p.net.amount));
  const width = 240, height = 48, pad = 3;
  const box = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "spark", role: "img", preserveAspectRatio: "none",
  });
  if (values.length < 2) return box;
  const min = Math.min(...values), max = Math.max(...values);
  const span = max - min || 1;
  const x = (i) => pad + (i * (width - 2 * pad)) / (values.length - 1);
  const y = (v) => height - pad - ((v - min) * (height - 2 * pad)) / span;
  const coords = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  const first = points[0], last = points[points.length - 1];
  const title = svg("title");
  title.textContent =
    `Net worth over ${points.length} months: ${formatMoney(first.net)} (${first.month}) to ` +
    `${formatMoney(last.net)} (${last.month})`;
  box.append(
    title,
    svg("polygon", {
      class: "spark-area",
      points: `${x(0)},${height} ${coords.join(" ")} ${x(values.length - 1)},${height}`,
    }),
    svg("polyline", { class: "spark-line", points: coords.join(" "), fill: "none" }),
    svg("circle", { class: "spark-dot", cx: x(values.length - 1), cy: y(values.at(-1)), r: 2.5 }),
  );
  return box;
}

function renderNetWorth(nw) {
  const net = $("nw-net");
  net.textContent = formatMoney(nw.net);
  net.dataset.sign = signOf(nw.net.amount);
  $("nw-assets").textContent = formatMoney(nw.assets);
  $("nw-liabilities").textContent = formatMoney(nw.liabilities);
  $("nw-spark").replaceChildren(sparkline(nw.history));
  const note = $("nw-note");
  note.hidden = !nw.unconverted.length;
  note.textContent = nw.unconverted.length
    ? `Not included (no exchange rate): ${nw.unconverted.map((m) => formatMoney(m)).join(", ")}`
    : "";
}

function renderAccounts(accounts) {
  const list = $("accounts");
  if (!accounts.length) {
    list.replaceChildren(h("li", { class: "muted" }, "No accounts yet."));
    return;
  }
  list.replaceChildren(...accounts.map((a) => {
    const meta = [KIND_LABELS[a.kind] ?? a.kind, a.institution, a.maskedNumber].filter(Boolean);
    return h("li", { class: "account" },
      h("div", { class: "account-main" },
        h("span", { class: "account-name" }, a.name),
        h("span", { class: "account-meta" }, meta.join(" · "))),
      h("span", { class: "amount", "data-sign": signOf(a.balance.amount) }, formatMoney(a.balance)));
  }));
}

function renderSpending(summary, month) {
  $("sp-period").textContent = month.label;
  $("sp-total").textContent = summary.rows.length ? `${formatMoney(summary.total)} in total` : "";
  const list = $("spending");
  if (!summary.rows.length) {
    list.replaceChildren(h("li", { class: "muted" }, "No spending this month yet."));
    return;
  }
  const max = Math.max(...summary.rows.map((r) => Math.abs(Number(r.amount.amount)))) || 1;
  list.replaceChildren(...summary.rows.map((row) => {
    const fill = h("span", { class: "bar-fill" });
    // CSSOM, not a style attribute: allowed under the page's style-src 'self'.
    fill.style.width = `${Math.max(1, (Math.abs(Number(row.amount.amount)) / max) * 100).toFixed(1)}%`;
    return h("li", { class: "bar" },
      h("span", { class: "bar-label" }, row.label),
      h("span", { class: "bar-amount" }, formatMoney(row.amount)),
      h("span", { class: "bar-track", "aria-hidden": "true" }, fill));
  }));
}

function transactionRow(tx) {
  const when = parseDay(tx.date);
  const category = tx.category?.name ?? (tx.kind === "TRANSFER" ? "Transfer" : tx.kind === "SPLIT" ? "Split" : "—");
  return h("tr", {},
    h("td", { "data-label": "Date" }, h("time", { datetime: tx.date }, dateFormat.format(when))),
    h("td", { "data-label": "Payee", class: "payee" },
      h("span", {}, tx.payee || tx.narration || "—"),
      h("span", { class: "sub" }, tx.account?.name ?? "")),
    h("td", { "data-label": "Category" }, category),
    h("td", { "data-label": "Amount", class: "num amount", "data-sign": signOf(tx.amount.amount) },
      formatMoney(tx.amount, { signed: true })),
    h("td", { "data-label": "Tags" },
      tx.tags.length
        ? h("div", { class: "tags" }, tx.tags.map((t) => h("span", { class: "tag" }, t.name)))
        : h("span", { class: "muted" }, "—")));
}

// ---------------------------------------------------------------- Transactions paging

const txState = { text: "", after: null, seq: 0, loading: false };

async function loadTransactions({ reset }) {
  const seq = ++txState.seq; // a newer search makes this one stale
  if (reset) txState.after = null;
  txState.loading = true;
  const more = $("load-more");
  const status = $("tx-status");
  more.disabled = true;
  $("tx-body").closest("table").setAttribute("aria-busy", "true");
  status.textContent = reset ? "Loading transactions…" : "Loading more…";
  const filter = txState.text ? { text: txState.text } : null;
  try {
    const data = await gql(TRANSACTIONS, { first: PAGE_SIZE, after: txState.after, filter });
    if (seq !== txState.seq) return;
    const { edges, pageInfo } = data.transactions;
    const rows = edges.map((e) => transactionRow(e.node));
    const body = $("tx-body");
    if (reset) body.replaceChildren(...rows); else body.append(...rows);
    txState.after = pageInfo.endCursor;
    more.hidden = !pageInfo.hasNextPage;
    const shown = body.children.length;
    status.textContent = shown
      ? `${shown} transaction${shown === 1 ? "" : "s"} shown${pageInfo.hasNextPage ? "" : " (all)"}`
      : txState.text ? `No transactions match “${txState.text}”.` : "No transactions yet.";
  } catch (err) {
    if (seq !== txState.seq) return;
    if (err instanceof GraphQLFailure && err.unauthenticated) return showLogin();
    status.textContent = "";
    showErrors(err);
  } finally {
    if (seq === txState.seq) {
      txState.loading = false;
      more.disabled = false;
      $("tx-body").closest("table").removeAttribute("aria-busy");
    }
  }
}

// ---------------------------------------------------------------- Dashboard

async function loadDashboard() {
  const month = currentMonth();
  let data;
  try {
    data = await gql(DASHBOARD, { start: month.start, end: month.end });
  } catch (err) {
    if (err instanceof GraphQLFailure && err.unauthenticated) {
      showLogin();
      return false;
    }
    if (!(err instanceof GraphQLFailure) || !err.data?.me) {
      showErrors(err);
      if (!$("app-view").hidden) return false;
      showLogin();
      return false;
    }
    showErrors(err); // partial data: render what came back
    data = err.data;
  }
  showApp();
  renderHeader(data.me, data.workspace ?? { name: "—", role: "", baseCurrency: "" });
  if (data.netWorth) renderNetWorth(data.netWorth);
  if (data.accounts) renderAccounts(data.accounts);
  if (data.spendingSummary) renderSpending(data.spendingSummary, month);
  txState.text = $("search").value.trim();
  await loadTransactions({ reset: true });
  return true;
}

// ---------------------------------------------------------------- Events

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  if (!form.reportValidity()) return;
  clearErrors();
  const button = $("login-submit");
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    await post(LOGIN, { email: $("email").value.trim(), password: $("password").value });
    $("password").value = "";
    await loadDashboard();
  } catch (err) {
    showErrors(err);
    $("password").focus();
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
});

$("logout").addEventListener("click", async () => {
  clearErrors();
  try {
    await gql(LOGOUT);
  } catch (err) {
    if (!(err instanceof GraphQLFailure && err.unauthenticated)) showErrors(err);
  }
  $("tx-body").replaceChildren();
  $("search").value = "";
  showLogin();
});

$("dismiss-errors").addEventListener("click", clearErrors);

let searchTimer = null;
function search({ force = false } = {}) {
  clearTimeout(searchTimer);
  const text = $("search").value.trim();
  if (text === txState.text && !force) return;
  txState.text = text;
  loadTransactions({ reset: true });
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  search({ force: true });
});
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, 300);
});

$("load-more").addEventListener("click", () => loadTransactions({ reset: false }));

takeLoginError();
loadDashboard();
