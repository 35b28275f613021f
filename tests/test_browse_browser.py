"""`auxreid browse` in a real browser: headless Chromium driven by selenium (`make browser` installs both).

The site of the demo run (artifacts/demo, when it has clustered rounds and its frames; else the shared tiny run of
tests/test_cli_train_round.py) is written into tmp_path and opened from disk. On the last round's page the
inline script sorts the cluster cards (by purity, descending then ascending; the order is checked against the
cards' data-* numbers) and filters them (size >= v, the pager's count), a card's link opens its cluster page
with its members' thumbnails decoded, and the browser logs no error. Screenshots of both pages go to tmp_path,
or to $AUXREID_SCREENSHOTS (the README's docs/img: `AUXREID_SCREENSHOTS=docs/img .venv/bin/python -m pytest -m slow
tests/test_browse_browser.py`), cropped to at most 1280x800.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from test_cli_train_round import built_run, invoke

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("needs chromium and chromedriver on PATH (`make browser` installs Debian's chromium and "
                "chromium-driver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium in the venv (`make browser`)")
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "artifacts" / "demo"
WIDTH, HEIGHT = 1280, 800

# The visible cards of the cluster listing, in page order: id and the numbers the script sorts by.
VISIBLE_CARDS = """
return Array.from(document.querySelectorAll('#clusters > .card'))
  .filter(function (el) { return el.style.display !== 'none'; })
  .map(function (el) { return [el.id, el.getAttribute('data-size'), el.getAttribute('data-purity')]; });
"""
ALL_CARDS = VISIBLE_CARDS.replace(".filter(function (el) { return el.style.display !== 'none'; })", "")


def _demo_usable() -> bool:
    if not any(DEMO.glob("round_*/clusters.h5")) or not (DEMO / "config.yaml").is_file():
        return False
    import yaml

    root = (yaml.safe_load((DEMO / "config.yaml").read_text()).get("data") or {}).get("root")
    return bool(root) and Path(root).is_dir()


@pytest.fixture(scope="module")
def site(request, module_tmp) -> tuple[Path, int]:
    """The browse site written into a temporary folder, and the round whose page the test opens (the last)."""
    out = module_tmp.mktemp("browse_site") / "browse"
    with pytest.MonkeyPatch.context() as patch:
        if _demo_usable():  # by its name, as `auxreid browse demo` (the pages name the run), the last two rounds
            patch.setenv("AUXREID_ARTIFACTS", str(DEMO.parent))
            run = DEMO.name
            rounds = sorted(int(p.parent.name.split("_")[1]) for p in DEMO.glob("round_*/clusters.h5"))[-2:]
        else:
            run = built_run(module_tmp.factory, request.getfixturevalue("tiny_synth"))
            rounds = [1]
        result = invoke("browse", run, "--rounds", ",".join(map(str, rounds)), "--out", out)
    assert result.exit_code == 0, result.output
    return out, rounds[-1]


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WIDTH},900", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    browser.set_window_size(WIDTH, 900)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def shots(module_tmp) -> Path:
    folder = os.environ.get("AUXREID_SCREENSHOTS")
    path = Path(folder) if folder else module_tmp.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _screenshot(driver, path: Path) -> None:
    """The viewport, cropped to WIDTH x HEIGHT, as an optimised PNG (a 256-colour palette: thumbnails and text)."""
    raw = path.with_suffix(".raw.png")
    driver.save_screenshot(str(raw))
    with Image.open(raw) as image:
        crop = image.convert("RGB").crop((0, 0, min(image.width, WIDTH), min(image.height, HEIGHT)))
    raw.unlink()
    crop.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _expected(cards: list[list[str]], key: int, desc: bool) -> list[str]:
    """The script's order: a stable sort of the cards (page order = cluster id) by one number, unknown last."""
    def value(card):
        v = float(card[key]) if card[key] else math.nan
        return (math.isnan(v), 0.0 if math.isnan(v) else (-v if desc else v))

    return [card[0] for card in sorted(sorted(cards, key=lambda c: int(c[0][1:])), key=value)]


def _images_loaded(driver, selector: str) -> list[tuple[str, int]]:
    """Waits until every `selector` image has finished loading; (src, naturalWidth) of each."""
    script = ("return Array.from(document.querySelectorAll(arguments[0]))"
              ".map(function (img) { return [img.complete, img.getAttribute('src'), img.naturalWidth]; });")
    WebDriverWait(driver, 20).until(lambda d: all(done for done, _, _ in d.execute_script(script, selector)))
    return [(src, width) for _, src, width in driver.execute_script(script, selector)]


def test_round_page_sorts_filters_and_opens_a_cluster(site, driver, shots):
    out, r = site
    driver.get((out / "index.html").as_uri())
    assert driver.find_element("css selector", f'#rounds tr[data-round="{r}"]')
    driver.find_element("css selector", f'#rounds tr[data-round="{r}"] a[href="round_{r:03d}/index.html"]').click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith(f"round_{r:03d}/index.html"))
    assert driver.find_element("tag name", "h1").text.startswith(f"Round {r}:")

    cards = driver.execute_script(ALL_CARDS)
    per_page = int(driver.find_element("id", "clusters").get_attribute("data-per-page"))
    assert len(cards) >= 2
    # On load: by size, descending (the form's defaults), one page shown.
    shown = [card[0] for card in driver.execute_script(VISIBLE_CARDS)]
    assert shown == _expected(cards, 1, desc=True)[:per_page]

    # Sort by purity: descending (the checkbox's default), then ascending.
    Select(driver.find_element("css selector", 'form[data-for="clusters"] select[name="sort"]')).select_by_value("purity")
    by_purity = [card[0] for card in driver.execute_script(VISIBLE_CARDS)]
    assert by_purity == _expected(cards, 2, desc=True)[:per_page]
    driver.find_element("css selector", 'form[data-for="clusters"] input[name="desc"]').click()
    ascending = driver.execute_script(VISIBLE_CARDS)
    assert [card[0] for card in ascending] == _expected(cards, 2, desc=False)[:per_page]
    purities = [float(card[2]) for card in ascending if card[2]]
    assert purities == sorted(purities)
    if len({card[1] for card in cards}) > 1 and len({card[2] for card in cards}) > 1:
        assert by_purity != shown, "sorting by purity left the size order in place"

    # Filter: size >= the median size hides the smaller clusters; the pager counts what is left.
    sizes = sorted(int(card[1]) for card in cards)
    floor = sizes[len(sizes) // 2]
    kept = [card for card in cards if int(card[1]) >= floor]
    size_input = driver.find_element("css selector", 'form[data-for="clusters"] input[data-key="size"]')
    size_input.send_keys(str(floor))
    filtered = driver.execute_script(VISIBLE_CARDS)
    assert [card[0] for card in filtered] == _expected(kept, 2, desc=False)[:per_page]
    assert all(int(card[1]) >= floor for card in filtered)
    hidden = driver.execute_script("return Array.from(document.querySelectorAll('#clusters > .card'))"
                                   ".filter(function (el) { return el.style.display === 'none'; }).length;")
    assert hidden == len(cards) - min(len(kept), per_page)
    info = driver.find_element("css selector", '.pager[data-for="clusters"] .info').text
    assert f"of {len(kept)}" in info and (len(kept) == len(cards) or f"({len(cards)} in all)" in info), info

    # Back to the default view (largest clusters first) for the screenshot and the click.
    size_input.clear()
    driver.execute_script("arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", size_input)
    driver.find_element("css selector", 'form[data-for="clusters"] input[name="desc"]').click()
    Select(driver.find_element("css selector", 'form[data-for="clusters"] select[name="sort"]')).select_by_value("size")
    first = driver.execute_script(VISIBLE_CARDS)[0]
    assert first[0] == _expected(cards, 1, desc=True)[0]
    driver.execute_script("document.getElementById('clusters-head').scrollIntoView();")
    _images_loaded(driver, f"#{first[0]} img")
    assert not _errors(driver)
    _screenshot(driver, shots / "browse_round.png")

    # A card's link opens its cluster page, whose members' thumbnails load.
    c = int(first[0][1:])
    driver.find_element("css selector", f"#{first[0]} .head a").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith(f"round_{r:03d}/clusters/c{c:05d}.html"))
    assert driver.find_element("tag name", "h1").text.startswith(f"Round {r}, cluster {c}: {first[1]} tracklets")
    members = driver.find_elements("css selector", "#members tr[id]")
    assert len(members) == int(first[1])
    for row in (members[0], members[-1]):  # lazily loaded: each row once scrolled into view
        driver.execute_script("arguments[0].scrollIntoView();", row)
        loaded = _images_loaded(driver, f"#{row.get_attribute('id')} img")
        assert loaded and all(width > 0 for _, width in loaded), loaded
    driver.execute_script("window.scrollTo(0, 0);")
    assert not _errors(driver)
    _screenshot(driver, shots / "browse_cluster.png")
    for name in ("browse_round.png", "browse_cluster.png"):
        with Image.open(shots / name) as image:
            assert image.width <= WIDTH and image.height <= HEIGHT
