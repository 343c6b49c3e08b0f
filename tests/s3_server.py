"""An S3-protocol server on 127.0.0.1 for the object-store tests (moto's, in-process).

    def test_x(s3):                    # fixture: a fresh bucket per test
        root = s3.root("corpus")       # s3://<bucket>/corpus
        cfg = load_config(text=f"store: {{root: {root}, options: {s3.options_yaml}}}")

The server runs in a thread of the test process and answers the real S3 REST
protocol (signed requests, multipart uploads, ranged GETs, conditional PUTs), so
the store talks to it exactly as to AWS. Credentials are dummies set in the
environment for the test's duration; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "speechmill-test",
    "AWS_SECRET_ACCESS_KEY": "speechmill-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3:
    endpoint: str
    bucket: str

    def root(self, name: str) -> str:
        return f"s3://{self.bucket}/{name}"

    @property
    def options_yaml(self) -> str:
        return f"{{endpoint_url: '{self.endpoint}', region: us-east-1}}"

    @property
    def options(self) -> dict[str, str]:
        return {"endpoint_url": self.endpoint, "region": "us-east-1"}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def keys(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"sm-{secrets.token_hex(4)}"
    s = S3(s3_server, bucket)
    s.client().create_bucket(Bucket=bucket)
    return s
