"""A real public-inbox (v2, Xapian-indexed) served by public-inbox-httpd on 127.0.0.1, for the
bot's tests until the lore issue's shared fixture (tests/publicinbox.py) replaces it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class PublicInbox:
    def __init__(self, d: Path, name: str = "linux-mm", address: str = "linux-mm@kvack.org"):
        self.d = d
        self.name = name
        self.address = address
        self.env = {**os.environ, "PI_CONFIG": str(d / "pi-config"), "HOME": str(d)}
        self.proc = None

    def start(self) -> "PublicInbox":
        subprocess.run(["public-inbox-init", "-V2", self.name, str(self.d / self.name),
                        f"http://127.0.0.1/{self.name}", self.address], env=self.env, check=True,
                       capture_output=True)
        subprocess.run(["git", "config", "-f", str(self.d / "pi-config"), "publicinboxmda.spamcheck",
                        "none"], check=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(["public-inbox-httpd", "-l", f"http://127.0.0.1:{self.port}"],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.d / "httpd.log", "wb"))
        end = time.time() + 30
        while time.time() < end:
            try:
                urllib.request.urlopen(self.url + "new.atom", timeout=2).read()
                return self
            except urllib.error.HTTPError:       # an empty inbox: 404, but it answers
                return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("public-inbox-httpd did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.name}/"

    def deliver(self, raw: bytes) -> None:
        """One message into the archive, as the list's mail server hands it over."""
        p = subprocess.run(["public-inbox-mda", "--no-precheck"], input=raw, capture_output=True,
                           env={**self.env, "ORIGINAL_RECIPIENT": self.address})
        if p.returncode != 0:
            raise AssertionError(f"public-inbox-mda: {p.stderr.decode()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
