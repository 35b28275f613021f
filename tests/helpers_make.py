"""Running the project's Makefile from tests: a clean environment, dry runs, and make's parsed rule database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The bin folder of the interpreter running the tests (its auxreid and torchrun), absolute.
BIN = Path(sys.executable).parent.absolute()


def make_env(artifacts: Path, **extra: str) -> dict[str, str]:
    """The environment for a make child: no flags inherited from an outer make, the given artifacts root."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    env.update(AUXREID_ARTIFACTS=str(artifacts), **extra)
    return env


def run_make(*args: str, artifacts: Path, timeout: float = 60, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess:
    """`make -C ROOT args...` with `make_env(artifacts)` (or `env`); text output, not checked."""
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env or make_env(artifacts))


def dry_run(*args: str, artifacts: Path, bin_dir: Path = BIN) -> list[str]:
    """The stage commands `make -n args...` would run (lines starting with `bin_dir`), in order."""
    result = run_make("-n", *args, artifacts=artifacts)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = f"{bin_dir}/"
    return [line[len(prefix):] for line in result.stdout.splitlines() if line.startswith(prefix)]


@dataclass(frozen=True)
class Rule:
    """One explicit file rule as make's database (`make -p`) prints it, variables in the recipe unexpanded."""

    target: str
    prerequisites: tuple[str, ...]
    order_only: tuple[str, ...]
    also_makes: tuple[str, ...]
    recipe: tuple[str, ...]


_RULE_LINE = re.compile(r"^([^#\s:][^:]*?):(?![=:])\s*(.*)$")


def rule_database(*args: str, artifacts: Path, prefix: str) -> tuple[dict[str, Rule], dict[str, str]]:
    """Make's rules for the targets starting with `prefix`, and its simple variables, after reading the Makefile.

    `make -p -q setup args...` parses the Makefile (templates expanded) and runs no recipe.
    """
    result = run_make("-p", "-q", "setup", *args, artifacts=artifacts)
    lines = result.stdout.splitlines()
    variables = {m.group(1): m.group(2) for line in lines if (m := re.match(r"^(\w+) :?= ?(.*)$", line))}
    rules: dict[str, Rule] = {}
    i = 0
    while i < len(lines):
        found = _RULE_LINE.match(lines[i])
        i += 1
        if not found or not found.group(1).startswith(prefix):
            continue
        normal, _, order = found.group(2).partition("|")
        also: tuple[str, ...] = ()
        recipe: list[str] = []
        while i < len(lines) and lines[i].strip():
            if lines[i].startswith("#  Also makes:"):
                also = tuple(lines[i].split(":", 1)[1].split())
            elif lines[i].startswith("\t"):
                recipe.append(lines[i][1:])
            i += 1
        rules[found.group(1)] = Rule(found.group(1), tuple(normal.split()), tuple(order.split()), also, tuple(recipe))
    return rules, variables
