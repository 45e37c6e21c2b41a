"""Every operation of the OpenAPI schema, fuzzed by schemathesis in-process on the live store: never a 5xx.

Positive and negative cases (wrong types, missing fields, out-of-range values) go to every route, and routes with
ids in the path are fuzzed once more on objects that exist, so that handlers run past the 404. Requests that bring
no key of their own get a real one — the admin key on admin routes, an advertiser's elsewhere — so that the fuzzer
reaches the handlers instead of collecting 401s. (schemathesis' pytest plugin does not run under pytest 9, hence
the explicit loop over operations.)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from adpilot.config import Settings
from adpilot.serve.app import create_app
from adpilot.serve.main import vet_copy
from adpilot.serve.wiring import engine_factory

ADMIN_ROUTES = {("POST", "/v1/advertisers"), ("POST", "/v1/admin/refresh")}
EXAMPLES = 10  # per strategy: positive, negative, positive with a real key and real ids
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                database=None)


def _owned_objects(client: TestClient, admin_key: str) -> tuple[str, dict[str, str]]:
    """A fresh advertiser's key and the ids of a campaign, ad and creative it owns."""
    made = client.post("/v1/advertisers", json={"name": "fuzzer", "domain": "fuzz.example"},
                       headers={"X-API-Key": admin_key})
    assert made.status_code == 201, made.text
    key = {"X-API-Key": made.json()["api_key"]}
    campaign = client.post("/v1/campaigns", json={"name": "f", "total_budget": 50, "daily_budget": 5}, headers=key)
    ad = client.post("/v1/ads", json={"campaign_id": campaign.json()["campaign_id"], "product_id": "p1"}, headers=key)
    creative = client.post("/v1/creatives", json={"ad_id": ad.json()["ad_id"], "text": "轻盈透气的跑步鞋"}, headers=key)
    assert creative.status_code == 201, creative.text
    ids = {"campaign_id": campaign.json()["campaign_id"], "ad_id": ad.json()["ad_id"],
           "creative_id": creative.json()["creative_id"]}
    return made.json()["api_key"], ids


def _fuzz(operation: Any, strategy: Any, keys: dict[str, str], seen: Counter[tuple[str, int]]) -> None:
    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        sent = {k.lower() for k in (case.headers or {})}
        headers = {}
        if not sent & {"x-api-key", "authorization"}:
            role = "admin" if (case.method.upper(), case.path) in ADMIN_ROUTES else "advertiser"
            headers = {"X-API-Key": keys[role]}
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
        seen[(operation.label, response.status_code)] += 1

    run()


def test_no_operation_answers_5xx(live_store: tuple[Path, Settings]) -> None:
    _, config = live_store
    app = create_app(config, engine_factory(config), vet_copy)
    with TestClient(app) as client:
        advertiser_key, ids = _owned_objects(client, config.admin_api_key)
    keys = {"admin": config.admin_api_key, "advertiser": advertiser_key}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations, seen = 0, Counter[tuple[str, int]]()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        known = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
        role = "admin" if (operation.method.upper(), operation.path) in ADMIN_ROUTES else "advertiser"
        strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE),
                      operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known,
                                            headers={"x-api-key": keys[role]})]
        for strategy in strategies:
            try:
                _fuzz(operation, strategy, keys, seen)
            except Unsatisfiable:  # nothing to vary (no parameters, no body): the positive case already ran
                continue
            except Exception as error:  # noqa: BLE001 — collect every operation's failure, report them together
                failures.append(f"{operation.label}: {str(error)[:1500]}")
                break
    assert operations >= 15, f"the schema lists only {operations} operations"
    assert not failures, "\n\n".join(failures)
    labels = {label for label, _ in seen}
    answered = {label for label, code in seen if code < 300}
    # random tokens are never genuine (events, win notices), and new ads / creatives must name an owned parent inside the body
    unreachable = {"POST /v1/events", "GET /v1/win", "POST /v1/ads", "POST /v1/creatives"}
    assert labels - answered <= unreachable, f"never answered 2xx: {sorted(labels - answered - unreachable)}"
    with TestClient(app) as client:  # whatever the fuzzer stored, the snapshot still builds from it
        refreshed = client.post("/v1/admin/refresh", headers={"X-API-Key": config.admin_api_key})
        assert refreshed.status_code == 200, refreshed.text
