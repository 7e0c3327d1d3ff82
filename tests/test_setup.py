"""The set-up files agree: pyproject's ranges admit the pinned versions, conda pins the same,
and CI runs the very test command that README.md gives."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent


def pins(lines):
    out = {}
    for line in lines:
        line = line.strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def constraints():
    return pins((REPO / "constraints.txt").read_text().splitlines())


def pyproject_requirements():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def test_every_pyproject_requirement_is_pinned_within_its_range():
    pinned = constraints()
    for req in pyproject_requirements():
        name = req.name.lower()
        assert name in pinned, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{name}=={pinned[name]} is outside {req.specifier}"


def test_torch_and_torchvision_are_the_matched_pair():
    pinned = constraints()
    assert (pinned["torch"], pinned["torchvision"]) == ("2.14.1", "0.29.1")


def test_environment_yml_pins_the_same_versions():
    conda = pins(line.strip().lstrip("- ") for line in (REPO / "environment.yml").read_text().splitlines())
    pinned = constraints()
    wanted = {r.name.lower() for r in pyproject_requirements()}
    assert wanted <= set(conda), f"environment.yml lacks {wanted - set(conda)}"
    for name, version in conda.items():
        assert pinned.get(name) == version, f"environment.yml has {name}=={version}, constraints.txt {pinned.get(name)}"


def test_ci_runs_the_readmes_test_command():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^\s*(make \w+)\s*$", readme, flags=re.M)
    assert "make lab" in commands and "make test" in commands
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert "make test" in ci
