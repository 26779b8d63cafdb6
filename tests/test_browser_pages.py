"""The web page finished (issue 15), in a real headless Chromium against a real `polymodal serve`: history and
addresses, rejected attachments, the Add-files list, errors in words, the kind filters as a radio group, whole-word
highlighting, audio cards, Markdown passages, Remove with Undo, a chosen voice language.

The harness (server, browser with a fake microphone, page) is test_browser.py's.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import test_browser as harness
from test_browser import snap, wait_until

server, browser, page = harness.server, harness.browser, harness.page  # the fixtures, used by name


def item_id(base: str, name: str) -> int:
    with urllib.request.urlopen(f"{base}/api/items?limit=200", timeout=10) as answer:
        items = json.load(answer)["items"]
    return next(item["item"] for item in items if item["name"] == name)


def search(page, words: str) -> None:
    page.fill("#q", words)
    page.keyboard.press("Enter")
    results = page.locator("#results")
    done = lambda: results.get_attribute("aria-busy") == "false" and results.locator(".card, .empty").count()  # noqa: E731
    wait_until(page, done, f"the results of {words!r}", 120)


def hash_of(page) -> str:
    return page.evaluate("() => location.hash")


def test_history_back_forward_and_scroll(server, page):
    searches: list[str] = []
    page.on("request", lambda r: searches.append(r.url) if r.url.endswith("/api/search") else None)
    page.goto(server + "/")
    page.wait_for_selector("#results .empty")
    search(page, "a cat")
    search(page, "coffee")
    page.get_by_role("radio", name="Images").click()
    wait_until(page, lambda: "m=image" in hash_of(page), "the filter in the address")
    assert hash_of(page) == "#/?q=coffee&m=image"
    page.go_back()
    wait_until(page, lambda: hash_of(page) == "#/?q=coffee", "back to the unfiltered search")
    assert page.locator("#q").input_value() == "coffee"
    assert page.get_by_role("radio", name="All").get_attribute("aria-checked") == "true"
    page.go_back()
    wait_until(page, lambda: page.locator("#q").input_value() == "a cat", "back to the first search")
    page.go_forward()
    wait_until(page, lambda: page.locator("#q").input_value() == "coffee", "forward again")
    assert page.url.startswith(server)  # three searches, and Back stayed in the app
    count = len(searches)

    page.set_viewport_size({"width": 1280, "height": 400})  # scroll down, open an item, come back
    page.mouse.wheel(0, 300)
    wait_until(page, lambda: page.evaluate("() => window.scrollY") > 100, "the page to scroll")
    scrolled = page.evaluate("() => window.scrollY")
    page.locator("#results > .card a.title").last.evaluate("a => a.click()")  # as is: no scrolling into view
    page.wait_for_selector(".item-layout")
    page.go_back()
    wait_until(page, lambda: not page.locator("#view-search").is_hidden(), "the search view")
    wait_until(page, lambda: abs(page.evaluate("() => window.scrollY") - scrolled) < 40, "the scroll position")
    assert len(searches) == count  # shown again as it was, not searched again


def test_addresses_state_what_is_shown(server, page, tmp_path):
    page.goto(server + "/#/?q=coffee")  # a shared address opens its search
    page.wait_for_selector("#results .card")
    assert page.locator("#q").input_value() == "coffee"
    search(page, "")  # an emptied query: the address is emptied too
    assert hash_of(page) in ("", "#/")
    search(page, "espresso")
    page.locator("#results > .card a.title").first.click()
    page.wait_for_selector(".item-layout")
    page.keyboard.press("/")  # back to the search as it was, not to an empty #/
    wait_until(page, lambda: hash_of(page) == "#/?q=espresso", "the search address")
    assert page.locator("#q").evaluate("q => q === document.activeElement")

    cat = item_id(server, "chelsea_cat.jpg")
    page.goto(f"{server}/#/item/{cat}")
    page.get_by_role("link", name="Find similar").click()
    wait_until(page, lambda: hash_of(page) == f"#/similar/{cat}", "the shareable similar address")
    page.wait_for_selector("#results .card")
    assert "chelsea_cat.jpg" in page.locator("#understood").inner_text()
    page.reload()  # the address alone shows it again
    page.wait_for_selector("#results .card")
    assert "Like chelsea_cat.jpg" in page.locator("#understood").inner_text()

    page.goto(server + "/")
    page.locator("#q").focus()
    page.keyboard.insert_text("x" * 2500)  # pasted: the box keeps to the service's limit, and says so
    assert len(page.locator("#q").input_value()) == 2000
    assert "at most 2,000 characters" in page.locator("#understood").inner_text()
    snap(page, tmp_path, "too-long")


def test_a_rejected_attachment_leaves_the_search(server, page):
    page.goto(server + "/")
    page.wait_for_selector("#results .empty")
    page.set_input_files("#attach", files=[{"name": "empty.jpg", "mimeType": "image/jpeg", "buffer": b""}])
    page.wait_for_selector("#banner:not([hidden])")
    assert "empty.jpg is empty" in page.locator("#banner").inner_text()
    assert not page.locator("#chips .chip").count()
    search(page, "a cat")  # later searches work
    assert page.locator("#results .card").count()


def test_errors_in_words_once(server, page):
    page.goto(server + "/#/item/abc")
    page.wait_for_selector("#view-item .empty")
    text = page.locator("#view-item").inner_text()
    assert "No such item" in text and "item_id" not in text and "valid integer" not in text
    words = page.evaluate("() => inWords('text: String should have at most 2000 characters')")
    assert words == "The search text is too long: at most 2,000 characters."
    response = page.request.post(server + "/api/search", data={"text": "x" * 2001})  # the service's own words
    shown = page.evaluate("(m) => inWords(m)", response.json()["error"])
    assert shown.startswith("The search text is too long") and shown.count("too long") == 1


def test_filters_are_a_radio_group_with_counts(server, page):
    page.goto(server + "/")
    wait_until(page, lambda: "items" in page.locator("#stats").inner_text(), "the collection counts")
    wait_until(page, lambda: page.locator(".filters .seg .count").count() >= 4, "the counts")
    assert page.get_by_role("radio", name="Video").is_hidden()  # no videos in the sample collection
    images = page.get_by_role("radio", name="Images")
    assert int(images.locator(".count").inner_text()) >= 5
    search(page, "coffee")
    page.get_by_role("radio", name="All").focus()
    page.keyboard.press("ArrowRight")
    wait_until(page, lambda: images.get_attribute("aria-checked") == "true", "arrow keys to choose")
    assert images.evaluate("b => b === document.activeElement")
    tab_stops = page.locator(".filters .seg[tabindex='0']")
    assert tab_stops.count() == 1 and tab_stops.first.get_attribute("data-modality") == "image"
    wait_until(page, lambda: "m=image" in hash_of(page), "the filtered search")
    page.keyboard.press("End")  # the last kind offered (Documents; Video is hidden)
    wait_until(page, lambda: "m=text" in hash_of(page), "End to choose the last kind")


def test_highlighting_whole_words_without_stop_words(server, page):
    page.goto(server + "/")
    marks = page.evaluate(
        """() => { const box = document.createElement("p");
                   const terms = queryTerms("what did the speaker say about cat");
                   box.append(highlight("Cattle and cats: what did she say about the cat’s bobcat?", terms));
                   return [...box.querySelectorAll("mark")].map((m) => m.textContent); }"""
    )
    assert marks == ["cats", "cat’s"]
    search(page, "what does the speaker say about times")
    marked = page.locator("#results mark").all_text_contents()
    assert marked and all(m.lower().startswith("time") for m in marked), marked


def test_audio_cards_and_passages(server, page, browser):
    page.goto(server + "/#/?q=dog%20barking&m=audio")
    page.wait_for_selector("#results .card.audio")
    first = page.locator("#results .card.audio").first
    assert not first.locator(".wave i").count()  # no made-up waveform
    wait_until(page, lambda: first.locator(".wave .length").inner_text().strip() not in ("", "0:00"), "the duration")
    coffee = item_id(server, "coffee.md")
    page.goto(f"{server}/#/item/{coffee}")
    page.wait_for_selector(".passages")
    passages = page.locator(".passages").inner_text()
    assert "# " not in passages and "##" not in passages  # Markdown shown as text, not as marks
    assert page.locator(".passages h2, .passages h3").count()

    small = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = small.new_page()
    phone.goto(f"{server}/#/item/{coffee}")
    phone.wait_for_selector(".item-layout")
    overflow = phone.locator(".item-head").evaluate("el => el.scrollWidth - el.clientWidth")
    assert overflow <= 0  # the path header wraps instead of being cut
    small.close()


def test_remove_has_undo(server, page):
    dahlia = item_id(server, "dahlia_flower.jpg")
    page.goto(server + "/")
    search(page, "dahlia flower")
    page.goto(f"{server}/#/item/{dahlia}")
    page.wait_for_selector(".item-layout")
    page.get_by_role("button", name="Remove").click()
    page.wait_for_selector("#toast:not([hidden])")
    assert "Removed dahlia_flower.jpg" in page.locator("#toast").inner_text()
    wait_until(page, lambda: "q=dahlia%20flower" in hash_of(page), "back to where the user was")  # not an empty home
    card = page.locator(f'#results .card[data-item="{dahlia}"]')
    # Going back runs the search again: its results may still be coming when the user (or this test) acts.
    wait_until(page, card.is_hidden, "the removed item gone from the results")
    page.locator("#toast").get_by_role("button", name="Undo").click()
    wait_until(page, card.is_visible, "the item back in the results after Undo")
    time.sleep(9)  # past the undo time: nothing was deleted
    with urllib.request.urlopen(f"{server}/api/items/{dahlia}", timeout=10) as answer:
        assert answer.status == 200

    page.goto(f"{server}/#/item/{dahlia}")
    page.wait_for_selector(".item-layout")
    page.get_by_role("button", name="Remove").click()
    deadline = time.monotonic() + 20
    while True:  # deleted for real once the undo time is over
        try:
            urllib.request.urlopen(f"{server}/api/items/{dahlia}", timeout=10).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            break
        assert time.monotonic() < deadline, "the item was not removed"
        time.sleep(0.5)


def test_a_short_retry_after_is_waited_out(server, page):
    """A search answered "too many requests, try again in 1 s" is asked again once, and its results shown."""
    refused: list[str] = []

    def refuse_once(route):
        if refused:
            return route.continue_()
        refused.append(route.request.url)
        body = json.dumps({"error": "too many requests; try again in 0.4 s", "code": "rate_limited"})
        route.fulfill(status=429, headers={"Retry-After": "1"}, content_type="application/json", body=body)

    page.route("**/api/search**", refuse_once)
    page.goto(server + "/")
    search(page, "coffee")
    assert refused and page.locator("#results .card").count()
    assert "too many" not in page.locator("#results").inner_text()


def test_add_files_lists_each_file(server, page, samples, tmp_path):
    fresh = tmp_path / "bread.md"
    fresh.write_text("# Bread\n\nSourdough needs a starter, flour, water and salt.\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    page.goto(server + "/#/add")
    page.set_input_files("#add-files", [str(fresh), str(empty), str(samples / "photos" / "rocket.jpg")])
    page.wait_for_selector(".job .state.done", timeout=300_000)
    rows = page.locator(".upload-files li")
    wait_until(page, lambda: rows.count() == 3 and not page.locator(".upload-files li.waiting").count(), "each file")
    by_name = {rows.nth(i).locator(".name").inner_text(): rows.nth(i) for i in range(3)}
    assert "skipped: empty file" in by_name["empty.txt"].inner_text()
    assert "indexed" in by_name["bread.md"].inner_text() and by_name["bread.md"].locator("a").count()
    assert "duplicate of photos/rocket.jpg" in by_name["rocket.jpg"].inner_text()  # the sample photo, already in
    job = page.locator(".job").first.inner_text()
    assert "uploads/" not in job and "0 of 0" not in job and "linked" not in job
    by_name["bread.md"].locator("a").click()
    page.wait_for_selector(".item-layout")
    assert page.locator("#view-item h1").inner_text() == "bread.md"


def test_voice_in_a_chosen_language(server, page):
    page.goto(server + "/")
    page.wait_for_selector("#results .empty")
    page.select_option("#voice-lang", "en")
    page.click("#mic")
    page.wait_for_selector("#mic[aria-pressed=true]")
    page.wait_for_timeout(4500)
    page.click("#mic")
    wait_until(page, lambda: "q=" in hash_of(page), "the words heard as the search", 120)
    heard = page.locator("#q").input_value().lower()
    assert "best" in heard or "times" in heard, heard  # the fake microphone says "it was the best of times..."
    page.reload()
    assert page.evaluate("() => document.querySelector('#voice-lang').value") == "en"  # the choice is kept
