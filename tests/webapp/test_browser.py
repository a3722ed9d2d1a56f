"""The review UI in a real browser: Debian's chromium driven by Playwright (no browser is downloaded).

Sign in, open a disagreement queue, give verdicts with the keyboard, undo one, make a new gold version
from them, and see the dashboard change. Screenshots go to out/test-artifacts/ (not committed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from webapp.datasets.models import LabelSet
from webapp.datasets.services import create_dataset, import_label_set
from webapp.review.models import Verdict

from .conftest import jsonl
from .test_review import MODEL, ROWS

ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(monkeypatch):
    if not Path(CHROMIUM).exists():
        missing = pytest.fail if os.environ.get("CI") else pytest.skip
        missing("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's own event loop must not meet Django's async-unsafe checks in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def judge(page, key: str) -> None:
    """Press a verdict key, then wait until the answer has replaced the item. On the last item the next
    one has the same heading; a key pressed before the swap reaches the old form, whose request htmx
    still counts as in flight, and is dropped (this test failed so once in CI)."""
    old = page.query_selector("#review-layout")
    with page.expect_response(lambda r: "/review/verdict/" in r.url):
        page.keyboard.press(key)
    old.wait_for_element_state("hidden")  # detached


def test_keyboard_review_then_the_dashboard_changes(browser, live_server, owner):
    from playwright.sync_api import expect

    ds = create_dataset(owner=owner, filename="qa.jsonl", data=jsonl(ROWS), task="claims", consistency="key:answer",
                        name="Browser audit")
    rows = [{"id": k, "label": v, "score": s if v else -s} for k, (v, s) in MODEL.items()]
    model = import_label_set(user=owner, dataset=ds, filename="icm.jsonl", data=jsonl(rows), kind="icm", name="icm")
    gold = ds.label_sets.get(kind="gold")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", "olivia-Pa55word!")
    page.click("button[type=submit]")
    page.wait_for_url("**/datasets/")

    page.goto(f"{live_server.url}/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={model.pk}")
    before = page.inner_text("#accuracy-table tbody tr td:nth-child(3)")
    assert float(before) == pytest.approx(13 / 16, abs=1e-3)

    # The cell where the model says True and gold False: two items, the more confident first.
    page.goto(f"{live_server.url}/datasets/{ds.pk}/review/?model={model.pk}&gold={gold.pk}&cell=TF")
    page.wait_for_selector("#review-item")
    page.screenshot(path=str(ARTIFACTS / "review-queue.png"), full_page=True)
    assert "Item 1 of 2 · q5-1" in page.inner_text("#review-item h2")
    heading = page.locator("#review-item h2")
    # 1 = gold wrong; the page swaps in the next item of the queue (htmx: the item alone, no page load)
    # and shows its address.
    judge(page, "1")
    expect(heading).to_contain_text("Item 2 of 2 · q1-1")
    assert "cell=TF" in page.url and "i=1" in page.url
    judge(page, "1")
    judge(page, "4")  # ambiguous, on the same (last) item
    expect(heading).to_contain_text("Item 2 of 2 · q1-1")
    with page.expect_navigation():
        page.keyboard.press("u")  # undo (a whole page): retracts the "ambiguous" verdict
    assert "Undid your verdict" in page.inner_text(".messages")
    standing = Verdict.objects.filter(dataset=ds, retracted__isnull=True)
    assert sorted(standing.values_list("verdict", flat=True)) == ["gold_wrong", "gold_wrong"]
    assert Verdict.objects.filter(dataset=ds, retracted__isnull=False, verdict="ambiguous").count() == 1
    # Arrows move without judging; typing a note does not trigger verdict keys.
    with page.expect_response(lambda r: "/review/?" in r.url):
        page.keyboard.press("ArrowLeft")
    expect(heading).to_contain_text("Item 1 of 2 · q5-1")
    assert "i=0" in page.url
    page.fill("textarea[name=note]", "1234 u")
    assert Verdict.objects.filter(dataset=ds).count() == 3

    page.click("#adjudicate")
    page.wait_for_url("**/agreement/**")
    page.screenshot(path=str(ARTIFACTS / "agreement-dashboard.png"), full_page=True)
    after = page.inner_text("#accuracy-table tbody tr td:nth-child(3)")
    new_gold = LabelSet.objects.get(dataset=ds, kind="gold", version=2)
    assert f"gold={new_gold.pk}" in page.url
    # The two items judged "gold wrong" were the model's most confident disagreements: both now agree.
    assert float(after) == pytest.approx(15 / 16, abs=1e-3) and float(after) > float(before)
