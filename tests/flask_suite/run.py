"""Run Flask's own test suite with flask-alerting initialised on every app.

::

    .venv/bin/python tests/flask_suite/run.py                      # both runs (CI)
    .venv/bin/python tests/flask_suite/run.py --without-extension  # the baseline

The test files are those of the Flask release installed in the running environment,
from its sdist on the package index (``pip download --no-binary :all: --no-deps
flask==<version>``). They run in a separate virtual environment, ``build/flask-suite/``
(not in git), holding:

- the test tools at the versions that release pins for its tests (``requirements/
  tests.txt`` in older sdists; the ``tests`` dependency group resolved in ``uv.lock``
  in newer ones);
- Flask and its runtime dependencies (Werkzeug, Jinja, click, ...) at the versions
  installed here, so the suite exercises the stack flask-alerting is tested with;
- flask-alerting from this checkout, and the plugin ``tests/flask_suite/plugin.py``
  that calls ``FlaskAlerting(app, notifiers=[MemoryNotifier()], metrics_enabled=False)``
  on every app.

Two runs: the default configuration, and with a notice (``ALERTING_ERROR_RESPONSE``).
``tests/flask_suite/expected_failures.txt`` lists, each with its reason, the tests that
fail here without the extension (``all``: deselected in every run) and the tests that
assert Flask's own 500 body (``notice``: deselected in the notice run, and checked to
really fail there, so the list cannot go stale). Every other test must pass: the exit
status is 0 only then.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pip's own copy of tomli on Python 3.10
    from pip._vendor import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXPECTED = HERE / "expected_failures.txt"
NOTICE = "An error occurred. The administrators have been notified."

#: Flask and its runtime dependencies (and flask-alerting's): pinned to the versions
#: installed in the running environment.
RUNTIME = ("flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker",
           "psutil")  # fmt: skip


class Expected(NamedTuple):
    run: str  # "all" or "notice"
    test: str
    reason: str


def say(text: str) -> None:
    print(f"flask-suite: {text}", flush=True)


def read_expected() -> list[Expected]:
    """``<run> <test id> <reason>`` per line; ``#`` starts a comment."""
    entries = []
    for number, line in enumerate(EXPECTED.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        run, test, reason = (line.split(maxsplit=2) + ["", ""])[:3]
        if run not in ("all", "notice") or "::" not in test or not reason:
            raise SystemExit(f"{EXPECTED}:{number}: expected '<all|notice> <test id> <reason>'")
        entries.append(Expected(run, test, reason))
    return entries


def run(command: list[str]) -> None:
    """Run ``command``; its output is shown only when it fails (pip is chatty)."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stdout.write(done.stdout + done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")


# -- the sdist and the environment ----------------------------------------------------------


def fetch_sdist(version: str, work: Path) -> Path:
    source = work / f"flask-{version}"
    if (source / "tests").is_dir():
        return source
    say(f"downloading the sdist of Flask {version}")
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
         "--no-deps", f"flask=={version}", "-d", str(work)])  # fmt: skip
    archive = next(work.glob(f"[Ff]lask-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(work, filter="data")
        else:  # pragma: no cover - Python < 3.10.12
            tar.extractall(work)  # noqa: S202 - the package index's own archive
    extracted = next(p for p in work.iterdir() if p.is_dir() and p.name.lower() == source.name)
    if extracted != source:
        extracted.rename(source)
    return source


def _marker_matches(markers: list[str] | None) -> bool:
    if not markers:
        return True
    from packaging.markers import Marker

    return any(Marker(marker).evaluate() for marker in markers)


def test_pins(source: Path) -> list[str]:
    """What the release pins for its tests, as requirement lines."""
    requirements = source / "requirements" / "tests.txt"
    if requirements.is_file():  # pip-compile output: every line is a pin
        return [
            line.split("#")[0].strip()
            for line in requirements.read_text(encoding="utf-8").splitlines()
            if "==" in line.split("#")[0]
        ]
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    group = project.get("dependency-groups", {}).get("tests")
    lock_path = source / "uv.lock"
    if group is None or not lock_path.is_file():
        raise SystemExit(f"no test requirements found in {source}")
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    versions: dict[str, str] = {}
    packages = {}
    for package in lock["package"]:
        if _marker_matches(package.get("resolution-markers")):
            versions[package["name"]] = package["version"]
            packages[package["name"]] = package
    # The group and everything it depends on, as the lock resolved them.
    wanted: list[str] = []
    todo = [re.split(r"[\s<>=!~;\[]", item, maxsplit=1)[0].lower() for item in group]
    while todo:
        name = todo.pop()
        if name in wanted or name not in versions:
            continue
        wanted.append(name)
        for dependency in packages[name].get("dependencies", []):
            if _marker_matches([dependency["marker"]] if "marker" in dependency else None):
                todo.append(dependency["name"])
    return sorted(f"{name}=={versions[name]}" for name in wanted)


def runtime_pins() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in RUNTIME]


def environment(work: Path, source: Path) -> Path:
    """The suite's virtual environment, (re)built when the pins changed."""
    pins = {item.split("==")[0].lower(): item for item in test_pins(source)}
    pins.update({item.split("==")[0].lower(): item for item in runtime_pins()})
    requirements = sorted(pins.values())
    digest = hashlib.sha256(json.dumps([requirements, sys.version]).encode()).hexdigest()
    env_dir = work / "venv"
    stamp = env_dir / "flask-suite.json"
    python = env_dir / "bin" / "python"
    if stamp.is_file() and json.loads(stamp.read_text())["digest"] == digest:
        return python
    say(f"building {env_dir} with {', '.join(requirements)}")
    venv.EnvBuilder(clear=True, with_pip=True).create(env_dir)
    run([str(python), "-m", "pip", "install", "--quiet", *requirements])
    run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(ROOT)])
    stamp.write_text(json.dumps({"digest": digest, "requirements": requirements}))
    return python


# -- the runs -------------------------------------------------------------------------------


class Result(NamedTuple):
    tests: int
    passed: int
    failed: list[str]
    skipped: int
    deselected: int
    returncode: int
    apps: int | None  # apps the plugin initialised (None without the plugin)


def pytest(
    python: Path,
    source: Path,
    work: Path,
    name: str,
    *,
    plugin: bool,
    notice: bool,
    deselect: list[Expected] = (),  # type: ignore[assignment]
    only: list[str] | None = None,
) -> Result:
    report = work / f"{name}.xml"
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--junit-xml={report}", "-o", "junit_family=xunit2"]  # fmt: skip
    if plugin:
        command += ["-p", "plugin"]
    for entry in deselect:
        command += ["--deselect", entry.test]
    command += only if only else ["tests"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "WERKZEUG_"))}
    env["PYTHONPATH"] = str(HERE)
    # The apps' default stores (and lock files) in a directory of this run's, not in the
    # shared temporary directory where parallel runs would meet.
    runtime = work / f"{name}-runtime"
    shutil.rmtree(runtime, ignore_errors=True)
    runtime.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(runtime)
    if notice:
        env["FLASK_ALERTING_SUITE_ERROR_RESPONSE"] = NOTICE
    done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True)
    if report.is_file():
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        assert suite is not None
        failed = [
            f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
            for case in suite.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None
        ]
        tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    else:  # pytest did not get as far as running tests
        failed, tests, skipped = ["(collection)"], 0, 0
    if done.returncode not in (0, 1):
        sys.stdout.write(done.stdout[-5000:] + done.stderr[-5000:])
    found = re.search(r"^flask-alerting initialised on (\d+) apps$", done.stdout, re.M)
    apps = int(found.group(1)) if found else None
    returncode = done.returncode
    if plugin and not apps:  # the plugin did not load, or no app got the extension
        returncode = returncode or 3
    return Result(tests, tests - len(failed) - skipped, failed, skipped, len(deselect),
                  returncode, apps)  # fmt: skip


def summary(name: str, result: Result) -> str:
    text = (
        f"{name}: {result.passed} passed, {len(result.failed)} failed, "
        f"{result.skipped} skipped, {result.deselected} deselected"
    )
    if result.apps is not None:
        text += f" ({result.apps} apps got the extension)"
    return text + "".join(f"\n    FAILED {test}" for test in result.failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--without-extension",
        action="store_true",
        help="run the suite once without the plugin and deselect nothing (the baseline)",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "flask-suite")
    args = parser.parse_args()

    version = importlib.metadata.version("flask")
    work = args.work.resolve() / version
    work.mkdir(parents=True, exist_ok=True)
    source = fetch_sdist(version, work)
    python = environment(work, source)
    say(f"Flask {version} test suite from {source}")

    if args.without_extension:
        result = pytest(python, source, work, "baseline", plugin=False, notice=False)
        say(summary("without flask-alerting", result))
        return 0 if result.returncode == 0 else 1

    expected = read_expected()
    everywhere = [e for e in expected if e.run == "all"]
    notice_only = [e for e in expected if e.run == "notice"]
    for entry in expected:
        say(f"deselected ({entry.run}) {entry.test}: {entry.reason}")
    ok = True
    default = pytest(python, source, work, "default", plugin=True, notice=False,
                     deselect=everywhere)  # fmt: skip
    say(summary("with flask-alerting, default configuration", default))
    ok = ok and default.returncode == 0
    notice = pytest(python, source, work, "notice", plugin=True, notice=True,
                    deselect=everywhere + notice_only)  # fmt: skip
    say(summary(f"with flask-alerting, ALERTING_ERROR_RESPONSE={NOTICE!r}", notice))
    ok = ok and notice.returncode == 0
    if notice_only:
        # The notice-only entries must really fail with the notice: a stale entry would
        # hide a test that passes.
        check = pytest(python, source, work, "notice-check", plugin=True, notice=True,
                       only=[e.test for e in notice_only])  # fmt: skip
        stale = sorted({e.test for e in notice_only} - set(check.failed))
        if stale or check.tests != len(notice_only):
            ok = False
            say(f"listed as failing with the notice, but passing or not found: {stale}")
        else:
            say(f"the {len(notice_only)} notice-only deselections fail with the notice, "
                "as listed")  # fmt: skip
    say("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
