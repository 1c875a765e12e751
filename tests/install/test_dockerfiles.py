"""The two Dockerfiles, checked without a container runtime (none runs here).

What can go wrong before anyone builds: COPY sources that do not exist in the build context
(the repository root), an entrypoint naming a console script pyproject does not define, a base
image that floats (``latest`` or no tag), a final stage running as root, or compilers left in
the runtime image.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.install.conftest import ROOT

DOCKERFILES = [ROOT / "operator" / "Dockerfile", ROOT / "detector_service" / "Dockerfile"]
BUILD_TOOLS = re.compile(
    r"(?<![\w.-])(gcc|g\+\+|cc|clang|make|cmake|build-essential|python3-dev|libpq-dev|"
    r"[\w.+-]+-dev|gfortran|rustc|cargo)(?![\w.+-])"
)


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        joined.append(buffer + line)
        buffer = ""
    if buffer:
        joined.append(buffer)
    out = []
    for line in joined:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _stages(path: Path) -> list[Stage]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in _instructions(path.read_text()):
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return stages


def _exec_form(rest: str) -> list[str]:
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return shlex.split(rest)
    assert isinstance(value, list), rest
    return [str(v) for v in value]


def _console_scripts() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project.get("scripts", {}))


def _present(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} is not written yet")
    return path


@pytest.fixture(params=DOCKERFILES, ids=lambda p: p.parent.name)
def dockerfile(request: pytest.FixtureRequest) -> Path:
    return _present(request.param)


def test_base_images_are_pinned(dockerfile: Path) -> None:
    stages = _stages(dockerfile)
    assert stages, "no FROM"
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.image in names or stage.image == "scratch":
            continue
        assert "$" not in stage.image, f"unresolved ARG in {stage.image}"
        if "@sha256:" in stage.image:
            continue
        repo, _, tag = stage.image.rpartition(":")
        assert repo, f"{stage.image}: no tag"
        assert "/" not in tag, f"{stage.image}: no tag"
        assert tag != "latest", f"{stage.image}: floating tag"


def test_final_stage_runs_as_non_root(dockerfile: Path) -> None:
    final = _stages(dockerfile)[-1]
    users = [rest for keyword, rest in final.instructions if keyword == "USER"]
    assert users, "final stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, users[-1]


def test_final_stage_has_no_build_tools(dockerfile: Path) -> None:
    final = _stages(dockerfile)[-1]
    assert not re.search(r"(-dev|buildpack-deps|devel)(\b|$)", final.image), final.image
    for keyword, rest in final.instructions:
        if keyword == "RUN" and re.search(r"\b(apt-get|apt|apk|dnf|yum)\b.*\binstall\b", rest):
            packages = rest.split("install", 1)[1]
            found = [m.group(1) for m in BUILD_TOOLS.finditer(packages)]
            assert not found, f"build tools in the final stage: {found}"


def test_copied_sources_exist_in_the_build_context(dockerfile: Path) -> None:
    """The build context is the repository root (``docker build -f <dir>/Dockerfile .``)."""
    for stage in _stages(dockerfile):
        for keyword, rest in stage.instructions:
            if keyword not in {"COPY", "ADD"}:
                continue
            words = _exec_form(rest) if rest.startswith("[") else shlex.split(rest)
            if any(w.startswith("--from") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for source in sources:
                if source.startswith(("http://", "https://")):
                    continue
                pattern = source.strip("/").removeprefix("./") or "."
                exists = (ROOT / pattern).exists() or (
                    any(c in pattern for c in "*?[") and list(ROOT.glob(pattern))
                )
                assert exists, f"{dockerfile.relative_to(ROOT)}: COPY source {source!r} missing"


def test_entrypoint_is_a_console_script_of_this_project(dockerfile: Path) -> None:
    final = _stages(dockerfile)[-1]
    commands = [
        _exec_form(rest) for keyword, rest in final.instructions if keyword == "ENTRYPOINT"
    ] or [_exec_form(rest) for keyword, rest in final.instructions if keyword == "CMD"]
    assert commands, "no ENTRYPOINT or CMD in the final stage"
    argv = commands[-1]
    program = Path(argv[0]).name
    scripts = _console_scripts()
    if program in scripts:
        return
    if program.startswith("python") and len(argv) >= 3 and argv[1] == "-m":
        module = argv[2].split(".")
        package_roots = [ROOT / "operator", ROOT / "detector_service"]
        assert any(
            (root.joinpath(*module)).with_suffix(".py").exists()
            or (root.joinpath(*module) / "__main__.py").exists()
            for root in package_roots
        ), f"python -m {argv[2]}: no such module"
        return
    pytest.fail(f"entrypoint {argv} is neither a console script ({sorted(scripts)}) nor python -m")


def test_console_scripts_resolve_to_functions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, target in project["scripts"].items():
        module, _, func = target.partition(":")
        parts = module.split(".")
        roots = [ROOT / "operator", ROOT / "detector_service"]
        sources = [r.joinpath(*parts).with_suffix(".py") for r in roots]
        sources += [r.joinpath(*parts) / "__init__.py" for r in roots]
        existing = [s for s in sources if s.exists()]
        if not existing:
            pytest.skip(f"{name}: {module} is not written yet")
        assert re.search(rf"^(async )?def {func}\(", existing[0].read_text(), re.M), target
