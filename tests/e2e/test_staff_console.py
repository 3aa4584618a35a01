"""The staff console in real Chromium against the real servers: log in, search, look up a household, and answer a
resident who asked for a person — the reply appears in the resident's chat page, and the assistant keeps helping."""

import uuid

import pytest
import requests
from playwright.sync_api import sync_playwright

from bot import accounts, db

from .test_pages import CHROMIUM, PHONE, SHOTS

pytestmark = pytest.mark.e2e
PASSWORD = "console-pass-2026"


@pytest.fixture(scope="module")
def staff_user(stacks):
    url = stacks["sqlite"].database_url
    name = f"wang{uuid.uuid4().hex[:6]}"
    with db.session_scope(url) as session:
        accounts.create_user(session, name, PASSWORD, "staff")
    db.dispose(url)
    return name


def test_two_misses_in_a_row_offer_a_handoff_and_the_resident_decides(gateway):
    sender = f"web-{uuid.uuid4().hex[:8]}"
    ask = lambda m: requests.post(f"{gateway.url}/api/chat", json={"sender": sender, "message": m}, timeout=30).json()  # noqa: E731
    ask("qwpoeiruty")
    reply = ask("zmxncbvlaksj")
    assert "转给工作人员" in reply[0]["text"]
    assert "转人工" in {b["title"] for r in reply for b in r.get("buttons", [])}
    assert ask("在吗")[0]["text"]  # no ticket opened by itself: the assistant still answers
    opened = ask("/request_human")
    assert "工作人员会在这里直接回复您" in opened[0]["text"]
    later = ask("敬老院咋申请")
    assert "敬老院" in later[0]["text"] and "工作人员" in later[-1]["text"]  # still answered, staff will also reply


def test_login_search_household_and_answer_a_handoff(gateway, staff_user):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        resident = browser.new_context(viewport=PHONE, locale="zh-CN", bypass_csp=True).new_page()  # waits use eval
        resident.goto(gateway.url + "/")
        resident.wait_for_selector(".from-bot .text")
        tag = f"居民{uuid.uuid4().hex[:6]}"  # other tests leave tickets too: this one is found by its own words
        resident.fill("#input", f"转人工 我是{tag}")
        resident.click(".send")
        resident.wait_for_function("document.querySelectorAll('.from-bot .text').length >= 2")
        assert "工作人员会在这里直接回复您" in resident.locator(".from-bot .text").last.inner_text()

        staff = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN", bypass_csp=True).new_page()
        staff.goto(gateway.url + "/staff")
        assert staff.url.endswith("/staff/login")  # anonymous: sent to the login form
        staff.fill("input[name=username]", staff_user)
        staff.fill("input[name=password]", PASSWORD)
        staff.click("button[type=submit]")
        staff.wait_for_url("**/staff")
        staff.fill("#q", "出去打工路费能报吗")
        staff.press("#q", "Enter")
        staff.wait_for_selector(".hit h2")
        assert staff.locator(".hit h2").first.inner_text() == "务工交通补贴"
        staff.screenshot(path=str(SHOTS / "staff-search.png"), full_page=True)

        staff.goto(gateway.url + "/staff/households?q=张三")
        staff.click("text=GHY00001")
        staff.wait_for_selector("text=张三家（GHY00001）")
        body = staff.inner_text("body")
        assert "140929************" in body and "140929197805125447" not in body
        staff.screenshot(path=str(SHOTS / "staff-household.png"), full_page=True)

        staff.goto(gateway.url + "/staff/tickets")
        ticket = staff.locator(".ticket").filter(has_text=tag).first
        ticket.locator("input[name=text]").fill("您好，我是社区小王，请说说您的事")
        ticket.locator("button", has_text="发送").click()
        staff.wait_for_selector("text=已发送")

        resident.wait_for_selector(".from-staff .text", timeout=15_000)
        assert resident.locator(".from-staff .text").last.inner_text() == "您好，我是社区小王，请说说您的事"
        assistant = ".from-bot:not(.from-staff) .text"
        bots = resident.locator(assistant).count()
        resident.fill("#input", "我家的低保怎么办")
        resident.click(".send")
        # the assistant keeps helping while the ticket is open, and says that staff will also reply
        resident.wait_for_function(f"document.querySelectorAll('{assistant}').length > {bots}")
        assert "工作人员" in resident.locator(assistant).last.inner_text()
        bots = resident.locator(assistant).count()
        resident.screenshot(path=str(SHOTS / "resident-handoff.png"), full_page=True)

        staff.goto(gateway.url + "/staff/tickets")
        assert "我家的低保怎么办" in staff.inner_text("body")
        staff.locator(".ticket").filter(has_text="我家的低保怎么办").locator("button", has_text="结束").click()
        resident.wait_for_function(
            "[...document.querySelectorAll('.from-staff .text')].some(e => e.textContent.includes('结束这次对话'))",
            timeout=15_000,
        )
        resident.fill("#input", "医保在哪交")
        resident.click(".send")
        resident.wait_for_function(f"document.querySelectorAll('{assistant}').length > {bots}")
        assert "医保" in resident.locator(assistant).last.inner_text()
        browser.close()
