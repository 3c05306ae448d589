"""A real browser (Playwright driving Debian's chromium, headless; no downloaded
browser) through the provider's real login form: land in the tenant, use the API with
the session, switch tenants, sign out of both, and accept an invitation."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.auth.conftest import Site, member
from tests.conftest import TenantHandle, make_tenant

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        msg = f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context()
    # nothing leaves the machine (the provider's pages link a web font)
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p
    context.close()


def _log_in_at_provider(page: Any, login: str) -> None:
    page.fill('input[name="login"]', login)
    page.fill('input[name="password"]', "any-password")
    page.click('button[type="submit"]')
    page.wait_for_load_state("domcontentloaded")
    if page.locator('input[name="prompt"][value="consent"]').count():
        page.click('button[type="submit"]')


def test_a_browser_signs_in_uses_the_api_switches_and_signs_out(
    page: Any, site: Site, tenant_a: TenantHandle, client: Any, ops_headers: dict[str, str]
) -> None:
    other = make_tenant(client, ops_headers)
    email = f"browser-{uuid.uuid4().hex[:6]}@a.example"
    member(site, tenant_a.id, email, "accountant")
    member(site, other.id, email, "viewer")
    page.goto(f"{site.base}/auth/login", wait_until="domcontentloaded")
    page.fill('input[name="tenant"]', tenant_a.slug)
    page.click("text=Continue >> nth=0")
    page.wait_for_url(re.compile(re.escape(site.idp.issuer)))
    _log_in_at_provider(page, email)
    page.wait_for_url(f"{site.base}/app/")
    assert page.text_content("#email") == email
    assert tenant_a.slug in (page.text_content("#tenant") or "")

    api = page.context.request  # the browser's cookies
    me = api.get(f"{site.base}/api/v1/me").json()
    assert me["principal"]["kind"] == "user"
    assert me["tenant"]["slug"] == tenant_a.slug
    assert api.get(f"{site.base}/api/v1/ledger/accounts").status == 200
    account = {
        "code": f"B{uuid.uuid4().hex[:6]}",
        "name": "Browser",
        "type": "asset",
        "currency": "USD",
    }
    url = f"{site.base}/api/v1/ledger/accounts"
    assert api.post(url, data=account).status == 403  # no X-CSRF-Token
    assert api.post(url, data=account, headers={"X-CSRF-Token": "forged"}).status == 403
    ok = api.post(url, data=account, headers={"X-CSRF-Token": me["csrf_token"]})
    assert ok.status == 201, ok.text()

    # switch with the home page's own form; a viewer there cannot post
    page.click(f"button:has-text('{other.slug}')")
    page.wait_for_url(f"{site.base}/app/")
    assert other.slug in (page.text_content("#tenant") or "")
    me = api.get(f"{site.base}/api/v1/me").json()
    assert me["tenant"]["slug"] == other.slug
    denied = api.post(
        url, data={**account, "code": "V1"}, headers={"X-CSRF-Token": me["csrf_token"]}
    )
    assert denied.status == 403

    # sign out: ours, then the provider's (its confirmation page)
    page.click("button:has-text('Sign out')")
    page.wait_for_url(re.compile(re.escape(site.idp.issuer)))
    page.click('button[name="logout"][value="yes"]')
    page.wait_for_url(re.compile(re.escape(f"{site.base}/auth/signed-out")))
    assert api.get(f"{site.base}/api/v1/me").status == 401
    page.goto(f"{site.base}/auth/login?tenant={tenant_a.slug}", wait_until="domcontentloaded")
    assert page.locator('input[name="login"]').count() == 1  # the provider asks again


def test_a_new_person_accepts_an_invitation_in_a_browser(
    page: Any, site: Site, tenant_a: TenantHandle, client: Any
) -> None:
    email = f"invitee-{uuid.uuid4().hex[:6]}@a.example"
    r = client.post(
        "/api/v1/invitations", json={"email": email, "role": "warehouse"}, headers=tenant_a.headers
    )
    assert r.status_code == 201
    link = r.get_json()["url"].replace("http://localhost", site.base)
    page.goto(link, wait_until="domcontentloaded")
    page.click("#accept")
    page.wait_for_url(re.compile(re.escape(site.idp.issuer)))
    _log_in_at_provider(page, email)
    page.wait_for_url(f"{site.base}/app/")
    assert page.text_content("#role") == "warehouse"
    assert page.text_content("#email") == email
