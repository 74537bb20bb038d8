"""A run's report.html, opened offline in headless Chromium (Debian's, through Playwright): what a user sees."""
import re

import pytest

from tests.test_service import _launch_chromium, _require_browser
from wikiluigi.training import report, runfolder


@pytest.mark.slow
def test_the_report_shows_curves_best_step_corpus_settings_and_samples_offline(trained, tmp_path):
    sync_playwright, expect = _require_browser()
    run = trained[0]
    info = runfolder.load_info(run)
    path = report.write(run)                 # the trained run's own, drawn again: the same files
    requests = []
    with sync_playwright() as playwright:
        browser = _launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.as_uri())
            expect(page).to_have_title("trained: training run report")
            summary = page.locator("#summary")
            expect(summary.locator("tr", has_text="best step")).to_contain_text(str(info["best"]["step"]))
            expect(summary.locator("tr", has_text="best validation loss")).to_contain_text(
                f"{info['best']['val_loss']:.4g}")
            expect(summary.locator("tr", has_text="latest step")).to_contain_text("40")
            plot = page.locator("#loss-plot")
            expect(plot).to_be_visible()
            assert plot.evaluate("img => img.complete && img.naturalWidth") == 800     # the PNG, decoded
            validation = page.locator("#validation tr")
            expect(validation).to_have_count(1 + 4)                                    # steps 10, 20, 30, 40
            expect(validation.nth(4)).to_contain_text("40")
            corpus = page.locator("#corpus")
            expect(corpus.locator("tr", has_text="validation pages")).to_contain_text("3")
            expect(corpus.locator("tr", has_text="training pages")).to_contain_text("24")
            expect(page.locator("#settings tr", has_text="schedule")).to_contain_text("cosine")
            expect(page.locator("#settings tr", has_text="warmup_steps")).to_contain_text("2")
            samples = page.locator("#samples pre.sample")
            expect(samples).to_have_count(5)
            texts = samples.all_inner_texts()
            assert all(text.strip() for text in texts)
            assert not any(re.search(r"startof|endof|oftext", text) for text in texts)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []     # nothing fetched
