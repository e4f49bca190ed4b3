"""The lock: exact, hashed versions for every supported platform, made by uv (pinned in requirements/uv.txt).

    python requirements/lock.py check              # one line and exit 1 when the lock no longer matches its inputs
    python requirements/lock.py write [--upgrade]  # relock (keeps current pins unless --upgrade); `make lock`
    python requirements/lock.py drift PYTHON       # what an environment runs that differs from the lock

The inputs are pyproject.toml's dependency tables and requirements/{lock.in,overrides.txt,uv.in}; their digest is
kept in requirements/inputs.sha256, so `check` needs neither the network nor anything outside the standard library.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "requirements"
LOCK, RUNTIME, DIGEST = REQ / "lock.txt", REQ / "runtime.txt", REQ / "inputs.sha256"
UV = ROOT / ".venv" / "tools" / "bin" / "uv"
# Every lock covers Linux (x86_64, arm64) and macOS (arm64) on Python 3.11 and 3.12: uv resolves universally.
COMMON = ["--universal", "--python-version", "3.11", "--generate-hashes", "--quiet"]
EXTRAS = ["--extra", "dev", "--extra", "infra", "--extra", "llm"]


def digest() -> str:
    """What the lock was made from: the dependency tables (not the rest of pyproject.toml) and the lock's own inputs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    inputs = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        **{name: (REQ / name).read_text() for name in ("lock.in", "overrides.txt", "uv.in")},
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def check() -> int:
    recorded = DIGEST.read_text().split()[0] if DIGEST.exists() else "(none)"
    if recorded != digest():
        print(
            "reviewstream: requirements/lock.txt no longer matches pyproject.toml's dependencies; "
            "run `make lock` and commit requirements/",
            file=sys.stderr,
        )
        return 1
    return 0


def write(upgrade: bool) -> int:
    if not UV.exists():
        print(f"reviewstream: {UV} is missing; run `make venv` first", file=sys.stderr)
        return 1
    more = ["--upgrade"] if upgrade else []
    steps = [
        [str(UV), "pip", "compile", "requirements/uv.in", *COMMON, *more, "-o", "requirements/uv.txt"],
        [str(UV), "pip", "compile", "pyproject.toml", "requirements/lock.in", *EXTRAS, *COMMON, *more,
         "--override", "requirements/overrides.txt", "-o", "requirements/lock.txt"],
        # The image's runtime set: a subset of what the suite tested, at the same versions.
        [str(UV), "pip", "compile", "pyproject.toml", *COMMON, "-c", "requirements/lock.txt", "-o",
         "requirements/runtime.txt"],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(step, cwd=ROOT, check=True)
    DIGEST.write_text(f"{digest()}  pyproject.toml dependency tables + requirements/*.in, overrides.txt\n")
    return 0


def pins(text: str) -> dict[str, set[str]]:
    """name -> versions of every `name==version` line of a lock or a `pip freeze` (a universal lock may pin a name
    twice, under markers for different Pythons or platforms)."""
    found: dict[str, set[str]] = {}
    for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, re.MULTILINE):
        found.setdefault(re.sub(r"[-_.]+", "-", match[1]).lower(), set()).add(match[2])
    return found


def drift(python: str) -> int:
    """Print what `python`'s environment runs that the lock pins otherwise: the drift a latest-versions run tests."""
    frozen = subprocess.run(
        [str(UV), "pip", "freeze", "--python", python], check=True, capture_output=True, text=True
    ).stdout
    locked, latest = pins(LOCK.read_text()), pins(frozen)
    changed = sorted(name for name in latest.keys() & locked.keys() if not latest[name] <= locked[name])
    added = sorted(latest.keys() - locked.keys() - {"reviewstream", "pip"})  # pip: the venv's own seed
    print(f"drift: {len(changed)} packages newer or other than the lock, {len(added)} not in it")
    for name in changed:
        print(f"  {name}: lock {' | '.join(sorted(locked[name]))} -> latest {' | '.join(sorted(latest[name]))}")
    for name in added:
        print(f"  {name}: not locked -> {' | '.join(sorted(latest[name]))}")
    return 0


def main(argv: list[str]) -> int:
    match argv:
        case ["check"]:
            return check()
        case ["write", *rest] if set(rest) <= {"--upgrade"}:
            return write(upgrade=bool(rest))
        case ["drift", python]:
            return drift(python)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
