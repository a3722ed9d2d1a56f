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
from webapp.review.services import create_spot_check

from .conftest import jsonl
from .test_review import MODEL, ROWS

ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


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


def audit_dataset(owner):
    ds = create_dataset(owner=owner, filename="qa.jsonl", data=jsonl(ROWS), task="claims", consistency="key:answer",
                        name="Browser audit")
    rows = [{"id": k, "label": v, "score": s if v else -s} for k, (v, s) in MODEL.items()]
    model = import_label_set(user=owner, dataset=ds, filename="icm.jsonl", data=jsonl(rows), kind="icm", name="icm")
    return ds, model, ds.label_sets.get(kind="gold")


def signed_in(browser, live_server, width: int = 1280, height: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", "olivia-Pa55word!")
    page.click("button[type=submit]")
    page.wait_for_url("**/datasets/")
    return page


def wait_until(page, condition, what: str, seconds: float = 10) -> None:
    """Let the page run (route handlers, requests) until `condition()` holds."""
    for _ in range(int(seconds * 20)):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def hold_first(page, pattern: str) -> list:
    """Route requests matching `pattern`: the first is held (call .continue_() on it), the rest go through.
    Returns the list of every request's route, in order."""
    routes: list = []

    def handle(route) -> None:
        routes.append(route)
        if len(routes) > 1:
            route.continue_()

    page.route(pattern, handle)
    return routes


def judge(page, key: str) -> None:
    """Press a verdict key, then wait until the answer has replaced the item (on the last item the next
    one has the same heading, so the heading cannot tell). The old item is marked and the wait is for an
    unmarked one: a handle on the old element failed once when htmx's pushed address counted as a
    navigation while it was detached."""
    page.eval_on_selector("#review-layout", "el => el.setAttribute('data-answered', '')")
    with page.expect_response(lambda r: "/review/verdict/" in r.url):
        page.keyboard.press(key)
    page.wait_for_selector("#review-layout:not([data-answered])")


def test_keyboard_review_then_the_dashboard_changes(browser, live_server, owner):
    from playwright.sync_api import expect

    ds, model, gold = audit_dataset(owner)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = signed_in(browser, live_server)

    page.goto(f"{live_server.url}/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={model.pk}")
    before = page.inner_text("#accuracy-table tbody tr td:nth-child(4)")
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
    judge(page, "4")  # ambiguous, on the last item: the queue's end comes next
    expect(heading).to_contain_text("End of this queue · 2 items")
    assert "i=2" in page.url
    assert page.locator('#review-layout [data-key="1"]').count() == 0  # no key gives a verdict at the end
    with page.expect_navigation():
        page.keyboard.press("u")  # undo (a whole page): retracts the "ambiguous" verdict
    assert "Undid your verdict" in page.inner_text(".messages")
    with page.expect_response(lambda r: "/review/?" in r.url):
        page.keyboard.press("ArrowLeft")
    expect(heading).to_contain_text("Item 2 of 2 · q1-1")
    judge(page, "1")
    expect(heading).to_contain_text("End of this queue · 2 items")
    assert "You have a verdict on 2 of its 2 items" in page.inner_text("#queue-end-summary")
    standing = Verdict.objects.filter(dataset=ds, retracted__isnull=True)
    assert sorted(standing.values_list("verdict", flat=True)) == ["gold_wrong", "gold_wrong"]
    assert Verdict.objects.filter(dataset=ds, retracted__isnull=False, verdict="ambiguous").count() == 1
    # Arrows move without judging; typing a note does not trigger verdict keys.
    with page.expect_response(lambda r: "/review/?" in r.url):
        page.keyboard.press("ArrowLeft")
    expect(heading).to_contain_text("Item 2 of 2 · q1-1")
    with page.expect_response(lambda r: "/review/?" in r.url):
        page.keyboard.press("ArrowLeft")
    expect(heading).to_contain_text("Item 1 of 2 · q5-1")
    assert "i=0" in page.url
    page.fill("textarea[name=note]", "1234 u")
    assert Verdict.objects.filter(dataset=ds).count() == 3

    page.click("#adjudicate")
    page.wait_for_url("**/agreement/**")
    page.screenshot(path=str(ARTIFACTS / "agreement-dashboard.png"), full_page=True)
    after = page.inner_text("#accuracy-table tbody tr td:nth-child(4)")
    new_gold = LabelSet.objects.get(dataset=ds, kind="gold", version=2)
    assert f"gold={new_gold.pk}" in page.url
    # The two items judged "gold wrong" were the model's most confident disagreements: both now agree.
    assert float(after) == pytest.approx(15 / 16, abs=1e-3) and float(after) > float(before)


def test_a_verdict_key_typed_before_the_answer_lands_on_the_next_item(browser, live_server, owner):
    """The second key is pressed while the first verdict's answer is held back: it must wait, then judge
    the item the answer brings, not go to the item just judged (where htmx dropped it)."""
    from playwright.sync_api import expect

    ds, model, gold = audit_dataset(owner)
    page = signed_in(browser, live_server)
    page.goto(f"{live_server.url}/datasets/{ds.pk}/review/?model={model.pk}&gold={gold.pk}&cell=TF")
    page.wait_for_selector("#review-item")
    held = hold_first(page, "**/review/verdict/**")
    # Which verdict buttons the keys press, in order (a key's handler runs within its keydown, so this
    # list is complete when the next evaluate returns: no waiting to see that nothing happened).
    page.evaluate("""() => { window.pressed = []; document.addEventListener('click', e => {
        const b = e.target.closest('[data-key]'); if (b) window.pressed.push(b.dataset.key); }, true); }""")
    page.keyboard.press("1")  # gold wrong, on q5-1
    wait_until(page, lambda: held, "the first verdict request")
    page.keyboard.press("3")  # both wrong: meant for the next item, q1-1
    assert page.evaluate("window.pressed") == ["1"], "the key typed ahead went to the item already judged"
    held[0].continue_()
    standing = Verdict.objects.filter(dataset=ds, retracted__isnull=True)
    wait_until(page, lambda: standing.count() == 2, "two verdicts")
    assert dict(standing.values_list("example__external_id", "verdict")) == {"q5-1": "gold_wrong",
                                                                              "q1-1": "both_wrong"}
    expect(page.locator("#review-item h2")).to_contain_text("End of this queue")  # q1-1 was the last


def test_a_label_key_typed_while_the_next_page_loads_labels_the_next_example(browser, live_server, owner):
    """Blind labeling posts a whole page. A key pressed before the next page arrives used to post the old
    example's form again, overwriting the label just given; it must label the next example instead."""
    ds, _, _ = audit_dataset(owner)
    page = signed_in(browser, live_server)
    page.goto(f"{live_server.url}/datasets/{ds.pk}/annotate/")
    first = page.inner_text("#annotate-item h2")
    held = hold_first(page, "**/annotate/label/")
    page.keyboard.press("1")  # True
    wait_until(page, lambda: held, "the first label's post")
    page.keyboard.press("2")  # False: meant for the next example
    page.keyboard.press("1")  # True: for the one after it (kept across two page loads)
    # (The page is navigating: nothing can be read from it until the held post is let through. The labels
    # below say where the keys went: a key that posted the old form again would have relabeled the first.)
    held[0].continue_()
    own = LabelSet.objects.filter(dataset=ds, annotator=owner)
    wait_until(page, lambda: own.exists() and own.get().labels.count() == 3, "three labels")
    labels = own.get().labels.order_by("example__position")
    assert [(lab.example.position, lab.value) for lab in labels] == [(0, True), (1, False), (2, True)]
    assert labels[0].example.external_id == first


def test_a_run_shows_its_phase_and_progress_and_a_one_class_labeling_its_badge(browser, live_server, owner, settings):
    """From the click on, the run page says what the run is doing and shows a progress bar; a labeling that
    is all one class is flagged on the dataset page, not shown as a plain accuracy."""
    from webapp.datasets.models import Label
    from webapp.runs.execution import claim, execute_run, set_phase
    from webapp.runs.models import Run

    from .runs_helpers import FAKE, ICM_FAST, fake_dataset

    ds = fake_dataset(owner)
    page = signed_in(browser, live_server)
    page.goto(f"{live_server.url}/datasets/{ds.pk}/runs/new/")
    # The form prices the start as it changes: nothing like it has run on this server yet, and it says so.
    page.wait_for_selector("#estimate-table")
    assert "not measured yet on this server" in page.inner_text("#run-estimate")
    page.fill("#id_seeds", "4")
    page.fill("#id_iterations", str(ICM_FAST["iterations"]))
    for box in page.locator("input[name=baselines]").all():
        box.uncheck()
    wait_until(page, lambda: "Golden" not in page.inner_text("#run-estimate"), "the estimate without baselines")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert "/runs/new/" not in page.url, page.inner_text("main")[:2000]
    run = Run.objects.get(dataset=ds)
    assert run.seed == 4 and run.config["batch_size"] == 24  # sized to the data
    Run.objects.filter(pk=run.pk).update(backend=FAKE)  # the form offers real backends only
    assert page.get_attribute("#run-phase", "data-phase") == "queued"
    assert "Queued" in page.inner_text("#run-phase") and page.locator("#run-progress").count() == 1
    # A worker takes it and loads the model: the page says so before the engine reports anything.
    lease = claim(run.pk)
    set_phase(run, lease, "loading")
    page.reload()
    assert page.inner_text("#run-phase") == "Loading the model" and page.locator("#run-progress").count() == 1
    assert "time left: estimating" in page.inner_text(".run-phase")
    page.screenshot(path=str(ARTIFACTS / "run-loading.png"), full_page=True)
    Run.objects.filter(pk=run.pk).update(lease="", status="queued")
    assert execute_run(run.pk) == "succeeded"
    page.reload()
    assert page.inner_text("#run-phase") == "Finished" and page.locator("#run-progress").count() == 0
    # Its labels made all False: the dataset page's method table and label sets flag it.
    run.refresh_from_db()
    Label.objects.filter(label_set=run.label_set).update(value=False)
    page.goto(f"{live_server.url}/datasets/{ds.pk}/runs/")
    page.wait_for_selector("#method-table .warning-one_class")
    page.wait_for_selector("#labelsets-panel table")
    badge = page.locator("#method-table .warning-one_class").first
    assert badge.is_visible() and badge.inner_text() == "one class"
    assert "every label in the set is the same class" in badge.get_attribute("title")
    assert page.locator("table .warning-one_class").count() >= 2  # the method table and the label sets
    page.screenshot(path=str(ARTIFACTS / "dataset-one-class.png"), full_page=True)


def test_the_pages_fit_a_phone_screen(browser, live_server, owner):
    """At 390 px nothing is wider than the screen (wide tables scroll in their own box): the dataset, data,
    review, agreement and run pages were 450-760 px wide."""
    from webapp.runs.execution import execute_run
    from webapp.runs.models import Run

    from .runs_helpers import FAKE, ICM_FAST, fake_dataset

    ds, model, gold = audit_dataset(owner)
    run = Run.objects.create(dataset=fake_dataset(owner), created_by=owner, method="icm", task="claims",
                             backend=FAKE, config=ICM_FAST)
    execute_run(run.pk)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = signed_in(browser, live_server, width=390, height=844)
    widths = {}
    check = create_spot_check(user=owner, dataset=ds, gold=gold, size=4, seed=0)
    for name, url in [("data", f"/datasets/{ds.pk}/"), ("runs", f"/datasets/{ds.pk}/runs/"),
                      ("review", f"/datasets/{ds.pk}/review/?model={model.pk}&gold={gold.pk}&cell=TF"),
                      ("agreement", f"/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={model.pk}"),
                      ("spot-checks", f"/datasets/{ds.pk}/spotchecks/"), ("spot-check", f"/spotchecks/{check.pk}/"),
                      ("corrections", f"/datasets/{ds.pk}/gold/corrections/"),
                      ("settings", f"/datasets/{ds.pk}/settings/"), ("label sets", f"/datasets/{ds.pk}/labelsets/"),
                      ("label set", f"/labelsets/{model.pk}/"), ("label blind", f"/datasets/{ds.pk}/annotate/"),
                      ("datasets", "/datasets/"), ("upload", "/datasets/new/"),
                      ("run", f"/runs/{run.pk}/"), ("new run", f"/datasets/{ds.pk}/runs/new/")]:
        page.goto(live_server.url + url)
        page.wait_for_load_state("networkidle")
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(ARTIFACTS / f"phone-{name.replace(' ', '-')}.png"), full_page=True)
    assert all(w <= 390 for w in widths.values()), widths


def test_the_pages_work_under_their_content_security_policy(browser, live_server, owner):
    """Every page is sent with a CSP that allows no inline script, and nothing on them (htmx, the websocket,
    the key handlers, the delete confirmation) is refused by it: Chromium reports each refusal on the console."""
    from webapp.runs.execution import execute_run
    from webapp.runs.models import Run

    from .runs_helpers import FAKE, ICM_FAST, fake_dataset

    ds, model, gold = audit_dataset(owner)
    run = Run.objects.create(dataset=fake_dataset(owner), created_by=owner, method="icm", task="claims",
                             backend=FAKE, config=ICM_FAST)
    execute_run(run.pk)
    page = signed_in(browser, live_server)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    for url in [f"/datasets/{ds.pk}/", f"/datasets/{ds.pk}/runs/", f"/datasets/{ds.pk}/settings/", f"/runs/{run.pk}/",
                f"/datasets/{ds.pk}/review/?model={model.pk}&gold={gold.pk}&cell=TF", f"/datasets/{ds.pk}/runs/new/",
                f"/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={model.pk}", "/api/docs/"]:
        resp = page.goto(live_server.url + url)
        assert "script-src 'self'" in resp.headers["content-security-policy"], url
        page.wait_for_load_state("networkidle")
    # htmx runs: the run form's estimate is fetched by it as a setting changes.
    page.goto(f"{live_server.url}/datasets/{ds.pk}/runs/new/")
    assert page.evaluate("typeof window.htmx") == "object"
    # The delete confirmation (a data-confirm form, no inline handler): dismissed, nothing is deleted.
    page.goto(f"{live_server.url}/labelsets/{model.pk}/")
    page.once("dialog", lambda d: d.dismiss())
    page.click("form[data-confirm] button[type=submit]")
    page.wait_for_timeout(300)
    assert LabelSet.objects.filter(pk=model.pk).exists()
    assert refused == [], refused


def test_the_run_form_gives_each_input_its_own_label_and_the_cost_beside_or_below(browser, live_server, owner):
    """Every input's label is its own (the `for`/`id` pair, in the same row, right above it, with its help
    below), in groups; the cost table stands beside the form at 1366 px and below it at 390 px."""
    ds, _, _ = audit_dataset(owner)
    rows_js = """() => [...document.querySelectorAll('#run-form .field-row')].map(row => {
        const label = row.querySelector('label'); const input = document.getElementById(label.htmlFor);
        const help = row.querySelector('.helptext');
        const l = label.getBoundingClientRect(), i = input ? input.getBoundingClientRect() : null;
        const h = help ? help.getBoundingClientRect() : null;
        return {name: row.dataset.field, own: !!input && row.contains(input), check: input && input.type === 'checkbox',
                above: !!i && l.bottom <= i.top + 1, helpBelow: !h || !i || h.top >= i.bottom - 1,
                labelled: !!input && [...input.labels].includes(label)};
    })"""
    for width, height, beside in ((1366, 900, True), (390, 844, False)):
        page = signed_in(browser, live_server, width=width, height=height)
        page.goto(f"{live_server.url}/datasets/{ds.pk}/runs/new/")
        page.click("#advanced summary")
        page.wait_for_selector("#run-estimate table, #run-estimate p")
        rows = page.evaluate(rows_js)
        assert len(rows) > 30 and all(r["own"] and r["labelled"] for r in rows), rows
        assert all(r["above"] and r["helpBelow"] for r in rows if not r["check"]), [r for r in rows if not r["above"]]
        assert [t.strip() for t in page.locator("#run-form > fieldset > legend").all_inner_texts()][:3] == [
            "What to label", "Method and seeds", "Model"]
        form, cost = page.eval_on_selector("#run-form", "e => e.getBoundingClientRect().toJSON()"), \
            page.eval_on_selector("#run-estimate", "e => e.getBoundingClientRect().toJSON()")
        if beside:
            assert cost["left"] >= form["right"] and cost["width"] >= 300, (form, cost)
        else:
            assert cost["top"] >= form["bottom"] - 1, (form, cost)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.close()


def test_the_time_since_the_start_ticks_in_the_browser_between_frames(browser, live_server, owner):
    """A queued run sends no frames; its page still counts the seconds since the start was clicked."""
    from webapp.runs.models import Run

    from .runs_helpers import FAKE, ICM_FAST, fake_dataset

    run = Run.objects.create(dataset=fake_dataset(owner), created_by=owner, method="icm", task="claims",
                             backend=FAKE, config=ICM_FAST)
    page = signed_in(browser, live_server)
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    first = int(page.inner_text("#run-since"))
    page.wait_for_timeout(2600)
    assert int(page.inner_text("#run-since")) >= first + 2


def test_the_dataset_tabs_each_have_an_address_and_mark_the_current_one(browser, live_server, owner):
    """Data (the default), Runs, Review, Agreement, Spot-checks, Members and settings: clicking each opens its
    own address with that tab marked, at 1366 and at 390 px (where the tabs wrap and nothing is wider than
    the screen)."""
    ds, _, _ = audit_dataset(owner)
    expected = {"data": f"/datasets/{ds.pk}/", "runs": f"/datasets/{ds.pk}/runs/",
                "review": f"/datasets/{ds.pk}/review/", "agreement": f"/datasets/{ds.pk}/agreement/",
                "spotchecks": f"/datasets/{ds.pk}/spotchecks/", "settings": f"/datasets/{ds.pk}/settings/"}
    for width, height in ((1366, 900), (390, 844)):
        page = signed_in(browser, live_server, width=width, height=height)
        page.goto(f"{live_server.url}/datasets/{ds.pk}/")
        assert page.get_attribute("nav.tabs a[aria-current=page]", "data-tab") == "data"
        assert page.locator("#data-view").count() == 1  # the data view is the default tab
        for name, path in expected.items():
            page.click(f"nav.tabs a[data-tab={name}]")
            page.wait_for_load_state("networkidle")
            assert page.url.split("?")[0] == live_server.url + path, (name, page.url)
            current = page.locator("nav.tabs a[aria-current=page]")
            assert current.count() == 1 and current.get_attribute("data-tab") == name
            assert page.locator("nav.tabs a").count() == len(expected)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
            page.screenshot(path=str(ARTIFACTS / f"tab-{name}-{width}.png"), full_page=True)
        page.close()


def test_the_runs_tab_gives_each_experiment_its_own_table(browser, live_server, owner):
    """Zero-shot on 16 examples, then ICM on 24: two tables, the latest experiment first and open, the earlier
    one folded; no row of one stands in the other's table."""
    from webapp.runs.execution import execute_run
    from webapp.runs.models import Run

    from .runs_helpers import FAKE, ICM_FAST, fake_dataset

    ds = fake_dataset(owner, n=32)
    for method, limit, config in (("zero-shot", 16, {}), ("icm", 24, ICM_FAST)):
        run = Run.objects.create(dataset=ds, created_by=owner, method=method, task="claims", backend=FAKE,
                                 config=config, limit=limit)
        assert execute_run(run.pk) == "succeeded"
    page = signed_in(browser, live_server)
    page.goto(f"{live_server.url}/datasets/{ds.pk}/runs/")
    tables = page.locator("table.method-table")
    assert tables.count() == 2
    first, second = tables.nth(0), tables.nth(1)
    assert first.is_visible() and not second.is_visible()  # the earlier experiment is folded
    assert "24 examples (limit 24)" in page.inner_text(".experiment-title >> nth=0")
    page.click("details.experiment summary")
    assert second.is_visible() and "16 examples (limit 16)" in page.inner_text(".experiment-title >> nth=1")

    def seeded(table) -> dict[str, str]:
        return {row.get_attribute("data-method"): row.locator("td").nth(2).inner_text()
                for row in table.locator("tr.method-row").all()}

    assert seeded(first)["icm"] == "1" and seeded(first)["zero-shot"] == "–"
    assert seeded(second)["zero-shot"] == "1" and seeded(second)["icm"] == "–"
    page.screenshot(path=str(ARTIFACTS / "runs-two-experiments.png"), full_page=True)


def test_an_annotators_undo_after_a_skip_brings_back_the_label_not_the_skipped_item(browser, live_server, owner):
    """Skip the first example, label the second, undo: the page shows the second again (its label gone),
    not the skipped first."""
    ds, _, _ = audit_dataset(owner)
    page = signed_in(browser, live_server)
    page.goto(f"{live_server.url}/datasets/{ds.pk}/annotate/")
    first = page.inner_text("#annotate-item h2")
    with page.expect_navigation():
        page.keyboard.press("s")  # skip
    second = page.inner_text("#annotate-item h2")
    assert second != first
    with page.expect_navigation():
        page.keyboard.press("1")  # True for the second
    assert page.inner_text("#annotate-item h2") not in (first, second)
    with page.expect_navigation():
        page.keyboard.press("u")  # undo
    assert page.inner_text("#annotate-item h2") == second
    own = LabelSet.objects.filter(dataset=ds, annotator=owner)
    assert not own.exists() or own.get().labels.count() == 0
