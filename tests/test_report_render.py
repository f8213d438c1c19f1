"""The HTML report as a browser shows it: headless chromium renders a report built from a small real
run (real filter with a stub judge, real export), and the screenshot and the rendered DOM are checked.

Without chromium the test fails and says how to install it, unless SOCRATIC_SDG_SKIP_BROWSER_TESTS
holds the reason to skip (`make test` sets it when it cannot install chromium): a missing browser
must not pass unnoticed in CI."""

from __future__ import annotations

import os
import shutil
from html.parser import HTMLParser

import pytest
from PIL import Image

from socratic_sdg.export import report
from socratic_sdg.testing import report_run

SKIP_ENV = "SOCRATIC_SDG_SKIP_BROWSER_TESTS"
WIDTH, HEIGHT = 1280, 4000
FIGURES = {
    "funnel", "drop-reasons", "acceptance-by-source", "coverage-map", "student-lengths", "tutor-lengths", "records-per-source", "stage-seconds",
    "diversity-student-level", "diversity-tone", "diversity-misconception", "diversity-request-type",
    "judge-mistake-identification", "judge-guidance", "judge-actionability", "judge-grounding", "judge-tone",
}


@pytest.fixture(scope="module")
def browser() -> str:
    path = shutil.which(report_run.BROWSER)
    if path:
        return path
    if os.environ.get(SKIP_ENV):
        pytest.skip(f"chromium is not installed: {os.environ[SKIP_ENV]}")
    pytest.fail("chromium is not on PATH, and the report's rendering test needs it: install it (Debian/Ubuntu: "
                "apt-get install --no-install-recommends chromium; `make test` does it when run as root), or set "
                f"{SKIP_ENV}=<why> to skip this test")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    folders = report_run.write_run(tmp_path_factory.mktemp("run"))
    return folders["dataset"] / "report.html"


class _Rendered(HTMLParser):
    """The figures of a DOM and the <svg> elements inside each."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, int] = {}
        self.ids: set[str] = set()
        self._figure: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "figure":
            self._figure = attrs.get("id")
            self.svgs[self._figure] = 0
        elif tag == "svg" and self._figure:
            self.svgs[self._figure] += 1

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def test_the_screenshot_shows_the_charts(browser, page, tmp_path):
    png = report_run.screenshot(page, tmp_path / "report.png", WIDTH, HEIGHT)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
        pixels = image.convert("RGB")
    colors = dict((rgb, n) for n, rgb in pixels.getcolors(maxcolors=WIDTH * HEIGHT))
    background = max(colors, key=colors.get)
    assert background == (255, 255, 255) and len(colors) > 100  # text, bars and tiles, not a blank page
    assert sum(n for rgb, n in colors.items() if rgb != background) > 0.03 * WIDTH * HEIGHT
    # the bars of the funnel, of the drop reasons, of acceptance per document and the coverage map's
    # tiles of sections with nothing accepted are painted in their colours
    for color in (report.COLORS["blue"], report.COLORS["red"], report.COLORS["teal"], report.TILE_NONE):
        assert colors.get(_rgb(color), 0) > 200, color


def test_the_rendered_page_has_every_figure(browser, page):
    dom = _Rendered()
    dom.feed(report_run.rendered_dom(page))
    assert FIGURES <= set(dom.svgs), FIGURES - set(dom.svgs)
    assert all(dom.svgs[figure] >= 1 for figure in FIGURES), {f: dom.svgs[f] for f in FIGURES}
    # the request type's instruction varies with the request type: no table of its own
    assert "diversity-request-instruction" not in dom.svgs
    assert {"coverage", "coverage-table", "diversity", "judge", "rejected", "report-data"} <= dom.ids
