"""The console's API keys card: each key's modules, state, expiry and last use in both languages; the create form
takes an expiry date and modules; an expired key's sign-in and a scoped key's refusal say so in words. Same browser
and server as test_console.py (its fixtures)."""

# ruff: noqa: F811  (the fixtures imported from test_console.py are the tests' arguments)
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.serving.helpers import bearer
from tests.web.test_console import browser, page, server, sign_in, wait_js  # noqa: F401


def test_keys_card_shows_scope_expiry_last_use_and_state_and_creates_a_scoped_expiring_key(page, server):
    sign_in(page, server.acme.admin)
    page.click("#tab-admin")
    page.wait_for_selector("#keys-table tbody tr")
    heads = page.locator("#keys-table th").all_inner_texts()
    assert {"호출 가능 모듈", "상태", "만료 (UTC)", "마지막 사용 (UTC)", "생성 (UTC)"} <= set(heads), heads
    own = page.locator("#keys-table tr.own")
    assert own.locator("td.state").inner_text() == "사용 중"
    assert own.locator("td.modules").inner_text() == "구독한 모든 모듈"

    day = (datetime.now(UTC) + timedelta(days=20)).date()
    page.fill("#key-name", "line-9")
    page.select_option("#key-role", "mes")
    page.fill("#key-expires", day.isoformat())
    page.check('#key-modules input[value="energy"]')
    page.check('#key-modules input[value="quality"]')
    page.click("#key-create")
    page.wait_for_selector("#new-key:not([hidden])")
    token = page.input_value("#new-key-value")
    row = page.locator("#keys-table tbody tr", has_text="line-9")
    row.wait_for()
    key_id = row.get_attribute("data-key")
    end = day + timedelta(days=1)
    assert row.locator("td.modules").get_attribute("data-modules") == "quality,energy"
    assert row.locator("td.modules").inner_text() == "품질, 에너지"
    assert row.locator("td.expires").inner_text() == f"{end.isoformat()} 00:00:00"
    assert row.locator("td.last-used").inner_text() == "–" and row.locator("td.state").inner_text() == "사용 중"
    # the form is cleared for the next key
    assert page.input_value("#key-expires") == "" and page.locator("#key-modules input:checked").count() == 0
    listed = {k["key_id"]: k for k in httpx.get(server.base + "/v1/apikeys", headers=bearer(server.acme.admin)).json()}
    assert listed[key_id]["modules"] == ["quality", "energy"]
    assert listed[key_id]["expires_at"].startswith(f"{end.isoformat()}T00:00:00")
    # the scoped key calls its modules only
    assert httpx.get(server.base + "/v1/energy/status", headers=bearer(token)).status_code == 200
    assert httpx.get(server.base + "/v1/scheduling/status", headers=bearer(token)).json()["error"]["code"] == \
        "key_scope"

    page.select_option("#lang-select", "en")
    page.wait_for_selector("#keys-table th >> text=Last used (UTC)")
    heads = page.locator("#keys-table th").all_inner_texts()
    assert {"Modules", "State", "Expires (UTC)", "Last used (UTC)", "Created (UTC)", "Revoked (UTC)"} <= set(heads)
    row = page.locator(f'#keys-table tr[data-key="{key_id}"]')
    assert row.locator("td.modules").inner_text() == "Quality, Energy" and row.locator("td.state").inner_text() == \
        "Active"
    assert page.inner_text('label[for="key-expires"]') == "Expires on (optional)"
    assert "every subscribed module" in page.inner_text("#key-modules legend")
    page.once("dialog", lambda d: d.accept())
    page.click(f'#keys-table button[data-revoke="{key_id}"]')
    page.locator(f'#keys-table tr[data-key="{key_id}"] td.state:text-is("Revoked")').wait_for()


def test_an_expired_key_signs_in_with_its_own_message_and_a_bad_expiry_is_refused_in_words(page, server):
    soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    r = httpx.post(server.base + "/v1/apikeys", json={"role": "mes", "name": "brief",
                                                       "expires_at": soon.isoformat().replace("+00:00", "Z")},
                   headers=bearer(server.bravo.admin))
    assert r.status_code == 201, r.text
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
    page.fill("#api-key", r.json()["api_key"])
    page.click("#signin-btn")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    assert "API 키가 만료되었습니다" in page.inner_text("#status") and page.is_visible("#signin")

    sign_in(page, server.bravo.admin)
    page.click("#tab-admin")
    page.wait_for_selector("#keys-table tbody tr")
    row = page.locator(f'#keys-table tr[data-key="{r.json()["key_id"]}"]')
    assert row.get_attribute("data-state") == "expired" and row.locator("td.state").inner_text() == "만료됨"


def test_the_badge_says_when_the_signed_in_key_expires(page, server):
    """Signed in with an expiring key, the tenant badge gives its expiry (from GET /v1/tenant), in both languages;
    a key without one says nothing of it."""
    day = (datetime.now(UTC) + timedelta(days=10)).date()
    r = httpx.post(server.base + "/v1/apikeys", json={"role": "planner", "name": "ten-days", "expires_at":
                                                       day.isoformat()}, headers=bearer(server.bravo.admin))
    assert r.status_code == 201, r.text
    end = (day + timedelta(days=1)).isoformat()
    sign_in(page, r.json()["api_key"])
    assert page.inner_text("#tenant-badge").endswith(f" · 키 만료 {end} 00:00 UTC"), page.inner_text("#tenant-badge")
    page.select_option("#lang-select", "en")
    wait_js(page, "document.getElementById('tenant-badge').textContent.includes('key expires')")
    assert page.inner_text("#tenant-badge").endswith(f" · key expires {end} 00:00 UTC")
    page.click("#signout-btn")
    sign_in(page, server.bravo.admin)
    assert "expires" not in page.inner_text("#tenant-badge") and "만료" not in page.inner_text("#tenant-badge")
