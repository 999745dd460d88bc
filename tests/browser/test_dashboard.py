"""The dashboard in a real headless browser, on the real platform: intake, validation, stats and the
dashboard as processes on a real broker, as `registry up` starts them.

Registry staff watch the overview while a hospital posts a diagnosis: the figures change on the page with
no reload. A hospital signs in, sees a report it owes appear on its page, is refused another hospital's
page, and its event stream carries nothing of another hospital's. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from deploy.local.platform import LocalPlatform
from deploy.synthetic.identity import synthetic_number
from tests.e2e.test_flow import eventually
from tests.fixtures.forms import diagnosis_submission
from tests.fixtures.platform import running_platform

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

NEEDED = ("intake", "validation", "stats", "stats.dashboard")  # export plays no part in these figures
TODAY = datetime.now(ZoneInfo("Europe/Oslo")).date()  # the registry's day: "this year" on the page


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    with running_platform(
        tmp_path_factory.mktemp("platform"),
        kafka_bootstrap,
        topic_prefix="browser",
        extra_env={"STATS_SNAPSHOT_INTERVAL_S": "0.2"},
        only=NEEDED,
    ) as platform:
        yield platform


class Hospital:
    """Posts diagnoses to intake's HTTP API as one hospital does."""

    def __init__(self, platform: LocalPlatform, hospital_id: str) -> None:
        self.id = hospital_id
        self.url = platform.service("intake").url
        self.headers = {"Authorization": f"Bearer {platform.demo_tokens()[hospital_id]}"}

    def diagnose(self, tumour_ref: str, diagnosed: date, individual: int) -> None:
        """A girl born in 2015, one per individual number (even: female; the next that has control digits)."""
        national_id = next(
            number
            for candidate in range(individual, individual + 40, 2)
            if (number := synthetic_number(date(2015, 3, 14), male=False, individual=candidate))
        )
        body = diagnosis_submission(self.id, national_id, tumour_ref, diagnosed=diagnosed, laterality="not_paired")
        response = httpx.post(f"{self.url}/v1/submissions", json=body, headers=self.headers)
        assert response.status_code == 202, response.text


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # The dashboard's CSP forbids eval; the test's own probes (wait_for_function) are evaluated, so the
    # test context, not the page, is exempted.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    yield context.new_page()
    context.close()


def sign_in(page: Page, dashboard: str, token: str) -> None:
    page.goto(f"{dashboard}/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.get_by_label(re.compile("API-nøkkel|API token")).fill(token)
    page.get_by_role("button", name=re.compile("Logg inn|Sign in")).click()


def figure(page: Page, name: str) -> Locator:
    return page.locator(f'#key-figures [data-figure="{name}"]')


def this_year(days_ago: int) -> date:
    """A diagnosis date this many days back, kept in this year: the page shows this year's figures."""
    return max(TODAY - timedelta(days=days_ago), date(TODAY.year, 1, 1))


def staff_state(platform: LocalPlatform) -> dict[str, Any]:
    staff = {"Authorization": f"Bearer {platform.demo_tokens()['staff']}"}
    answer = httpx.get(f"{platform.service('stats.dashboard').url}/api/state", headers=staff)
    answer.raise_for_status()
    state: dict[str, Any] = answer.json()
    return state


def accepted(state: dict[str, Any], scope: str) -> int:
    submissions = state["scopes"].get(scope, {}).get("snapshot", {}).get("total", {}).get("submissions", {})
    return int(submissions.get("diagnosis", {}).get("accepted", 0))


def test_the_overview_shows_a_new_submission_without_a_reload(
    platform: LocalPlatform, page: Page, artifacts: Path
) -> None:
    dashboard = platform.service("stats.dashboard").url
    sign_in(page, dashboard, platform.demo_tokens()["staff"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Hele registeret")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    received_before = int(figure(page, "received").inner_text())
    accepted_before = int(figure(page, "accepted").inner_text())
    page.screenshot(path=artifacts / "overview-nb.png", full_page=True)
    page.evaluate("window.notReloaded = true")  # gone if the page were loaded again

    Hospital(platform, "ous").diagnose("BR-OVERVIEW-1", this_year(days_ago=10), individual=600)

    expect(figure(page, "accepted")).to_have_text(str(accepted_before + 1))
    expect(figure(page, "received")).to_have_text(str(received_before + 1))
    expect(page.locator("#case-mix-chart-table table")).to_contain_text("III")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=artifacts / "overview-nb-updated.png", full_page=True)
    assert _structure_problems(page) == []
    page.keyboard.press("Tab")  # the first stop is the way past the menu
    expect(page.locator(":focus")).to_have_attribute("href", "#main")

    page.goto(f"{dashboard}/?lang=en")
    expect(page.get_by_role("heading", level=1)).to_have_text("The whole registry")
    expect(figure(page, "accepted")).to_have_text(str(accepted_before + 1))
    # This month's reports (stats counts them by month received), the days-to-report distribution, and
    # targets with their direction: lower is better for unspecified morphology.
    expect(page.locator("#monthly-chart-table table")).to_contain_text(TODAY.strftime("%B %Y"))
    expect(page.locator("#days_to_diagnosis_report-distribution-table table")).to_contain_text("0-7 days")
    expect(page.locator("#completeness-chart-table table")).to_contain_text("at most 5%")
    expect(page.locator("#completeness-chart-table table")).to_contain_text("at least 85%")
    page.screenshot(path=artifacts / "overview-en.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=artifacts / "overview-en-narrow.png", full_page=True)


def test_a_hospital_sees_its_own_figures_live_and_nothing_of_another_hospital(
    platform: LocalPlatform, page: Page, artifacts: Path
) -> None:
    dashboard = platform.service("stats.dashboard").url
    ous, unn = Hospital(platform, "ous"), Hospital(platform, "unn")
    sign_in(page, dashboard, platform.demo_tokens()["ous"])
    expect(page).to_have_url(f"{dashboard}/hospitals/ous")
    expect(page.get_by_role("heading", level=1)).to_have_text("Oslo universitetssykehus")
    expect(page.get_by_role("link", name="Oversikt")).to_have_count(0)  # the registry-wide page is staff's
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.evaluate("window.notReloaded = true")

    # Diagnosed two months ago with no treatment report: the hospital owes one, and sees it appear.
    ous.diagnose("BR-OUS-OWED", TODAY - timedelta(days=60), individual=640)
    owed = page.locator("#reminders tbody tr", has_text="BR-OUS-OWED")
    expect(owed).to_contain_text("Behandlingsmelding")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=artifacts / "hospital-nb.png", full_page=True)
    page.goto(f"{dashboard}/hospitals/ous?lang=en")
    expect(page.locator("#reminders tbody tr", has_text="BR-OUS-OWED")).to_contain_text("Treatment report")
    page.screenshot(path=artifacts / "hospital-en.png", full_page=True)

    refused = page.goto(f"{dashboard}/hospitals/unn")
    assert refused is not None and refused.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("No access")
    expect(page.get_by_role("link", name=re.compile("Oslo universitetssykehus"))).to_have_count(2)  # menu, way back
    page.screenshot(path=artifacts / "forbidden-en.png", full_page=True)
    assert page.request.get(f"{dashboard}/api/state").json()["scopes"].keys() == {"ous"}

    # Listen to the hospital's own event stream while both hospitals report.
    page.goto(f"{dashboard}/hospitals/ous")
    page.evaluate(
        """() => {
            window.seen = [];
            const source = new EventSource("/events");
            for (const kind of ["state", "scope", "reminder"]) {
                source.addEventListener(kind, (event) => window.seen.push([kind, JSON.parse(event.data)]));
            }
        }"""
    )
    page.wait_for_function("window.seen.length > 0")
    before = staff_state(platform)

    # UNN's snapshot and reminder reach the dashboard (staff see them) — and so pass this stream's filter
    # before OUS's next change, which the stream then delivers.
    unn.diagnose("BR-UNN-OWED", TODAY - timedelta(days=60), individual=680)
    eventually(lambda: accepted(staff_state(platform), "unn") == accepted(before, "unn") + 1)
    eventually(lambda: any(r["tumour_ref"] == "BR-UNN-OWED" for r in staff_state(platform)["reminders"]["unn"]))
    ous.diagnose("BR-OUS-2", this_year(days_ago=5), individual=720)
    expected = accepted(before, "ous") + 1
    page.wait_for_function(
        """(expected) => window.seen.some(([kind, data]) => kind === "scope"
            && data.snapshot.total.submissions.diagnosis?.accepted === expected)""",
        arg=expected,
    )
    seen: list[tuple[str, dict[str, Any]]] = page.evaluate("window.seen")
    scopes = _scopes_in(seen)
    assert scopes == {"ous"}, seen
    assert "BR-UNN-OWED" not in str(seen)


def _structure_problems(page: Page) -> list[str]:
    """What a screen reader would miss: a chart without a name, a chart without its table, a table
    without a caption, a section without a heading."""
    problems: list[str] = page.evaluate(
        """() => {
            const problems = [];
            for (const chart of document.querySelectorAll(".bars")) {
                const name = document.getElementById(chart.getAttribute("aria-labelledby") || "");
                if (chart.getAttribute("role") !== "img" || !name?.textContent.trim()) problems.push("unnamed chart");
                if (!chart.closest("figure")?.querySelector("table caption")) problems.push("chart without table");
            }
            for (const table of document.querySelectorAll("table")) {
                if (!table.querySelector("caption")?.textContent.trim()) problems.push("table without caption");
            }
            for (const section of document.querySelectorAll("#dashboard > section")) {
                if (!section.querySelector("h2")) problems.push(`section ${section.id} without heading`);
            }
            if (document.querySelectorAll("h1").length !== 1) problems.push("not one h1");
            return problems;
        }"""
    )
    return problems


def _scopes_in(seen: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """Every hospital or scope the events speak of."""
    found: set[str] = set()
    handlers: dict[str, Callable[[dict[str, Any]], set[str]]] = {
        "state": lambda data: {*data["scopes"], *data["reminders"], *(h["id"] for h in data["hospitals"])},
        "scope": lambda data: {data["scope"]},
        "reminder": lambda data: {data["hospital_id"]},
    }
    for kind, data in seen:
        found |= handlers[kind](data)
    return found
