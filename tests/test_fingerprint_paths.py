"""Fingerprints do not depend on where the code is deployed: two hosts running the same
app from /srv/a and /srv/b share throttle windows in a shared store.

The app runs in real interpreters, from two copies at different absolute paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flask_alerting.capture import source_key

ROOT = Path(__file__).resolve().parent.parent

APP = textwrap.dedent(
    '''
    import json
    import logging
    import sys

    from flask import Flask

    from flask_alerting import AlertingHandler, FlaskAlerting
    from flask_alerting.testing import record_alerts

    from shop.orders import checkout

    app = Flask("shop")
    app.config.update(TESTING=True, PROPAGATE_EXCEPTIONS=False)
    alerting = FlaskAlerting(app)
    logging.getLogger("shop").addHandler(AlertingHandler(alerting))


    @app.route("/checkout")
    def view():
        return checkout()


    @app.route("/log")
    def log():
        logging.getLogger("shop").error("payment refused")
        return "logged"


    with record_alerts(app) as alerts:
        client = app.test_client()
        client.get("/checkout")
        client.get("/log")
    print(json.dumps({a.kind + ":" + a.title.split(":")[0]: a.fingerprint for a in alerts}))
    '''
)

ORDERS = textwrap.dedent(
    """
    def checkout():
        raise RuntimeError("card declined for order 42")
    """
)


def deploy(root: Path) -> Path:
    """The app's code at ``root`` (its own directory tree, as a deployment)."""
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "orders.py").write_text(ORDERS)
    (root / "main.py").write_text(APP)
    return root


def fingerprints(root: Path) -> dict[str, str]:
    """Run the deployment at ``root`` in an interpreter of its own (cwd elsewhere)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(root / "main.py")],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_same_code_at_two_paths_has_the_same_fingerprints(tmp_path: Path) -> None:
    one = fingerprints(deploy(tmp_path / "srv" / "a"))
    two = fingerprints(deploy(tmp_path / "opt" / "deeper" / "b"))
    assert set(one) == {"error:RuntimeError", "error:shop"}  # an error, a log record
    assert one == two
    assert fingerprints(tmp_path / "srv" / "a") == one  # and the same from run to run


def test_other_code_still_has_other_fingerprints(tmp_path: Path) -> None:
    one = fingerprints(deploy(tmp_path / "a"))
    moved = deploy(tmp_path / "b")
    orders = moved / "shop" / "orders.py"
    orders.write_text("\n" + ORDERS)  # the same error one line further down
    two = fingerprints(moved)
    assert two["error:RuntimeError"] != one["error:RuntimeError"]
    assert two["error:shop"] == one["error:shop"]  # the logging call did not move


def test_source_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source_key.cache_clear()
    venv = tmp_path / "venv" / "lib" / "site-packages"
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(venv), ""])
    monkeypatch.chdir(tmp_path / "..")
    assert source_key(str(tmp_path / "app.py")) == "app.py"
    assert source_key(str(venv / "shop" / "views.py")) == "shop/views.py"  # the longest
    assert source_key(str(tmp_path.parent / "x.py")) == "x.py"  # "" is the current dir
    assert source_key("/elsewhere/entirely/tool.py") == "tool.py"
    assert source_key("<string>") == "<string>"
    source_key.cache_clear()
