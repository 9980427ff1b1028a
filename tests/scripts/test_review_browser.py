"""The review page in a real headless browser (Debian's chromium, driven by playwright): recent served answers are
listed with question, answer and citations, and thumbs up, thumbs down and a corrected answer are recorded on the
traces. Skipped only where chromium is not installed (.ci/run installs it)."""

import shutil
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from optimizers.feedback import CORRECT_ANSWER, RATING
from optimizers.review_page import create_review_app
from tests.optimizers.served_requests import assessments, served_requests
from tests.pipeline.serving.tessera_models import ADMIN_ANSWER, ADMIN_QUESTION, DENIED_WORD, VAULT_QUESTION

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)")


@pytest.fixture
def review_page(tmp_path_factory):
    """(base URL, trace ids of the admin and vault answers) of a review page served by uvicorn on loopback."""
    served = served_requests(tmp_path_factory)
    admin, vault = served.ask(ADMIN_QUESTION, VAULT_QUESTION)
    app = create_review_app("tester", experiment_ids=[served.experiment_id])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the review page did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", admin, vault
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_a_reviewer_rates_and_corrects_served_answers_in_the_browser(review_page, browser):
    base, admin, vault = review_page
    page = browser.new_page()
    page.goto(base + "/")

    admin_card, vault_card = page.locator(f'[id="{admin}"]'), page.locator(f'[id="{vault}"]')
    assert page.locator("#reviewer").inner_text() == "tester"
    assert admin_card.locator(".question").inner_text() == ADMIN_QUESTION
    assert ADMIN_ANSWER in admin_card.locator(".answer").inner_text()
    assert "admin.md" in admin_card.locator(".citations").inner_text()
    assert "blocked by a guard" in vault_card.inner_text() and DENIED_WORD not in vault_card.inner_text()
    assert admin_card.locator(".rating").inner_text() == "not rated"

    admin_card.locator("button.up").click()
    page.wait_for_selector("#notice")
    assert page.locator(f'[id="{admin}"] .rating').inner_text() == "rated good"

    page.locator(f'[id="{vault}"] button.down').click()
    page.wait_for_selector("#notice")
    page.locator(f'[id="{admin}"] summary').click()
    page.locator(f'[id="{admin}"] textarea').fill("Port 8443.")
    page.locator(f'[id="{admin}"] input[name="comment"]').fill("drop the certificate part")
    page.locator(f'[id="{admin}"] button.save').click()
    page.wait_for_selector("#notice")

    assert page.locator(f'[id="{admin}"] .rating').inner_text() == "rated bad"
    admin_items = [(item.name, getattr(item, "value", None)) for item in assessments(admin)]
    assert admin_items.count((RATING, True)) == 1 and (RATING, False) in admin_items
    assert (CORRECT_ANSWER, "Port 8443.") in admin_items
    assert all(item.source.source_type == "HUMAN" and item.source.source_id == "tester" for item in assessments(admin))
    assert [(item.name, item.value) for item in assessments(vault)] == [(RATING, False)]


def test_forms_without_the_pages_token_and_requests_for_other_hosts_are_refused(review_page):
    base, admin, _ = review_page

    forged = httpx.post(base + "/feedback", data={"trace_id": admin, "action": "up", "token": "guess"})
    rebound = httpx.get(base + "/", headers={"Host": "attacker.example"})
    unknown = httpx.get(base + "/")  # the page works; an unknown trace id posted with the right token is an error
    token = unknown.text.split('name="token" value="')[1].split('"')[0]
    missing = httpx.post(base + "/feedback", data={"trace_id": "tr-0000", "action": "up", "token": token})

    assert forged.status_code == 403 and "not from this review page" in forged.text
    assert rebound.status_code == 400
    assert missing.status_code == 400 and "No trace" in missing.text
    assert assessments(admin) == []
