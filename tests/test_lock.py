"""The lock (requirements/): the committed lock matches its inputs, a changed dependency is refused with one line,
and the drift report reads a universal lock's double pins."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_lock(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_under_test", root / "requirements" / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_committed_lock_matches_its_inputs() -> None:
    assert load_lock(ROOT).check() == 0, "relock with `make lock` and commit requirements/"


def test_a_changed_dependency_is_refused_with_one_line(copy: Path, capsys) -> None:
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.10,<4",', '"orjson>=3.10,<4",\n    "rich>=13",'))
    assert load_lock(copy).check() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make lock" in err and "pyproject.toml" in err


def test_settings_outside_the_dependency_tables_do_not_stale_the_lock(copy: Path) -> None:
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("line-length = 120", "line-length = 110"))
    assert load_lock(copy).check() == 0


def test_an_override_change_stales_the_lock(copy: Path) -> None:
    (copy / "requirements" / "overrides.txt").write_text("llm ; python_version < '0'\n")
    assert load_lock(copy).check() == 1


def test_pins_keep_every_version_a_universal_lock_holds() -> None:
    lock = load_lock(ROOT)
    text = (
        "networkx==3.6.1 ; python_full_version < '3.12' \\\n    --hash=sha256:00\n"
        "networkx==3.7 ; python_full_version >= '3.12' \\\nPyYAML==6.0.4\n"
    )
    assert lock.pins(text) == {"networkx": {"3.6.1", "3.7"}, "pyyaml": {"6.0.4"}}


def test_every_pin_is_hashed() -> None:
    """`--require-hashes` refuses a lock with one unhashed line: check it here rather than at install time."""
    for name in ("lock.txt", "runtime.txt", "uv.txt"):
        text = (ROOT / "requirements" / name).read_text()
        entries = [line for line in text.split("\n") if line and not line[0].isspace() and not line.startswith("#")]
        assert entries and all(line.rstrip().endswith("\\") for line in entries), name
