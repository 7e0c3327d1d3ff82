"""The set-up files agree: pyproject's ranges admit the pinned versions, conda pins the same,
and CI runs the very test command that README.md gives."""

import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

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


# Classroom set-up (README, "Start" and "Offline classrooms"): the commands
# that `make install TORCH=cpu`, `make install WHEELHOUSE=dir` and `make wheelhouse` would run,
# read with `make -n`. The real offline install is tools/offline_install_check.sh (below, opt-in).

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def make_n(target, *variables, venv="/nonexistent/lthkit-venv"):
    """The commands `make -n` prints, as argument lists, with a venv that does not exist yet."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "TORCH", "WHEELHOUSE", "VENV", "PYTHON"}}
    out = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), target, f"VENV={venv}", *variables],
                         env=env, capture_output=True, text=True, check=True).stdout
    return [shlex.split(line) for line in out.splitlines() if line.strip() and not line.startswith("echo")]


def pip_installs(commands):
    return [c[c.index("install") + 1:] for c in commands if c[1:4] == ["-m", "pip", "install"]]


def cpu_pins():
    pinned = constraints()
    return [f"torch=={pinned['torch']}+cpu", f"torchvision=={pinned['torchvision']}+cpu"]


def test_plain_install_is_the_readmes_one():
    commands = make_n("install")
    assert commands == [
        ["python3", "-m", "venv", "/nonexistent/lthkit-venv"],
        ["/nonexistent/lthkit-venv/bin/python", "-m", "pip", "install", "-c", "constraints.txt", "-e", ".[course,test,sweep]"],
        ["touch", "/nonexistent/lthkit-venv/.lthkit-installed"],
    ]


def test_cpu_install_takes_the_pinned_torch_from_pytorchs_cpu_index_alone():
    first, second = pip_installs(make_n("install", "TORCH=cpu"))
    # torch and torchvision, at constraints.txt's versions with the +cpu label, without their dependencies
    assert first == ["--no-deps", "--index-url", CPU_INDEX, *cpu_pins()]
    # then the usual install from PyPI, which keeps them (the +cpu versions satisfy the == pins)
    assert second == ["-c", "constraints.txt", "-e", ".[course,test,sweep]", *cpu_pins()]
    for pin in cpu_pins():
        name, version = pin.split("==")
        assert version in SpecifierSet(f"=={constraints()[name]}"), f"{version} does not satisfy constraints.txt"


def test_wheelhouse_install_uses_the_folder_alone():
    (install,) = pip_installs(make_n("install", "WHEELHOUSE=/media/usb/wheelhouse", "TORCH=cpu"))
    assert install == ["--no-index", "--find-links", "/media/usb/wheelhouse",
                       "-c", "constraints.txt", "-e", ".[course,test,sweep]"]


@pytest.mark.parametrize("torch", ["", "cpu"])
def test_wheelhouse_holds_what_install_needs(torch):
    commands = make_n("wheelhouse", f"TORCH={torch}", "WHEELHOUSE=/tmp/wh")
    pips = [c[3:] for c in commands if c[1:3] == ["-m", "pip"]]
    wheel = next(c for c in pips if c[0] == "wheel")
    assert wheel[:3] == ["wheel", "-w", "/tmp/wh"]
    assert "-c" in wheel and wheel[wheel.index("-c") + 1] == "constraints.txt" and ".[course,test,sweep]" in wheel
    build_requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    assert ["download", "-d", "/tmp/wh", *build_requires] in pips, "the editable install's build requirements"
    downloads_cpu = ["download", "--no-deps", "--index-url", CPU_INDEX, "-d", "/tmp/wh/.torch-cpu", *cpu_pins()]
    if torch == "cpu":
        assert downloads_cpu in pips and wheel[-2:] == cpu_pins()
    else:
        assert not any(CPU_INDEX in c for c in pips) and not any("+cpu" in a for a in wheel)


@pytest.mark.skipif(not os.environ.get("LTHKIT_WHEELHOUSE"),
                    reason="the offline install from a wheelhouse runs only when LTHKIT_WHEELHOUSE names one "
                           "(make wheelhouse; LTHKIT_WHEELHOUSE=build/wheelhouse make test)")
def test_offline_install_from_the_wheelhouse():
    result = subprocess.run(["bash", str(REPO / "tools" / "offline_install_check.sh"), os.environ["LTHKIT_WHEELHOUSE"]],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "OK: the course installs from" in result.stdout
