"""A small Chrome DevTools Protocol client: headless Chromium driven over its websocket.

Enough to test a page as a user meets it: open a URL, fill and submit a form, set a file
input (``DOM.setFileInputFiles``, what a user's file chooser does), wait for a condition
written in JavaScript, read the DOM, catch uncaught page errors and save a screenshot.
Playwright downloads its own browsers (no network here); this drives the distribution's
``chromium`` instead, with ``websocket-client`` as the only dependency.

Usage::

    with Chromium.launch(tmp_path / "profile") as browser:
        page = browser.page
        page.navigate("http://127.0.0.1:8080/")
        page.set_file_input("#photo", [photo])
        page.wait_for("document.documentElement.dataset.state === 'done'", timeout=30)
        page.screenshot(tmp_path / "page.png")
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Executables tried in order when ``$CHROMIUM`` names none (Debian's first).
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class CDPError(RuntimeError):
    """The browser answered a command with an error, threw in the page, or did not answer in time."""


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` if set, else the first of :data:`CANDIDATES` on PATH."""
    chosen = os.environ.get("CHROMIUM")
    if chosen:
        return shutil.which(chosen) or (chosen if Path(chosen).is_file() else None)
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class Page:
    """One page target, spoken to over its own websocket (commands answered in order of ids)."""

    def __init__(self, ws_url: str, timeout: float = 30.0) -> None:
        import websocket

        self._ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.send("Page.enable")
        self.send("Runtime.enable")

    def close(self) -> None:
        """Close the websocket (the browser keeps running)."""
        with contextlib.suppress(Exception):
            self._ws.close()

    def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile go to :attr:`events`.

        Raises:
            CDPError: If the browser answers with an error or not within ``timeout`` seconds.
        """
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            self._ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                message = json.loads(self._ws.recv())
            except Exception as exc:  # websocket timeout or closed connection
                raise CDPError(f"{method}: no answer from the browser within {timeout:g} s ({exc})") from None
            if message.get("id") == message_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error'].get('message')} {message['error'].get('data', '')}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def errors(self) -> list[str]:
        """Uncaught exceptions and ``console.error`` messages of the page so far."""
        found = []
        for event in self.events:
            if event["method"] == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                found.append(str((details.get("exception") or {}).get("description") or details.get("text")))
            elif event["method"] == "Runtime.consoleAPICalled" and event["params"].get("type") == "error":
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in event["params"]["args"]))
        return found

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression in the page (promises awaited).

        Raises:
            CDPError: If the expression throws.
        """
        result = self.send("Runtime.evaluate", timeout=timeout, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(f"{expression!r} threw: {(details.get('exception') or {}).get('description') or details.get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy; returns its value.

        Raises:
            CDPError: If it stays falsy for ``timeout`` seconds (the message quotes it).
        """
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"still false after {timeout:g} s: {expression}")
            time.sleep(interval)

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        """Open ``url`` and wait until its document has loaded."""
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"cannot open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def set_viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Emulate a window of ``width`` × ``height`` CSS pixels (``mobile``: a phone's)."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=2 if mobile else 1, mobile=mobile)

    def set_file_input(self, selector: str, files: list[Path]) -> None:
        """Choose ``files`` in the ``<input type=file>`` that ``selector`` finds, as the file chooser
        would (the page gets its ``input`` and ``change`` events)."""
        root = self.send("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise CDPError(f"no element matches {selector!r}")
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(Path(f).resolve()) for f in files])

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole document with ``full_page``) to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.send("Page.captureScreenshot", **params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


class Chromium:
    """A headless Chromium process with its DevTools port open, and its first page."""

    def __init__(self, process: subprocess.Popen, port: int, page: Page) -> None:
        self.process = process
        self.port = port
        self.page = page

    @classmethod
    def launch(cls, profile: Path, executable: str | None = None, timeout: float = 30.0) -> Chromium:
        """Start Chromium headless with a fresh profile in ``profile`` and connect to its page.

        Raises:
            CDPError: If no browser is found, or it does not open its DevTools port in time.
        """
        executable = executable or find_chromium()
        if not executable:
            raise CDPError("no Chromium found (install Debian's chromium, or set $CHROMIUM)")
        profile = Path(profile)
        profile.mkdir(parents=True, exist_ok=True)
        args = [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
                "--window-size=1280,900", "about:blank"]
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # a previous browser's port
        log = (profile / "chromium.log").open("wb")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        try:
            while not (port_file.is_file() and port_file.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (profile / "chromium.log").read_text(errors="replace")[-800:]
                    raise CDPError(f"{executable} did not open its DevTools port (exit {process.poll()}): {tail}")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            page_url = cls._page_ws(port, deadline)
            return cls(process, port, Page(page_url, timeout=timeout))
        except BaseException:
            cls._stop(process)
            raise
        finally:
            log.close()

    @staticmethod
    def _page_ws(port: int, deadline: float) -> str:
        """The websocket URL of the browser's first page target."""
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                    targets = json.load(answer)
                pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise CDPError(f"Chromium on port {port} shows no page target")
            time.sleep(0.1)

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def close(self) -> None:
        """Close the page's websocket and stop the browser."""
        self.page.close()
        self._stop(self.process)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Page]:
    """``with chromium(dir) as page:`` a launched browser's page, the browser stopped after."""
    with Chromium.launch(profile) as browser:
        yield browser.page
