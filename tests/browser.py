"""A headless Chromium driven over the DevTools protocol (CDP), for the report's tests.

    with Chromium() as browser:
        page = browser.open(Path("report.html").resolve().as_uri(), width=1200)
        page.evaluate("document.title")
        png = page.screenshot(full_page=True)
        page.problems()          # console errors/warnings and exceptions of the page

Nothing is downloaded: the browser is Debian's `chromium` (`CHROMIUM` overrides the
binary), and the protocol is spoken over one websocket with `websockets.sync.client`
(a dependency of the lock). The browser runs in a temporary profile directory, on a
port the OS picks (`--remote-debugging-port=0`, read back from the profile's
`DevToolsActivePort`), and is always stopped and its profile removed on exit.

Used by tests/pipeline/test_report_browser.py and scripts/report_screenshot.py; the
speechmill package itself never needs a browser.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser binary: `$CHROMIUM`, else the first of `CANDIDATES` on PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


@dataclass
class Page:
    """One tab, attached through a flat CDP session of the browser's websocket."""

    browser: Chromium
    session_id: str
    target_id: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        return self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def navigate(self, url: str, timeout: float = 30) -> None:
        """Load `url` and wait for its load event."""
        self.browser.events.clear()
        self.send("Page.navigate", {"url": url})
        self.browser.wait_event("Page.loadEventFired", self.session_id, timeout)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        res = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in res:
            raise CdpError(f"{expression!r} threw: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, *, full_page: bool = False, max_height: int | None = None) -> bytes:
        """A PNG of the viewport, or of the whole page (cut at `max_height` CSS pixels)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page or max_height:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            height = size["height"]  # the whole page, or its top `max_height` pixels
            if max_height:
                height = min(height, max_height)
            width = metrics["cssLayoutViewport"]["clientWidth"]
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params, timeout=60)["data"]
        return base64.b64decode(data)

    def requests(self) -> list[str]:
        """The URLs the page asked for since it was loaded (the page itself included)."""
        self.browser.drain()
        return [
            ev["params"]["request"]["url"]
            for ev in self.browser.events
            if ev.get("sessionId") == self.session_id
            and ev["method"] == "Network.requestWillBeSent"
        ]

    def dialogs(self) -> list[str]:
        """Messages of JavaScript dialogs (alert, confirm, prompt) the page opened."""
        self.browser.drain()
        return [
            str(ev["params"].get("message"))
            for ev in self.browser.events
            if ev.get("sessionId") == self.session_id
            and ev["method"] == "Page.javascriptDialogOpening"
        ]

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and error log entries of the page."""
        self.browser.drain()
        out = []
        for ev in self.browser.events:
            if ev.get("sessionId") != self.session_id:
                continue
            method, p = ev["method"], ev.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                out.append(f"console.{p['type']}: {args}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails']}")
            elif method == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                e = p["entry"]
                out.append(
                    f"log {e['level']} ({e.get('source')}): {e.get('text')} {e.get('url', '')}"
                )
        return out


class Chromium:
    """A headless Chromium for the length of a `with` block (always stopped after)."""

    def __init__(self, binary: str | None = None, *, start_timeout: float = 30) -> None:
        found = binary or find_chromium()
        if found is None:
            raise FileNotFoundError("chromium not found (apt-get install chromium)")
        self.binary = found
        self.start_timeout = start_timeout
        self.events: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile: str | None = None
        self._ws: ClientConnection | None = None
        self._next_id = 0

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Chromium:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="speechmill-chromium-")
        argv = [
            self.binary,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--mute-audio",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--no-proxy-server",
            "about:blank",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes go with it on stop()
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise CdpError(f"chromium exited with status {self._proc.returncode}")
            lines = port_file.read_text().split("\n") if port_file.exists() else []
            if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                break
            if time.monotonic() > deadline:
                raise CdpError("chromium did not open its DevTools port")
            time.sleep(0.05)
        url = f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        self._ws = connect(url, max_size=None, open_timeout=self.start_timeout)

    def stop(self) -> None:
        """Close the browser (politely, then by signal), remove its profile directory."""
        if self._ws is not None:
            with contextlib.suppress(Exception):  # it may be gone already
                self.send("Browser.close", timeout=5)
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        proc = self._proc
        if proc is not None:
            # wait up to 10 s for it to exit, without reaping it: while its zombie stays, its
            # process group id cannot be reused, so the kill below reaches only its helpers
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and proc.returncode is None:
                if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    break
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its group: itself if it hangs, helpers
            proc.wait(timeout=10)
            self._proc = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # ------------------------------------------------------------------ protocol
    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float = 30,
    ) -> Any:
        """Send one command and wait for its answer (events that come first are kept)."""
        if self._ws is None:
            raise CdpError("the browser is not running")
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        self._ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == msg["id"]:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(
        self, method: str, session_id: str | None, timeout: float = 30
    ) -> dict[str, Any]:
        """The first event `method` (of this session), already received or to come."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev["method"] == method and ev.get("sessionId") == session_id:
                    return ev
            seen = len(self.events)
            ev = self._receive(deadline, method)
            if "method" in ev:
                self.events.append(ev)

    def drain(self, quiet_s: float = 0.2) -> None:
        """Take in every event the browser has sent so far."""
        if self._ws is None:
            return
        while True:
            try:
                raw = self._ws.recv(timeout=quiet_s)
            except TimeoutError:
                return
            ev = json.loads(raw)
            if "method" in ev:
                self.events.append(ev)

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        if self._ws is None:
            raise CdpError("the browser is not running")
        left = deadline - time.monotonic()
        if left <= 0:
            raise CdpError(f"no answer to {waiting_for} in time")
        try:
            raw = self._ws.recv(timeout=left)
        except TimeoutError:
            raise CdpError(f"no answer to {waiting_for} in time") from None
        out: dict[str, Any] = json.loads(raw)
        return out

    def open(self, url: str, *, width: int = 1200, height: int = 900) -> Page:
        """A new tab of `width` x `height` CSS pixels with `url` loaded."""
        target_id = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session_id = self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session_id, target_id)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        page.navigate(url)
        return page
