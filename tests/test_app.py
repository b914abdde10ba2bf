"""The local page (`python -m eval.app`): its session logic, its missing-Gradio exit, and a real browser run.

The browser test starts the app on a free loopback port, drives Debian's headless Chromium through Selenium
(upload a bundled photo, pick a painting, set 128 px, press the button), and checks the result image. Outside CI
it skips when Chromium, its driver, Gradio or Selenium is missing; with CI set it fails instead.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.app import __main__ as app_main
from eval.app.session import PageError, Request, Session
from jax_ast import imageio
from jax_ast.pretrained import params_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "jax_ast" / "samples"
CONTENT = SAMPLES / "content" / "colonnade_columns.jpg"  # portrait: its size tells it from the default cat
STYLE = SAMPLES / "style" / "hokusai_great_wave.jpg"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing; CI must install it (.ci/run)")
    pytest.skip(f"{what} is missing")


def test_without_gradio_the_command_says_how_to_install_it(monkeypatch, capsys):
    real = app_main.importlib.util.find_spec
    monkeypatch.setattr(app_main.importlib.util, "find_spec",
                        lambda name, *args: None if name == "gradio" else real(name, *args))
    assert app_main.main([]) == 2
    assert 'pip install "jax-ast[app]"' in capsys.readouterr().err


@pytest.fixture(scope="module")
def session():
    return Session()


def test_session_caches_style_codes_and_reports_bad_input(session, tmp_path):
    request = Request(content=CONTENT, styles=(STYLE,), size=64)
    first = session.stylize(request)
    assert first.image.shape == imageio.load_image(CONTENT, size=64).shape
    assert "compiled" in first.message and session.encodes == 1
    again = session.stylize(Request(content=CONTENT, styles=(STYLE,), size=64, alpha=0.5))
    assert session.encodes == 1  # a slider move re-runs only the stylisation
    assert not np.allclose(again.image, first.image)

    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("1", (12_000, 9_000)).save(huge)  # 108 Mpx: above the CLI's 100 Mpx limit, a small file
    other = tmp_path / "magenta.npz"
    params_file.save_params(other, {"params": first_params(session)}, meta={"arch": "magenta", "variant": "mobile"})
    cases = {"not a recognised image": Request(content=not_image, styles=(STYLE,), size=64),
             "too large .* limit 100000000": Request(content=huge, styles=(STYLE,), size=64),
             "holds params for arch 'magenta', not 'adain'": Request(content=CONTENT, styles=(STYLE,), size=64,
                                                                     arch="adain", variant=None, weights=str(other))}
    for expected, bad in cases.items():
        with pytest.raises(PageError, match=expected):
            session.stylize(bad)
    assert session.stylize(request).image.shape == first.image.shape  # still serving the installed model


def first_params(session: Session):
    return session._variables["params"]  # noqa: SLF001 (a params file of the loaded network, for the test)


@pytest.fixture
def app_url():
    if importlib.util.find_spec("gradio") is None:
        _missing("gradio")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user has
    process = subprocess.Popen([sys.executable, "-m", "eval.app"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline, lines = time.monotonic() + 180, []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "http://127.0.0.1:" in line:
                yield "http://" + line.split("http://", 1)[1].split()[0]
                break
            if not line and process.poll() is not None:
                pytest.fail("the app ended before serving:\n" + "".join(lines))
        else:
            pytest.fail("the app printed no address in 180 s:\n" + "".join(lines))
    finally:
        process.terminate()
        process.wait(timeout=30)


def _browser():
    try:
        from selenium import webdriver  # noqa: PLC0415 (optional: the test extra)
    except ImportError:
        _missing("selenium")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _missing("Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # every host but the loopback unresolvable: the page must work offline (no CDN fonts, no analytics)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))


def _result_pixels(src: str) -> np.ndarray:
    if src.startswith("data:"):
        data = base64.b64decode(src.split(",", 1)[1])
    else:
        with urllib.request.urlopen(src, timeout=30) as response:
            data = response.read()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255.0


@pytest.mark.slow
def test_page_in_headless_chromium(app_url, tmp_path):
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    driver = _browser()
    try:
        driver.get(app_url)
        wait = WebDriverWait(driver, 180)  # a shared CI machine can be slow
        wait.until(lambda d: d.find_elements(By.ID, "run"))
        driver.find_element(By.CSS_SELECTOR, "#content-upload input[type=file]").send_keys(str(CONTENT))
        wait.until(lambda d: CONTENT.stem in d.find_element(By.ID, "content-upload").text)
        driver.find_element(By.XPATH, f"//*[@id='style-pick']//label[contains(., '{STYLE.name}')]").click()
        size = driver.find_element(By.CSS_SELECTOR, "#size input[type=number]")
        size.send_keys(Keys.CONTROL, "a")
        size.send_keys("128", Keys.TAB)
        driver.find_element(By.ID, "run").click()
        image = WebDriverWait(driver, 300).until(
            lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, "#result img")), None))
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(1)  # let the inputs' previews render for the screenshot
        driver.save_screenshot(str(tmp_path / "app.png"))
        status = driver.find_element(By.ID, "status").text
        stylized = _result_pixels(image.get_attribute("src"))
    except Exception:
        driver.save_screenshot(str(tmp_path / "failure.png"))  # what the page showed when the test gave up
        raise
    finally:
        driver.quit()
    content = imageio.load_image(CONTENT, size=128)
    assert stylized.shape == content.shape, status
    assert np.abs(stylized - content).mean() > 0.05, "the result is the content"
    assert stylized.std() > 0.05, "the result is blank"
    assert "stylised" in status
    outside = [url for url in resources if not url.startswith(("http://127.0.0.1", "data:", "blob:"))]
    assert not outside, f"the page fetched from outside the machine: {outside}"
