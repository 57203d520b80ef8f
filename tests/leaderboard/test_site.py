"""The static leaderboard site, opened from file:// in a real headless Chromium driven over the DevTools
protocol: the table renders, sorts and filters, entry pages show their plots, and contributed strings
(an entry named ``<script>alert(1)</script>``) show as text with no script run.

Chromium is Debian's ``chromium`` package (.ci/run installs it); without it these tests skip."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from support.leaderboard_board import ENTRY, make_board
from support.leaderboard_board import pins as _pins
from support.leaderboard_board import write as _write

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EVIL_NAME = "<script>alert(1)</script>"
EVIL_PROVIDER = "<img src=x onerror=\"document.title='pwned'\">"
EVIL_CONTACT = '"><script>window.__pwned = 1</script>'
SOLO_NAME = "<b>solo</b> & 'friends'"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed at /usr/bin/chromium (apt-get install -y chromium; .ci/run does it)",
)


# ---------------------------------------------------------------- the site under test


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two mock entries judged on a tiny release (one replay-verified bundle folder, one archive with a
    hostile display name), plus a local run of a model with no entry; built into a site."""
    from runner.cli.app import main
    from runner.config import compose
    from runner.pipeline import execute_run

    tmp = tmp_path_factory.mktemp("site")
    pins = _pins()
    board = make_board(tmp / "lb", pins)
    evil = ENTRY.format(model="mock/xss", name=json.dumps(EVIL_NAME))
    evil = evil.replace("provider: tests", f"provider: {json.dumps(EVIL_PROVIDER)}")
    evil = evil.replace("contact: nobody", f"contact: {json.dumps(EVIL_CONTACT)}")
    _write(board / "entries" / "evil__xss.yaml", evil)
    store = tmp / "store" / "vat.duckdb"
    out = tmp / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.setenv("VAT_LEADERBOARD_DIR", str(board))
        mp.setenv("VAT_VERIFY_HMAC_KEY", "maintainer-test-key")  # the replay record is signed, so it counts
        common = [f"store.path={store}", "execution.progress=false"]
        for entry in ("test__mock-a", "evil__xss"):
            assert main(["leaderboard", "run", f"entry={entry}", "release=t1", *common]) == 0
        sub = board / "submissions"
        assert main(["bundle", "entry=test__mock-a", "release=t1", f"out={sub / 'a'}", *common]) == 0
        assert main(["verify", str(sub / "a"), "replay=5"]) == 0
        assert main(["bundle", "entry=evil__xss", "release=t1", f"out={sub / 'xss.tar.gz'}", *common]) == 0
        solo = compose(
            [
                "model.name=mock/solo",
                f"model.display_name={json.dumps(SOLO_NAME)}",
                "strategy=fewshot_2",
                "selection.split=all",
                "selection.scenes=[" + ",".join(p.split("@")[0] for p in pins) + "]",
                *common,
            ]
        )
        execute_run(solo, [])
        assert main(["leaderboard", "build", f"out={out}", *common]) == 0
    doc = json.loads((out / "data" / "leaderboard.json").read_text())
    yield {"out": out, "doc": doc, "index": (out / "index.html").as_uri()}


# ---------------------------------------------------------------- a tiny DevTools-protocol client


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol (aiohttp's websocket client)."""

    def __init__(self, profile: Path) -> None:
        import aiohttp

        self.proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # type: ignore[union-attr]
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        self.loop = asyncio.new_event_loop()
        self.http = self.loop.run_until_complete(self._session(aiohttp))
        self.ws = self.loop.run_until_complete(
            self.http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        )
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.dialogs: list[dict[str, Any]] = []
        self.session: str | None = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    @staticmethod
    async def _session(aiohttp: Any) -> Any:
        return aiohttp.ClientSession()

    async def _call(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        await self.ws.send_json(msg)
        while True:
            reply = json.loads((await asyncio.wait_for(self.ws.receive(), timeout)).data)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, event: dict[str, Any]) -> None:
        if "method" not in event:
            return
        self.events.append(event)
        if event["method"] == "Page.javascriptDialogOpening":
            # A script ran alert(): record it and dismiss it so the page does not block.
            self.dialogs.append(event["params"])
            self.next_id += 1
            asyncio.ensure_future(
                self.ws.send_json(
                    {
                        "id": self.next_id,
                        "method": "Page.handleJavaScriptDialog",
                        "params": {"accept": True},
                        "sessionId": self.session,
                    }
                )
            )

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer (events meanwhile are recorded)."""
        return self.loop.run_until_complete(self._call(method, params, timeout))

    def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            self.js("1")  # pumps the event stream

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page and return its JSON value."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def exceptions(self) -> list[dict[str, Any]]:
        """Uncaught script errors since the last navigation."""
        return [e["params"] for e in self.events if e["method"] == "Runtime.exceptionThrown"]

    def close(self) -> None:
        """Close the connection and end the browser process (only the one this object started)."""
        try:
            self.loop.run_until_complete(self.ws.close())
            self.loop.run_until_complete(self.http.close())
        finally:
            self.loop.close()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def _nvat_column(browser: Browser) -> list[float | None]:
    cells = browser.js(
        "[...document.querySelectorAll('#board-body td[data-col=nvat]')].map(td => td.firstChild.textContent)"
    )
    return [None if c.strip() == "–" else float(c) for c in cells]


# ---------------------------------------------------------------- in the browser


@needs_chromium
def test_table_renders(browser, site):
    browser.goto(site["index"])
    rows = browser.js("document.querySelectorAll('#board-body tr').length")
    n = len(site["doc"]["rows"])
    # 2 entries × 2 conditions from bundles, and 1 local run of an unregistered model.
    assert n == 5 and rows == n
    assert browser.js("document.getElementById('count').textContent") == f"{n} of {n} rows"
    headers = browser.js("[...document.querySelectorAll('#board-head th')].map(th => th.textContent)")
    assert headers == [
        "Entry",
        "Strategy",
        "Target",
        "Direction",
        "Gain [95% CI]",
        "nVAT corrected [95% CI]",
        "Gini corrected [95% CI]",
        "Hubs",
        "Coverage",
        "Status",
    ]
    statuses = browser.js("[...document.querySelectorAll('#board-body .badge')].map(b => b.textContent)")
    assert sorted(statuses) == ["checked", "checked", "local", "verified", "verified"]
    assert browser.exceptions() == []
    assert "fake judge" in browser.js("document.querySelector('.caveat').textContent")


@needs_chromium
def test_sorting_by_nvat(browser, site):
    browser.goto(site["index"])
    browser.js("document.querySelector('th[data-key=nvat] button').click()")
    asc = _nvat_column(browser)
    assert browser.js("document.querySelector('th[data-key=nvat]').getAttribute('aria-sort')") == "ascending"
    finite = [x for x in asc if x is not None]
    assert len(finite) >= 4 and finite == sorted(finite) and len(set(finite)) > 1
    browser.js("document.querySelector('th[data-key=nvat] button').click()")
    desc = [x for x in _nvat_column(browser) if x is not None]
    assert desc == sorted(finite, reverse=True)
    assert browser.js("document.querySelector('th[data-key=nvat]').getAttribute('aria-sort')") == "descending"


@needs_chromium
def test_filters(browser, site):
    browser.goto(site["index"])
    browser.js(
        "const s = document.getElementById('f-target'); s.value = 'power'; s.dispatchEvent(new Event('change'))"
    )
    targets = browser.js(
        "[...document.querySelectorAll('#board-body td[data-col=target]')].map(td => td.textContent)"
    )
    assert targets == ["power", "power"]
    browser.js(
        "{ const s = document.getElementById('f-target'); s.value = ''; s.dispatchEvent(new Event('change'));"
        "const q = document.getElementById('f-q'); q.value = 'mock/a'; q.dispatchEvent(new Event('input')); }"
    )
    models = browser.js("[...document.querySelectorAll('#board-body .model')].map(m => m.textContent)")
    assert models == ["mock/a", "mock/a"]


@needs_chromium
def test_entry_page_shows_its_plots(browser, site):
    browser.goto(site["index"])
    href = browser.js(
        "[...document.querySelectorAll('#board-body .entry-cell a')].find(a => a.textContent === 'Mock A').href"
    )
    assert href.startswith("file://") and "/entries/test__mock-a.html#" in href
    browser_href = href.split("#")[0]
    browser.goto(browser_href)
    sections = browser.js("document.querySelectorAll('section.condition').length")
    assert sections == 2
    plots = browser.js(
        "[...document.querySelectorAll('section.condition figure.plot svg')].map(s => "
        "({w: s.getBoundingClientRect().width, h: s.getBoundingClientRect().height, "
        "title: s.querySelector('title').textContent, rects: s.querySelectorAll('rect').length, "
        "polys: s.querySelectorAll('polygon').length}))"
    )
    assert len(plots) == 8
    assert all(p["w"] > 200 and p["h"] > 200 for p in plots), plots
    titles = [p["title"] for p in plots]
    assert (
        sum(t.startswith("Coupling R") for t in titles) == 2
        and sum(t.startswith("VAT(u)") for t in titles) == 2
    )
    assert (
        sum(t.startswith("GND") for t in titles) == 2 and sum(t.startswith("Mean shift") for t in titles) == 2
    )
    heatmap = next(p for p in plots if p["title"].startswith("Coupling R"))
    assert heatmap["rects"] >= 100  # a 10 × 10 matrix
    rows = [r for r in site["doc"]["rows"] if r["entry"] == "test__mock-a"]
    rings = (
        1 if all((r.get("null") or {}).get("vat") for r in rows) else 0
    )  # the null ring, once rows carry it
    assert next(p for p in plots if p["title"].startswith("VAT(u)"))["polys"] == 1 + rings
    assert browser.js("document.querySelector('.badge').textContent") == "verified"
    assert browser.exceptions() == []


@needs_chromium
def test_contributed_strings_show_as_text_and_run_nothing(browser, site):
    for page in ("index.html", "entries/evil__xss.html", "entries/local__mock-solo.html"):
        browser.dialogs.clear()
        browser.goto((site["out"] / page).as_uri())
        title = browser.js("document.title")
        assert "pwned" not in title
        text = browser.js("document.body.innerText")
        assert browser.js("window.__pwned === undefined")
        assert browser.js("document.querySelectorAll('img').length") == 0
        inline = browser.js("[...document.scripts].filter(s => !s.src).length")
        assert inline == 0
        if page != "entries/local__mock-solo.html":
            assert EVIL_NAME in text, page
        if page != "index.html":
            h1 = browser.js("document.querySelector('h1').textContent")
            assert h1 in (EVIL_NAME, SOLO_NAME)
            assert browser.js("document.querySelector('h1').children.length") == 0
        if page == "entries/evil__xss.html":
            assert EVIL_PROVIDER in text and EVIL_CONTACT.strip() in text
        assert browser.dialogs == [], f"a script ran on {page}: {browser.dialogs}"
        assert browser.exceptions() == []
    browser.goto(site["index"])
    names = browser.js("[...document.querySelectorAll('#board-body .entry-cell a')].map(a => a.textContent)")
    assert EVIL_NAME in names and SOLO_NAME in names


@needs_chromium
def test_the_models_board_is_the_default_view(browser, site):
    """Issue 21.4: the site ranked conditions (80 rows for 5 entries), not models."""
    browser.goto(site["index"])
    assert browser.js("document.getElementById('models-view').hidden") is False
    assert browser.js("document.getElementById('conditions-view').hidden") is True
    board = site["doc"]["board"]
    entries = browser.js("[...document.querySelectorAll('#models-body tr')].map(tr => tr.dataset.entry)")
    assert entries == [b["entry"] for b in board] and len(entries) == len(site["doc"]["entries"]) == 3
    headers = browser.js("[...document.querySelectorAll('#models-head th')].map(th => th.textContent)")
    assert headers[:4] == ["Rank", "Entry", "Tax [95% CI]", "Gain [95% CI]"]
    ranks = browser.js(
        "[...document.querySelectorAll('#models-body td[data-col=rank]')].map(td => td.textContent)"
    )
    for b, text in zip(board, ranks, strict=True):
        if b["ranked"]:
            assert text.startswith(
                str(b["rank_lo"]) if b["rank_lo"] == b["rank_hi"] else f"{b['rank_lo']}–{b['rank_hi']}"
            )
        else:
            assert text.startswith("–")
    link = browser.js("document.querySelector('#models-body .entry-cell a').getAttribute('href')")
    assert re.fullmatch(r"entries/[a-z0-9_.-]+\.html", link)  # condition detail one click away
    assert browser.js("document.querySelector('figure.chart svg title').textContent").startswith(
        "Gain against tax"
    )
    assert browser.exceptions() == []


@needs_chromium
def test_view_filters_and_sort_are_kept_in_the_url(browser, site):
    """Issue 21.4: filters were not kept in the URL (a view could not be shared)."""
    browser.goto(site["index"])
    browser.js("document.getElementById('tab-conditions').click()")
    browser.js(
        "const s = document.getElementById('f-target'); s.value = 'power'; s.dispatchEvent(new Event('change'))"
    )
    browser.js("document.querySelector('th[data-key=nvat] button').click()")
    shared = browser.js("location.hash")
    assert "view=conditions" in shared and "target=power" in shared and "sort=nvat" in shared
    browser.goto("about:blank")
    browser.goto(site["index"] + shared)
    assert browser.js("document.getElementById('conditions-view').hidden") is False
    assert browser.js("document.getElementById('f-target').value") == "power"
    targets = browser.js(
        "[...document.querySelectorAll('#board-body td[data-col=target]')].map(td => td.textContent)"
    )
    assert targets == ["power", "power"]
    assert browser.js("document.querySelector('th[data-key=nvat]').getAttribute('aria-sort')") == "ascending"
    assert browser.exceptions() == []


@needs_chromium
def test_phone_layout_keeps_the_entry_column_in_view(browser, site):
    """Issue 21.4: at 400 px the table was 1,203 px wide in a 335 px box and the entry column scrolled away."""
    browser.call(
        "Emulation.setDeviceMetricsOverride", width=400, height=900, deviceScaleFactor=1, mobile=True
    )
    try:
        for view, table in (("models", "models"), ("conditions", "leaderboard")):
            browser.goto("about:blank")  # a fragment-only change would not load the page again
            browser.goto(site["index"] + f"#view={view}")
            assert browser.js("document.documentElement.scrollWidth") <= 400, (
                view
            )  # the page does not overflow
            wrap = f"document.getElementById('{table}').parentElement"
            assert browser.js(f"{wrap}.getBoundingClientRect().right") <= 400
            left = browser.js(f"{wrap}.getBoundingClientRect().left")
            browser.js(f"{wrap}.scrollLeft = 400")
            assert browser.js(f"{wrap}.scrollLeft") > 0, view  # the numbers do scroll sideways …
            cell = browser.js(
                f"document.querySelector('#{table} td.entry-cell').getBoundingClientRect().left"
            )
            assert cell >= left - 1 and cell < left + 80, (view, cell, left)  # … and the entry stays in view
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")


# ---------------------------------------------------------------- the files


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))


def _inline_svgs(page: Path) -> list[Any]:
    """Every inline <svg> of a page, parsed."""
    import xml.etree.ElementTree as ET

    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page.read_text(), flags=re.S)]


def test_site_figures_scale_and_carry_their_intervals(site):
    """Issue 20.4: the site's SVGs had fixed 480 px canvases and GND bars without whiskers."""
    ns = "{http://www.w3.org/2000/svg}"
    out: Path = site["out"]
    svgs = _inline_svgs(out / "entries" / "test__mock-a.html") + _inline_svgs(out / "index.html")
    assert len(svgs) == 8 + 1
    for svg in svgs:
        assert svg.get("width") == "100%" and len((svg.get("viewBox") or "").split()) == 4
    rows = [r for r in site["doc"]["rows"] if r["entry"] == "test__mock-a"]
    gnds = [s for s in svgs if (s.findtext(f"{ns}title") or "").startswith("GND")]
    for svg, row in zip(gnds, rows, strict=True):
        with_ci = [v for v, ci in (row.get("mean_shift_ci") or {}).items() if ci and ci[0] is not None]
        whiskers = [ln for ln in svg.iter(f"{ns}line") if ln.get("class") == "interval"]
        assert with_ci and len(whiskers) == len(with_ci)
    (chart,) = [s for s in svgs if (s.findtext(f"{ns}title") or "").startswith("Gain against tax")]
    drawn = [b for b in site["doc"]["board"] if b.get("tax") is not None and b.get("gain") is not None]
    expected = sum(bool(b.get("tax_ci")) + bool(b.get("gain_ci")) for b in drawn)
    assert len([ln for ln in chart.iter(f"{ns}line") if ln.get("class") == "interval"]) == expected


def test_site_is_self_contained(site):
    out: Path = site["out"]
    pages = sorted(out.rglob("*.html"))
    assert {p.relative_to(out).as_posix() for p in pages} >= {
        "index.html",
        "scenes.html",
        "entries/test__mock-a.html",
        "entries/evil__xss.html",
        "entries/local__mock-solo.html",
    }
    for page in pages:
        parser = _Refs()
        parser.feed(page.read_text())
        for tag, attr, value in parser.refs:
            if value.startswith(("http://", "https://")):
                # Only the outbound link of an entry (its model card); nothing the page loads.
                assert tag == "a" and 'rel="noopener noreferrer nofollow"' in page.read_text(), (page, value)
                continue
            assert not value.startswith(("//", "data:", "javascript:")), (page, value)
            target = (page.parent / value.split("#")[0]).resolve() if value.split("#")[0] else page
            assert target.exists(), f"{page.name}: {attr}={value} does not exist"
    for asset in ("assets/style.css", "assets/app.js", "data/leaderboard.js"):
        text = (out / asset).read_text()
        assert not re.search(
            r"(url\(|import |fetch\(|XMLHttpRequest|https?://)", text.replace("https://example.org/x", "")
        ), asset


def test_data_files_and_downloads(site):
    out: Path = site["out"]
    doc = site["doc"]
    assert doc["schema_version"] == 1 and doc["release"]["id"] == "t1" and len(doc["rows"]) == 5
    js = (out / "data" / "leaderboard.js").read_text()
    assert "window.VAT_LEADERBOARD = " in js and "</script" not in js.lower() and EVIL_NAME not in js
    payload = js.split("window.VAT_LEADERBOARD = ", 1)[1].rstrip().rstrip(";")
    assert json.loads(payload)["entries"]["evil__xss"]["display_name"] == EVIL_NAME
    with (out / "data" / "leaderboard.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and {"entry", "gain", "nvat", "nvat_std", "gini", "hubs", "status"} <= set(rows[0])
    table = pq.read_table(out / "data" / "leaderboard.parquet")
    assert table.num_rows == 5 and table.schema.field("nvat").type == "double"
    assert sorted(table.column("status").to_pylist()) == [
        "checked",
        "checked",
        "local",
        "verified",
        "verified",
    ]
    scenes = (out / "scenes.html").read_text()
    assert all(f"<code>{p}</code>" in scenes for p in _pins())


def test_downloads_hold_what_the_page_says(site):
    """Issue 21.4: the CSV promised per-value shifts, GND, VAT(u) and coupling; only the JSON had them."""
    out: Path = site["out"]
    doc = site["doc"]
    values = doc["values"]
    with (out / "data" / "leaderboard.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    by_run = {r["run_id"]: r for r in rows}
    for r in doc["rows"]:
        line = by_run[r["run_id"]]
        for v in values:
            assert float(line[f"shift_{v}"]) == pytest.approx(r["mean_shift"][v])
            assert float(line[f"vat_{v}"]) == pytest.approx(r["vat"][v])
            gnd = r["gnd"][v]
            assert (line[f"gnd_{v}"] == "") if gnd is None else float(line[f"gnd_{v}"]) == pytest.approx(gnd)
            assert float(line[f"shift_ci_low_{v}"]) == pytest.approx(r["mean_shift_ci"][v][0])
        u, w = values[0], values[5]
        assert float(line[f"coupling_{u}__{w}"]) == pytest.approx(r["coupling"][0][5])
    assert sum(1 for c in rows[0] if c.startswith("coupling_")) == len(values) * (len(values) - 1) // 2
    table = pq.read_table(out / "data" / "leaderboard.parquet")
    assert table.schema.field(f"shift_{values[0]}").type == "double" and table.num_rows == len(rows)
    with (out / "data" / "board.csv").open() as fh:
        board = list(csv.DictReader(fh))
    assert [b["entry"] for b in board] == [b["entry"] for b in doc["board"]]
    page = (out / "index.html").read_text()
    assert "board.csv" in page and "coupling_&lt;u&gt;__&lt;w&gt;" in page


def _board_row(
    entry: str, target: str, nvat: float, corrected: float | None, status: str = "checked"
) -> dict:
    row = {
        "entry": entry,
        "status": status,
        "strategy": "fewshot_4",
        "step": None,
        "target": target,
        "direction": "reinforce",
        "anchor": f"{entry}-{target}-{status}",
        "gain": 0.2,
        "gain_ci": [0.1, 0.3],
        "nvat": nvat,
        "coverage": {"parsed": 9, "planned": 10},
    }
    if corrected is not None:  # the interval belongs to the corrected estimate (METRICS.md §8)
        row["nvat_corrected"], row["nvat_ci"] = corrected, [corrected - 0.1, corrected + 0.1]
        row["signal"] = {"nvat": corrected > 0.15}
    return row


def test_the_site_module_keeps_its_public_names_after_the_split():
    """site.py (1034 lines) was split by job; `runner.leaderboard.site` still exports what it did."""
    import runner.leaderboard.site as site_module

    before = "BOARD_COLUMNS SCHEMA_VERSION STATUS_ORDER STATUS_TEXT SUMMARY_COLUMNS SiteData Z95 board_text"
    before += " build_site bundle_rows collect condition_key csv_columns data_document entry_page esc"
    before += " gain_tax_chart index_page model_board rank_bounds render report_skipped safe_link"
    before += " scenes_page script_json store_rows write_downloads"
    assert set(before.split()) <= set(site_module.__all__)
    assert all(callable(getattr(site_module, n)) or n.isupper() for n in before.split())
    for part in ROOT.glob("runner/leaderboard/site*.py"):
        assert len(part.read_text().splitlines()) < 600, part.name


def test_rank_bounds_by_hand():
    from runner.leaderboard.site import rank_bounds

    assert rank_bounds([[0.0, 1.0], [0.5, 1.5], [2.0, 3.0], None]) == [(1, 3), (1, 3), (3, 4), (1, 4)]
    assert rank_bounds([[0.0, 0.1], [0.2, 0.3]]) == [(1, 1), (2, 2)]


def test_model_board_by_hand():
    from runner.leaderboard.site import model_board

    rows = [
        _board_row("a", "security", 0.6, 0.1),
        _board_row("a", "power", 0.7, 0.2),
        _board_row("a", "power", 0.9, 0.9, status="local"),  # a worse status of the same entry: ignored
        _board_row("b", "security", 0.9, 0.5),
        _board_row("b", "power", 0.9, 0.5),
        {**_board_row("flat", "security", 0.5, 0.0), "gain": 0.0, "gain_ci": [-0.1, 0.1]},
        _board_row("old", "security", 0.3, None),
    ]
    board = model_board(rows, release_conditions=2)
    assert [b["entry"] for b in board] == ["a", "b", "flat", "old"]
    a = board[0]
    # corrected taxes 0.1 and 0.2 with intervals of half-width 0.1 → mean 0.15 ± 1.96·√(2·(0.1/1.96)²)/2
    assert a["tax"] == pytest.approx(0.15) and a["tax_basis"] == "nvat_corrected"
    assert a["tax_ci"] == pytest.approx([0.15 - 0.1 / 2**0.5, 0.15 + 0.1 / 2**0.5])
    assert a["gain"] == pytest.approx(0.2) and a["gain_ci"] == pytest.approx(
        [0.2 - 0.1 / 2**0.5, 0.2 + 0.1 / 2**0.5]
    )
    assert a["conditions"] == 2 and a["status"] == "checked" and a["signal_share"] == 0.5
    assert a["coverage_share"] == pytest.approx(0.9)
    assert (a["rank_lo"], a["rank_hi"], board[1]["rank_lo"], board[1]["rank_hi"]) == (1, 1, 2, 2)
    assert board[2]["ranked"] is False and "includes 0" in board[2]["unranked_because"]
    assert board[3]["ranked"] is False and "no permutation null" in board[3]["unranked_because"]


def test_script_json_escapes_everything_that_could_end_a_script():
    from runner.leaderboard.site import script_json

    text = script_json({"name": "</script><!-- \u2028\u2029 & >"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"name": "</script><!-- \u2028\u2029 & >"}


def test_a_tampered_bundle_is_left_out_of_the_site(site, tmp_path, monkeypatch, vat):
    board = tmp_path / "lb"
    shutil.copytree(site["out"].parent / "lb", board)
    manifest = json.loads((board / "submissions" / "a" / "manifest.json").read_text())
    manifest["metrics"][0]["gain"] = 0.99
    (board / "submissions" / "a" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("VAT_LEADERBOARD_DIR", str(board))
    result = vat("leaderboard", "build", f"out={tmp_path / 'site'}", "store=false")
    assert result.code == 0
    assert "bundle left out of the site: a:" in result.err and "claimed gain 0.99" in result.err
    doc = json.loads((tmp_path / "site" / "data" / "leaderboard.json").read_text())
    assert {r["entry"] for r in doc["rows"]} == {"evil__xss"}


def test_demo_builds_the_site_and_prints_its_path(vat, tmp_path):
    result = vat(
        "demo",
        "model.name=mock/demo",
        f"store.path={tmp_path / 'vat.duckdb'}",
        f"report.dir={tmp_path / 'report'}",
        "execution.progress=false",
    )
    assert result.code == 0, result.err
    index = tmp_path / "site" / "index.html"
    assert index.exists() and f"leaderboard site: {index}" in result.out.replace("\n", "")
    doc = json.loads((tmp_path / "site" / "data" / "leaderboard.json").read_text())
    from runner.config import compose

    demo_scenes = compose(["selection=demo"]).selection.max_scenes
    assert [r["status"] for r in doc["rows"]] == ["local"] and doc["rows"][0]["n_scenes"] == demo_scenes
