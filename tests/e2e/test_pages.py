"""The chat page and the kiosk in real headless Chromium (Debian's), driven by Playwright, against the real servers.
Screenshots are written to results/screenshots/ (not committed)."""

import pytest
from playwright.sync_api import Page, sync_playwright

from bot.settings import ROOT

pytestmark = pytest.mark.e2e
SHOTS = ROOT / "results" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
KIOSK = {"width": 1080, "height": 1920}


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    size = KIOSK if "kiosk" in request.node.name else PHONE
    # the tests' own waits evaluate strings in the page, which the page's policy forbids (no eval):
    # test_pages_run_under_their_content_security_policy checks the pages without this bypass
    context = browser.new_context(viewport=size, locale="zh-CN", bypass_csp=True)
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page
    page.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not dialogs, f"a pop-up appeared: {dialogs}"  # no pop-ups, and no script ran from a message


def bot_texts(page: Page):
    return page.locator(".from-bot .text").all_inner_texts()


def wait_for_bot_text(page: Page, words: str):
    page.wait_for_function(
        "(w) => [...document.querySelectorAll('.from-bot .text')].some(e => e.textContent.includes(w))",
        arg=words,
        timeout=30_000,
    )


def wait_for_bot_count(page: Page, count: int):
    page.wait_for_function(f"document.querySelectorAll('.from-bot .text').length >= {count}", timeout=30_000)


@pytest.mark.parametrize("path, first", [("/", ".from-bot .text"), ("/kiosk", "#topics button")])
def test_pages_run_under_their_content_security_policy(gateway, browser, path, first):
    context = browser.new_context(viewport=PHONE, locale="zh-CN")  # the policy in force: no bypass
    page = context.new_page()
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(gateway.url + path)
    page.locator(first).first.wait_for(timeout=30_000)  # locator waits run in Playwright's own world, not eval
    if path == "/kiosk":
        page.locator("#topics button", has_text="养老服务").click()
        page.locator(".from-bot .text").first.wait_for(timeout=30_000)
    assert "安居助手" in page.inner_text("body")
    context.close()
    assert not refused, refused  # every script and style of the page is allowed by its own policy


def test_chat_page(gateway, page):
    page.goto(gateway.url + "/")
    wait_for_bot_count(page, 1)
    assert "安居助手" in bot_texts(page)[0]
    page.fill("#input", "去外省打工有交通补贴吗")
    page.click(".send")
    wait_for_bot_count(page, 2)
    assert "800元/人" in bot_texts(page)[-1]
    page.click("text=那在省内呢")  # a quick reply
    wait_for_bot_count(page, 3)
    assert "300元/人" in bot_texts(page)[-1]
    # a message that is HTML shows as its characters; nothing in it runs
    attack = "<img src=x onerror=alert(1)>"
    page.fill("#input", attack)
    page.click(".send")
    wait_for_bot_count(page, 4)
    assert attack in page.locator(".from-user .text").all_inner_texts()
    assert page.locator(".log img").count() == 0
    # the conversation survives a reload
    page.reload()
    page.wait_for_selector(".from-user .text")
    assert attack in page.locator(".from-user .text").all_inner_texts()
    assert len(bot_texts(page)) == 4


def test_household_data_stays_out_of_browser_storage_and_goes_on_leaving(gateway, page):
    stored = "() => [sessionStorage.getItem('anju.chat'), Object.keys(localStorage).filter(k => k !== 'anju.care')]"
    page.goto(gateway.url + "/")
    wait_for_bot_count(page, 1)
    for count, message in enumerate(("我家能领什么补贴", "张三", "125447"), start=2):
        page.fill("#input", message)
        page.click(".send")
        wait_for_bot_count(page, count)
    wait_for_bot_text(page, "张三家")
    assert "核对通过" in "".join(bot_texts(page))
    session, local = page.evaluate(stored)
    assert session is None and local == []  # shown on screen, kept nowhere
    # 退出: the household goes from the screen as well
    page.locator(".quick", has_text="退出").click()
    wait_for_bot_text(page, "已退出")
    assert "张三家" not in page.inner_text(".log") and "125447" not in page.inner_text(".log")
    # a reload after a check shows nothing of it either: the page's conversation ended with the page
    page.fill("#input", "我家能领什么补贴")
    page.click(".send")
    wait_for_bot_text(page, "户主")
    page.reload()
    wait_for_bot_count(page, 1)
    assert "张三家" not in page.inner_text("body")


def test_care_mode(gateway, page):
    page.goto(gateway.url + "/")
    wait_for_bot_count(page, 1)
    page.click("#care")
    assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('.from-bot .text')).fontSize)") >= 24
    sizes = page.evaluate(
        "[...document.querySelectorAll('button, input')].filter(e => e.offsetParent)"
        ".map(e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height])"
    )
    assert all(w >= 60 and h >= 60 for w, h in sizes), sizes


MEASURE = """() => {
  const visible = (e) => e.offsetParent !== null && e.getClientRects().length > 0;
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const texts = [...document.querySelectorAll('body *')].filter((e) => visible(e) &&
      [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()));
  return {
    text: texts.map((e) => {
      const s = getComputedStyle(e);
      const a = lum(rgb(s.color)), b = lum(background(e));
      return {tag: e.tagName, text: e.textContent.trim().slice(0, 20), size: parseFloat(s.fontSize),
              lineHeight: parseFloat(s.lineHeight) / parseFloat(s.fontSize),
              contrast: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
    }),
    targets: [...document.querySelectorAll('button, input, a')].filter(visible).map((e) => {
      const r = e.getBoundingClientRect(); return {text: e.textContent.trim().slice(0, 10), w: r.width, h: r.height};
    }),
  };
}"""


def assert_age_friendly(page: Page):
    measured = page.evaluate(MEASURE)
    for t in measured["text"]:
        minimum = 32 if t["tag"] in ("H1", "H2") else 24
        assert t["size"] >= minimum, t
        assert t["contrast"] >= 4.5, t
        assert t["lineHeight"] >= 1.3 or t["tag"] in ("BUTTON", "OUTPUT"), t  # one-line labels centre themselves
    for target in measured["targets"]:
        assert target["w"] >= 60 and target["h"] >= 60, target
    return measured


def test_kiosk_verify_with_keypad_and_idle_reset(gateway, page):
    page.goto(gateway.url + "/kiosk")
    measured = assert_age_friendly(page)
    assert len(measured["targets"]) >= 10
    page.click("text=查我家能领什么")
    wait_for_bot_count(page, 1)
    assert "户主的姓名" in bot_texts(page)[-1]
    page.fill("#input", "张三")
    page.click(".send")
    wait_for_bot_count(page, 2)
    page.wait_for_selector("#keypad:not([hidden])")
    assert_age_friendly(page)
    for key in "125447":
        page.click(f'#keypad button[data-key="{key}"]')
    assert page.inner_text("#code") == "125447"
    page.click("#code-ok")
    wait_for_bot_count(page, 4)
    answer = "\n".join(bot_texts(page))
    assert "张三家" in answer and "125447" not in page.inner_text("body")
    assert page.locator(".speak").count() >= 1  # read aloud, per answer
    assert_age_friendly(page)
    # after an answer the topics are one touch away, and a topic asked from there is answered
    assert page.is_visible("#more-topics") and not page.is_visible("#topics")
    page.click("#more-topics")
    assert page.is_visible("#topics")
    answered = len(bot_texts(page))
    page.click("#topics >> text=养老服务")
    wait_for_bot_count(page, answered + 1)
    assert "敬老院" in bot_texts(page)[-1] and page.is_visible("#more-topics")
    page.screenshot(path=str(SHOTS / "kiosk-answer.png"))
    # left alone, the kiosk forgets everything (idle timer: 4 s in this test, 90 s by default)
    page.wait_for_function("document.querySelectorAll('.from-bot').length === 0", timeout=15_000)
    assert page.is_visible("#topics") and "张三" not in page.inner_text("body")
    page.click("text=查我家能领什么")
    wait_for_bot_count(page, 1)
    assert "户主的姓名" in bot_texts(page)[-1]  # the verification was forgotten too
