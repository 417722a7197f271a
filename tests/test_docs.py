"""The documentation cannot drift from the code: every configuration key is
documented, every public name is in the API reference, and the tutorial's code
(shown in the docs and the README) runs as the tutorial says."""

from __future__ import annotations

import glob
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Dict

import pytest

import flask_tokenauth
from flask_tokenauth import signals, store
from flask_tokenauth.config import DEFAULTS, SECTIONS, SETTINGS, shown_default

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIAL = os.path.join(REPO, "docs", "examples", "tutorial.py")


def read(*parts: str) -> str:
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


# --- configuration -----------------------------------------------------------


def test_every_key_the_package_reads_has_documentation():
    read_keys = set()
    for path in glob.glob(os.path.join(REPO, "flask_tokenauth", "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as f:
            read_keys |= set(re.findall(r"[\"'](JWT_[A-Z0-9_]+)[\"']", f.read()))
    assert read_keys, "the scan found no keys: it is broken"
    undocumented = sorted(key for key in read_keys if key not in SETTINGS)
    assert undocumented == []
    for key, setting in SETTINGS.items():
        assert len(setting.doc.split()) >= 4, "%s: no real description" % key
        assert setting.doc.rstrip().endswith((".", ")")), key


def test_defaults_come_from_the_documented_settings():
    assert set(DEFAULTS) | {"JWT_SECRET_KEY"} == set(SETTINGS)
    assert [s.key for _, group in SECTIONS for s in group if s.key != "JWT_SECRET_KEY"] == list(DEFAULTS)
    assert all(DEFAULTS[key] == SETTINGS[key].default for key in DEFAULTS)


# --- the built documentation -------------------------------------------------


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> Dict[str, str]:
    """The site built by Sphinx (text builder), page name -> text."""
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "text", os.path.join(REPO, "docs"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    pages = {}
    for path in glob.glob(os.path.join(str(out), "**", "*.txt"), recursive=True):
        with open(path, encoding="utf-8") as f:
            pages[os.path.relpath(path, str(out))[:-4]] = f.read()
    return pages


def test_configuration_reference_lists_every_key_with_its_default(built_docs):
    page = built_docs["configuration"]
    for key, setting in SETTINGS.items():
        entry = re.search(r"^%s\n\s+Default:\s*\n?\s*(.+)$" % re.escape(key), page, re.M)
        assert entry, "%s is missing from the configuration reference" % key
        around = " ".join(page[entry.start():entry.end() + 400].split())
        assert shown_default(setting).strip("`") in around, key
        assert re.findall(r"[A-Za-z]{4,}", setting.doc)[0] in around, key  # its description follows


def test_api_reference_has_every_public_name(built_docs):
    page = built_docs["api"]
    names = ["flask_tokenauth.%s" % name for name in flask_tokenauth.__all__ + ["__version__"]]
    names += ["flask_tokenauth.signals.%s" % name for name in signals.__all__]
    names += [
        "flask_tokenauth.store.%s" % name
        for name in ("TokenStore", "TokenRef", "Status", "StoreError", "StateLost", "open_store")
    ]
    entry = r"^(class |exception )?%s\b"
    assert [name for name in names if not re.search(entry % re.escape(name), page, re.M)] == []
    methods = [name for name, _ in inspect.getmembers(flask_tokenauth.JWT, inspect.isfunction)
               if not name.startswith("_")]
    assert "create_access_token" in methods
    assert [m for m in methods if not re.search(r"^   %s\(" % m, page, re.M)] == []
    store_methods = [name for name, _ in inspect.getmembers(store.TokenStore, inspect.isfunction)
                     if not name.startswith("_")]
    assert [m for m in store_methods if not re.search(r"^   %s\(" % m, page, re.M)] == []


def test_every_guide_is_in_the_table_of_contents(built_docs):
    index = read("docs", "index.rst")
    for path in glob.glob(os.path.join(REPO, "docs", "guides", "*.rst")):
        assert "guides/%s\n" % os.path.basename(path)[:-4] in index
    assert "refresh token reused" in built_docs["guides/signals"]  # the alerting example


# --- the tutorial ------------------------------------------------------------


def test_tutorial_page_and_readme_show_the_tutorial_file():
    assert ".. literalinclude:: examples/tutorial.py" in read("docs", "tutorial.rst")
    code = read("docs", "examples", "tutorial.py").rstrip("\n").split("\n")
    indented = "\n".join(("    " + line) if line.strip() else "" for line in code)
    assert indented in read("README.rst")


def test_tutorial_code_runs_as_the_tutorial_says(tmp_path, monkeypatch):
    # Imported from a copy, as `flask --app tutorial run` would: its instance
    # folder (where the secret key is made) is then beside the copy.
    monkeypatch.delenv("SECRET_KEY", raising=False)
    shutil.copy(TUTORIAL, tmp_path / "tutorial.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tutorial", raising=False)
    app = importlib.import_module("tutorial").app
    assert app.instance_path == str(tmp_path / "instance")
    key = (tmp_path / "instance" / "tokenauth-secret.key").read_text().strip()
    assert app.config["SECRET_KEY"] == key and len(key) >= 32
    client = app.test_client()

    no_token = client.get("/profile")
    assert no_token.status_code == 401
    assert no_token.headers["WWW-Authenticate"] == 'JWT realm="Login Required"'
    assert no_token.get_json() == {
        "status_code": 401,
        "error": "Authorization Required",
        "description": "Request does not contain an access token",
    }

    login = client.post("/auth", json={"username": "alice", "password": "wonderland"})
    assert login.status_code == 200 and set(login.get_json()) == {"access_token", "refresh_token"}
    access = {"Authorization": "JWT " + login.get_json()["access_token"]}
    refresh = {"Authorization": "JWT " + login.get_json()["refresh_token"]}
    assert client.get("/profile", headers=access).get_json() == {"id": 1, "username": "alice"}
    assert client.post("/predict", json={"features": [1, 2, 3]}, headers=access).get_json() == {"score": 2.0}

    bob = client.post("/auth", json={"username": "bob", "password": "builder"}).get_json()["access_token"]
    forbidden = client.post("/predict", json={"features": [1]}, headers={"Authorization": "JWT " + bob})
    assert forbidden.status_code == 403
    assert forbidden.get_json() == {
        "status_code": 403,
        "error": "Forbidden",
        "description": "Missing permission: predict",
    }
    wrong = client.post("/auth", json={"username": "alice", "password": "looking-glass"})
    assert wrong.status_code == 401 and wrong.get_json()["description"] == "Invalid credentials"

    renewed = client.post("/auth/refresh", headers=refresh)
    assert renewed.status_code == 200 and set(renewed.get_json()) == {"access_token", "refresh_token"}
    logout = client.post("/auth/logout", headers=access)
    assert logout.status_code == 200 and logout.get_json() == {"message": "Logged out"}
    revoked = client.get("/profile", headers=access)
    assert revoked.status_code == 401
    assert revoked.get_json()["description"] == "Token has been revoked"


def _shell_steps(text: str):
    """The tutorial's ``sh`` blocks from "Run it" to "Deploy it", as
    (command, expected JSON or None): a ``# {...}`` line under a command is
    what the tutorial says it prints."""
    body = text[text.index("Run it\n"):text.index("Deploy it\n")]
    steps = []
    for block in re.findall(r"\.\. code-block:: sh\n\n((?:    .*\n|\n)+)", body):
        command = ""
        for line in block.splitlines():
            line = line[4:]
            if line.startswith("# {"):
                steps[-1] = (steps[-1][0], json.loads(line[2:]))
            elif line.strip():
                command += line + "\n"
                if not line.endswith("\\"):
                    steps.append((command, None))
                    command = ""
    return [(command, expected) for command, expected in steps if not command.startswith("flask ")]


def test_the_tutorials_shell_steps_work_when_pasted(tmp_path):
    from tests.served_support import Served, tutorial_folder

    steps = _shell_steps(read("docs", "tutorial.rst"))
    assert any("ACCESS=$(" in command for command, _ in steps)  # the variables are filled by a command
    assert any("REFRESH=$(" in command for command, _ in steps)
    assert sum(1 for _, expected in steps if expected is not None) >= 4
    folder = tutorial_folder()
    served = Served(folder, "served:app", server="waitress").start()
    try:
        script = "set -eu\n"
        for number, (command, _) in enumerate(steps):
            script += command.replace("http://127.0.0.1:5000", served.url) + "echo; echo '@@%d@@'\n" % number
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        outputs = re.split(r"@@\d+@@\n", done.stdout)
        for (command, expected), output in zip(steps, outputs):
            if expected is not None:
                assert json.loads(output) == expected, (command, output)
    finally:
        served.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_every_install_command_names_the_distribution_setup_cfg_builds():
    # "flask-tokenauth" on PyPI is another project: a command naming it installs that.
    import configparser

    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    name = config["metadata"]["name"]
    assert name == "flask-tokenauth-jwt"
    paths = [os.path.join(REPO, "README.rst"), os.path.join(REPO, "example_app.py")]
    for pattern in ("docs/**/*.rst", "docs/**/*.py", "flask_tokenauth/**/*.py"):
        paths += glob.glob(os.path.join(REPO, pattern), recursive=True)
    named = []
    for path in paths:
        with open(path, encoding="utf-8") as source:
            for found in re.finditer(r"pip install\s+['\"]?([A-Za-z0-9_.\-]+)", source.read()):
                target = found.group(1)
                if target.lower().replace("_", "-").startswith("flask-tokenauth"):
                    named.append((os.path.relpath(path, REPO), target))
    assert named, "the scan found no install commands: it is broken"
    assert [entry for entry in named if entry[1] != name] == []
