"""``GET /console``: one static page listing an advertiser's campaigns with spend, read from the management API.

The page holds no data and no key: the advertiser types the API key (or opens ``/console#key=...``), and the
browser calls ``GET /v1/campaigns`` and each campaign's ``/report`` with it, so the console sees exactly what the
key may see. Text from the API is inserted with ``textContent``, never as HTML.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>adpilot console</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 2em; }
 table { border-collapse: collapse; margin-top: 1em; }
 th, td { border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: right; }
 th:first-child, td:first-child, td:nth-child(2) { text-align: left; }
 #status { color: #a00; margin-top: 1em; }
</style></head>
<body>
<h1>adpilot campaigns</h1>
<form id="login"><label>API key <input id="key" type="password" size="40" autocomplete="off"></label>
 <button type="submit">Show campaigns</button></form>
<div id="status"></div>
<table id="campaigns" hidden><thead><tr><th>campaign</th><th>status</th><th>daily budget</th><th>total budget</th>
 <th>impressions</th><th>clicks</th><th>spend</th></tr></thead><tbody></tbody></table>
<script>
const $ = (id) => document.getElementById(id);
async function api(path, key) {
  const response = await fetch(path, {headers: {"X-API-Key": key}});
  const body = await response.json();
  if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
  return body;
}
function cell(row, value) { const td = row.insertCell(); td.textContent = value; }
async function show(key) {
  $("status").textContent = "loading…";
  const rows = $("campaigns").tBodies[0];
  rows.replaceChildren();
  try {
    const campaigns = await api("/v1/campaigns", key);
    const reports = await Promise.all(campaigns.map((c) => api(`/v1/campaigns/${encodeURIComponent(c.campaign_id)}/report`, key)));
    campaigns.forEach((c, i) => {
      const row = rows.insertRow();
      row.dataset.campaign = c.campaign_id;
      cell(row, c.name || c.campaign_id); cell(row, c.status || "");
      cell(row, (c.daily_budget ?? 0).toFixed(2)); cell(row, (c.total_budget ?? 0).toFixed(2));
      cell(row, reports[i].impressions); cell(row, reports[i].clicks); cell(row, reports[i].spend.toFixed(2));
    });
    $("campaigns").hidden = false;
    $("status").textContent = campaigns.length ? "" : "no campaigns yet";
  } catch (error) {
    $("campaigns").hidden = true;
    $("status").textContent = error.message;
  }
}
$("login").addEventListener("submit", (event) => { event.preventDefault(); show($("key").value); });
const given = new URLSearchParams(location.hash.slice(1)).get("key");
if (given) { $("key").value = given; show(given); }
</script>
</body></html>
"""


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console() -> HTMLResponse:
    return HTMLResponse(PAGE)
