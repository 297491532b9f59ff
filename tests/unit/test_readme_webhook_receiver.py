"""The signature check README.md gives a webhook receiver works on what the courier signs,
and refuses a changed body, another secret and an old timestamp."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from handlers.webhooks.signature import new_secret, signature

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify() -> Callable[..., bool]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (code,) = [block for block in blocks if "def verify(" in block]
    scope: dict[str, object] = {}
    exec(compile(code, str(README), "exec"), scope)
    verify = scope["verify"]
    assert callable(verify)
    return verify


def test_the_readmes_receiver_accepts_what_the_courier_signs_and_nothing_else() -> None:
    verify = readme_verify()
    secret = new_secret()
    body = b'{"id":"d1","type":"ORDER_PLACED"}'
    now = int(time.time())
    header = signature(secret, now, body)

    assert verify(header, secret, body)
    assert not verify(header, secret, body + b" ")
    assert not verify(header, new_secret(), body)
    assert not verify(signature(secret, now - 3_600, body), secret, body)
