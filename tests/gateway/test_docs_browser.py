"""`/docs` in a real headless Chromium: Swagger UI renders the OpenAPI 3.1 document and calls the API.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); skipped, saying so, without them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as condition
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ARTIFACTS
from tests.stack import Stack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs chromium and chromedriver on PATH (apt-get install chromium chromium-driver)",
)

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    # Explicit binary and driver: Selenium Manager then never tries to download a browser.
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,2400")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def _documented_operations(gateway: str) -> set[tuple[str, str]]:
    document = requests.get(f"{gateway}/openapi.json", timeout=10).json()
    return {
        (method.upper(), path) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS
    }


def test_docs_list_every_operation_and_try_it_out_calls_the_api(gateway: str, stack: Stack, browser: WebDriver) -> None:
    driver = browser
    wait = WebDriverWait(driver, WAIT_SECONDS)
    tenant = stack.create_tenant("docs")
    screenshot = ARTIFACTS / "docs-browser.png"
    ARTIFACTS.mkdir(exist_ok=True)

    try:
        # The root sends a browser to the docs.
        driver.get(f"{gateway}/")
        wait.until(condition.url_to_be(f"{gateway}/docs"))

        # Every operation of the OpenAPI document is listed, and nothing else.
        expected = _documented_operations(gateway)
        assert expected, "the OpenAPI document lists no operation"
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(expected))
        assert "Unable to render this definition" not in driver.page_source
        listed = {
            (
                block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip().upper(),
                block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
            )
            for block in driver.find_elements(By.CSS_SELECTOR, ".opblock")
        }
        assert listed == expected

        # Authorize with the owner's access token.
        driver.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
        token_input = wait.until(condition.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux input")))
        token_input.send_keys(tenant.owner_token)
        driver.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .authorize").click()
        wait.until(condition.element_to_be_clickable((By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .btn-done")))
        driver.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .btn-done").click()
        wait.until(condition.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))

        # GET /api/v1/tenants/me: expand, Try it out, Execute.
        operation = driver.find_element(
            By.XPATH,
            "//div[contains(@class,'opblock-get')]"
            "[.//*[contains(@class,'opblock-summary-path') and @data-path='/api/v1/tenants/me']]",
        )
        operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
        operation.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
        wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, ".execute"))
        operation.find_element(By.CSS_SELECTOR, ".execute").click()
        status = wait.until(
            lambda _: operation.find_elements(By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")
        )
        body = operation.find_element(By.CSS_SELECTOR, ".live-responses-table .response-col_description pre").text
        driver.save_screenshot(str(screenshot))
    except Exception:
        driver.save_screenshot(str(screenshot))
        raise

    assert status[0].text.strip().startswith("200"), body
    assert tenant.slug in body and tenant.id in body
