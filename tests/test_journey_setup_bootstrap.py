"""A newcomer's first `make sim` and `make test`: what the set-up installs and what it says.

The set-up script runs here against a stand-in python3 (on PATH) that records what it is asked
to do, so these tests are fast and need no network; the packaging test builds the editable
wheel with the real setuptools.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE = """#!/usr/bin/env bash
# stands in for python3 and .venv/bin/python: logs its arguments, makes a venv when asked
echo "$0 $*" >> "{log}"
if [ "${{1:-}}" = "-m" ] && [ "${{2:-}}" = "venv" ]; then
  mkdir -p "$3/bin" && cp "{fake}" "$3/bin/python"
fi
exit 0
"""
LOGGER = """#!/usr/bin/env bash
echo "$0 $*" >> "{log}"
exit 0
"""


def _make_target_setup(target: str) -> list[str]:
    """The set-up command `make TARGET` runs (from the Makefile itself, without running it)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    r = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = [ln for ln in r.stdout.splitlines() if "bootstrap.sh" in ln]
    assert len(lines) == 1, r.stdout
    return shlex.split(lines[0])


@pytest.fixture
def sandbox(tmp_path):
    """A copy of the set-up script and pyproject.toml, with a recording python3 on PATH."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap.sh", repo / "scripts" / "bootstrap.sh")
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE.format(log=log, fake=fake))
    for name in ("apt-get", "sudo"):
        (bin_dir / name).write_text(LOGGER.format(log=log))
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}

    def run(cmd: list[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
        log.unlink(missing_ok=True)
        r = subprocess.run(
            [str(repo / cmd[0]), *cmd[1:]],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return r, (log.read_text().splitlines() if log.exists() else [])

    return run


def _requested(calls: list[str]) -> set[str]:
    """Every distribution the pip calls in ``calls`` would install, by name, resolving bwv's
    own extras from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names: set[str] = set()
    for call in calls:
        if " -m pip install " not in call:
            continue
        for arg in shlex.split(call.split(" -m pip install ", 1)[1]):
            m = re.fullmatch(r"\.(?:\[([\w,]+)\])?", arg)
            if m is None:
                continue
            reqs = list(project["dependencies"])
            for extra in filter(None, (m.group(1) or "").split(",")):
                reqs += project["optional-dependencies"][extra]
            names |= {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}
    return names


def test_make_sim_set_up_installs_bwv_alone_never_pyaudio(sandbox):
    cmd = _make_target_setup("sim")
    r, calls = sandbox(cmd)
    assert r.returncode == 0, r.stderr
    installed = _requested(calls)
    assert "click" in installed and "pynacl" in installed
    assert "pyaudio" not in installed, calls
    assert not any("apt-get" in c for c in calls), "make sim needs nothing from apt"


def test_make_test_set_up_still_installs_pyaudio(sandbox):
    r, calls = sandbox(_make_target_setup("test"))
    assert r.returncode == 0, r.stderr
    assert {"pyaudio", "pytest", "ruff"} <= _requested(calls)


def test_set_up_says_what_it_does_step_by_step_then_nothing_when_done(sandbox):
    r, _ = sandbox(_make_target_setup("sim"))
    lines = r.stderr.splitlines()
    assert lines == [
        "bwv set-up: creating .venv",
        "bwv set-up: installing bwv and its dependencies into .venv (about a minute the "
        "first time)",
        "bwv set-up: .venv is ready",
    ]
    again, calls = sandbox(_make_target_setup("sim"))
    assert again.returncode == 0 and again.stderr == "" and again.stdout == ""
    assert not any(" -m pip " in c for c in calls)

    tests, _ = sandbox(_make_target_setup("test"))
    assert tests.stderr.startswith(
        "bwv set-up: installing bwv, its dependencies and the test tools"
    )


def test_set_up_refuses_an_unknown_option(sandbox):
    r, calls = sandbox(["scripts/bootstrap.sh", "--with-tset-tools"])
    assert r.returncode == 2 and "unknown option" in r.stderr and calls == []


def test_editable_install_prints_no_warning_block(tmp_path):
    """setuptools' "Editable installation" block came from its import-hook finder, chosen
    because the packages' directory was not declared; a plain .pth entry prints nothing."""
    import setuptools

    assert int(setuptools.__version__.split(".")[0]) >= 77, "the dev extra installs it"
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".*", "tests", "bench", "docs", "build", "*.egg-info", "__pycache__", "sim-*"
        ),
    )
    r = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-c",
            "import sys; from setuptools import build_meta as b; "
            "print(b.build_editable(sys.argv[1]))",
            str(tmp_path / "wheel"),
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Editable installation" not in r.stdout + r.stderr
    assert "Please be careful" not in r.stdout + r.stderr
    wheel = tmp_path / "wheel" / r.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as z:
        pth = [n for n in z.namelist() if n.endswith(".pth")]
        assert len(pth) == 1
        assert z.read(pth[0]).decode().strip() == str(src.resolve())
