"""The docs stay true to the code: one configuration entry per key, no stale ones."""

from __future__ import annotations

import re
from pathlib import Path

import flask_alerting
from flask_alerting.config import KEYS, ConfigVars

ROOT = Path(__file__).resolve().parent.parent


def documented_keys() -> set[str]:
    text = (ROOT / "docs" / "configuration.rst").read_text(encoding="utf-8")
    return set(re.findall(r"^\.\. data:: (ALERTING_[A-Z0-9_]+)\s*$", text, re.MULTILINE))


def test_every_config_key_has_exactly_one_docs_entry() -> None:
    keys = {key.name for key in KEYS.values()}
    documented = documented_keys()
    assert keys - documented == set(), "keys missing from docs/configuration.rst"
    assert documented - keys == set(), "docs/configuration.rst documents unknown keys"


def test_config_vars_lists_every_key() -> None:
    names = {v for k, v in vars(ConfigVars).items() if k.isupper()}
    assert names == {key.name for key in KEYS.values()}


def test_public_names_are_exported() -> None:
    for name in flask_alerting.__all__:
        assert hasattr(flask_alerting, name), name


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(r"^ +(python3 -m venv \.venv .*pytest.*)$", readme, re.MULTILINE)
    assert len(commands) == 1
    # .ci/run extracts that very line from README.rst and runs it.
    assert "README.rst" in ci and 'bash -c "$test_cmd"' in ci


def test_the_cli_page_shows_the_version_the_package_prints() -> None:
    from importlib.metadata import version

    from flask_alerting.cli import _version

    text = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
    shown = re.findall(r"^ +flask-alerting (\S+) for app ", text, re.MULTILINE)
    assert shown == [version("flask-alerting")] == [_version()]


#: Where users read text: the docs, the README and CHANGES, the examples and the demo's
#: output, and flask-alerting's own modules (docstrings, messages).
USER_FACING = [
    *sorted((ROOT / "docs").glob("*.rst")),
    ROOT / "README.rst",
    ROOT / "CHANGES",
    *sorted((ROOT / "examples").rglob("*.py")),
    *sorted((ROOT / "examples").rglob("*.rst")),
    *sorted((ROOT / "flask_alerting").rglob("*.py")),
]


def test_no_project_jargon_in_user_facing_text() -> None:
    # "The seed" is what the project's design document is called internally; readers
    # know nothing of it.
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in USER_FACING
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bseed", line, re.IGNORECASE)
    ]
    assert found == []
