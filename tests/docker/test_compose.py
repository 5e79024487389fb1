"""Static checks of the Docker deployment files in ``docker/``.

No Docker engine is available on the development machines, so these tests parse
``docker/compose.yml`` and ``docker/Dockerfile`` and check them against the code
instead: every service command names a real management command / WSGI callable /
Celery app and sub-command, every queue a worker consumes is declared in settings,
every file the Dockerfile copies exists (and is not excluded from the build
context), and the health-check URL resolves.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shlex
import warnings
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yml"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
DOCKERIGNORE = DOCKER_DIR / "Dockerfile.dockerignore"

EXPECTED_SERVICES = {"postgres", "redis", "migrate", "web", "worker", "beat"}
APP_SERVICES = ("migrate", "web", "worker", "beat")
HEALTHCHECK_PATH = "/healthz/"
REQUIRED_APP_ENV = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SECRET_KEY",
    "DATASET_ENCRYPTION_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "MARKETPLACE_DATA_DIR",
}
# Secrets that must make ``docker compose`` refuse to start when unset.
REQUIRED_SECRETS = ("DJANGO_SECRET_KEY", "DATASET_ENCRYPTION_KEY")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), f"{COMPOSE_FILE} has no services mapping"
    return data


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    return _instructions(DOCKERFILE.read_text())


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per Dockerfile instruction, continuations joined.

    Comment and blank lines are dropped, also inside a continued instruction,
    as Docker does. Heredocs are not supported (the Dockerfile uses none).
    """
    instructions: list[tuple[str, str]] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        keyword, _, rest = (buffer + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        buffer = ""
    assert not buffer, "Dockerfile ends inside a continued instruction"
    return instructions


def _args(rest: str) -> list[str]:
    """Arguments of an instruction in exec (JSON) or shell form."""
    if rest.startswith("["):
        value = json.loads(rest)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), rest
        return value
    return shlex.split(rest)


def _split_flags(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading ``--flag[=value]`` tokens of COPY/ADD/HEALTHCHECK, and the rest."""
    flags: dict[str, str] = {}
    index = 0
    while index < len(tokens) and tokens[index].startswith("--"):
        name, _, value = tokens[index][2:].partition("=")
        flags[name] = value
        index += 1
    return flags, tokens[index:]


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _stage_names(instructions: list[tuple[str, str]]) -> set[str]:
    names = set()
    for keyword, rest in instructions:
        if keyword == "FROM":
            _, tokens = _split_flags(shlex.split(rest))
            if len(tokens) == 3 and tokens[1].lower() == "as":
                names.add(tokens[2])
    return names


def _dockerignore_regexes() -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per .dockerignore line, in file order."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    if not DOCKERIGNORE.is_file():
        return rules
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negate, re.compile(regex + r"\Z")))
    return rules


def _is_dockerignored(relative: str) -> bool:
    """Whether the build context loses ``relative`` (a path or one of its parents)."""
    parts = Path(relative).parts
    rules = _dockerignore_regexes()
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        excluded = False
        for negate, regex in rules:
            if regex.match(prefix):
                excluded = not negate
        if excluded:
            return True
    return False


def _environment(service: dict) -> dict[str, object]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {key: value for key, _, value in (item.partition("=") for item in env)}
    return dict(env)


def _command(name: str, service: dict) -> list[str]:
    command = service.get("command")
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), (
        f"service {name!r}: command must be a YAML list of strings (exec form), got {command!r}"
    )
    return command


# ----------------------------------------------------------------- command checks


def _check_manage_py(args: list[str], where: str) -> None:
    from django.core.management import BaseCommand, get_commands, load_command_class
    from django.core.management.base import CommandError

    assert (REPO_ROOT / "manage.py").is_file(), f"{where}: manage.py is missing"
    assert args, f"{where}: `python manage.py` without a command"
    name, rest = args[0], args[1:]
    commands = get_commands()
    assert name in commands, f"{where}: {name!r} is not a management command"
    app = commands[name]
    command = app if isinstance(app, BaseCommand) else load_command_class(app, name)
    parser = command.create_parser("manage.py", name)
    try:
        parser.parse_args(rest)
    except (CommandError, SystemExit) as exc:
        pytest.fail(f"{where}: bad arguments for `manage.py {name}` {rest!r}: {exc}")


def _check_gunicorn(args: list[str], where: str) -> str:
    """Check a gunicorn command line; return its bind address."""
    from gunicorn.config import Config

    try:
        options = Config().parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{where}: gunicorn rejects the arguments {args!r}")
    assert len(options.args) == 1, f"{where}: expected one MODULE:ATTR, got {options.args!r}"
    module_name, sep, attr = options.args[0].partition(":")
    assert sep and attr, f"{where}: gunicorn target {options.args[0]!r} is not MODULE:ATTR"
    with warnings.catch_warnings():
        # Importing config.wsgi builds the handler; whitenoise warns that STATIC_ROOT
        # is not collected yet, which only the image build does.
        warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
        module = importlib.import_module(module_name)
    assert hasattr(module, attr), f"{where}: {module_name} has no attribute {attr!r}"
    assert callable(getattr(module, attr)), f"{where}: {options.args[0]} is not callable"
    binds = options.bind or []
    assert len(binds) == 1, f"{where}: expected one --bind, got {binds!r}"
    return binds[0]


def _split_celery_args(args: list[str]) -> tuple[dict[str, str | bool], str, list[str]]:
    """Global options, sub-command and sub-command arguments of a celery command line."""
    from celery.bin.celery import celery as cli

    by_opt = {opt: param for param in cli.params for opt in (*param.opts, *param.secondary_opts)}
    options: dict[str, str | bool] = {}
    index = 0
    while index < len(args) and args[index].startswith("-"):
        opt, eq, value = args[index].partition("=")
        assert opt in by_opt, f"unknown global celery option {opt!r}"
        param = by_opt[opt]
        if getattr(param, "is_flag", False):
            options[param.name] = True
            index += 1
        elif eq:
            options[param.name] = value
            index += 1
        else:
            options[param.name] = args[index + 1]
            index += 2
    assert index < len(args), "celery command without a sub-command"
    return options, args[index], args[index + 1 :]


def _check_celery(args: list[str], where: str) -> list[str]:
    """Check a celery command line; return the queues a worker consumes ([] otherwise)."""
    import click
    from celery import Celery
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery as cli

    options, sub, rest = _split_celery_args(args)
    assert options.get("app") == "config", f"{where}: expected `celery -A config`, got {args!r}"

    celery_app = importlib.import_module("config.celery_app").app
    assert isinstance(celery_app, Celery), "config.celery_app.app is not a celery.Celery"
    # What `-A config` actually finds: config/__init__.py must expose the app.
    found = find_app("config")
    assert found is celery_app, f"{where}: `celery -A config` finds {found!r}, not config.celery_app.app"

    assert sub in cli.commands, f"{where}: {sub!r} is not a celery sub-command ({sorted(cli.commands)})"
    obj = CLIContext(app=celery_app, no_color=True, workdir=None, quiet=True)
    try:
        context = cli.commands[sub].make_context(sub, list(rest), obj=obj)
    except click.ClickException as exc:
        pytest.fail(f"{where}: `celery {sub}` rejects {rest!r}: {exc}")
    if sub != "worker":
        return []
    return list(context.params.get("queues") or [celery_app.conf.task_default_queue])


def _check_command(argv: list[str], where: str) -> dict[str, object]:
    """Dispatch on the program; return facts the callers compare (bind, queues)."""
    assert argv, f"{where}: empty command"
    program = Path(argv[0]).name
    if program in {"python", "python3"} and argv[1:2] == ["manage.py"]:
        _check_manage_py(argv[2:], where)
        return {}
    if program == "gunicorn":
        return {"bind": _check_gunicorn(argv[1:], where)}
    if program == "celery":
        return {"queues": _check_celery(argv[1:], where)}
    pytest.fail(f"{where}: unrecognised command {argv!r}; teach tests/docker/test_compose.py about it")


# ----------------------------------------------------------------------- compose


def test_compose_declares_every_service(compose):
    missing = EXPECTED_SERVICES - set(compose["services"])
    assert not missing, f"docker/compose.yml lacks services {sorted(missing)}"


def test_app_services_build_from_the_dockerfile(compose):
    for name in APP_SERVICES:
        build = compose["services"][name].get("build")
        assert isinstance(build, dict), f"service {name!r} must build the image (build: mapping)"
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        assert context == REPO_ROOT, f"service {name!r}: build context {context} is not the repo root"
        dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
        assert dockerfile == DOCKERFILE.resolve(), f"service {name!r} builds from {dockerfile}"
        assert dockerfile.is_file(), f"{dockerfile} is missing"


def test_app_services_share_the_environment(compose):
    for name in APP_SERVICES:
        env = _environment(compose["services"][name])
        missing = REQUIRED_APP_ENV - set(env)
        assert not missing, f"service {name!r} lacks environment {sorted(missing)}"
        assert env["MARKETPLACE_DATA_DIR"] == "/data"
        assert str(env["DATABASE_URL"]).startswith("postgres://") and "@postgres:" in str(env["DATABASE_URL"])
        assert str(env["CELERY_BROKER_URL"]).startswith("redis://redis:")
        for secret in REQUIRED_SECRETS:
            # ${NAME:?message}: compose refuses to start instead of running with an empty secret.
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]*\}}", str(env[secret])), (
                f"service {name!r}: {secret} must be required, e.g. ${{{secret}:?set {secret}}}"
            )


def test_commands_are_real(compose):
    for name in APP_SERVICES:
        _check_command(_command(name, compose["services"][name]), f"service {name!r}")


def test_worker_queues_are_declared_and_all_consumed(compose, settings):
    from config.celery_app import app as celery_app

    declared = getattr(settings, "CELERY_TASK_QUEUES_DECLARED", None)
    if declared is None:
        pytest.fail(
            "settings.CELERY_TASK_QUEUES_DECLARED is missing: add the list of queue names "
            "the Celery tasks are routed to (e.g. ['celery', 'compute']) to config/settings/base.py"
        )
    consumed: set[str] = set()
    for name in APP_SERVICES:
        facts = _check_command(_command(name, compose["services"][name]), f"service {name!r}")
        queues = facts.get("queues") or []
        undeclared = set(queues) - set(declared)
        assert not undeclared, (
            f"service {name!r} consumes queues {sorted(undeclared)} not in "
            f"settings.CELERY_TASK_QUEUES_DECLARED {declared!r}"
        )
        consumed.update(queues)
    orphans = ({*declared, celery_app.conf.task_default_queue}) - consumed
    assert not orphans, f"no compose worker consumes queues {sorted(orphans)}: their tasks would never run"


def test_startup_order(compose):
    services = compose["services"]
    for name in ("postgres", "redis"):
        assert services[name].get("healthcheck", {}).get("test"), f"service {name!r} needs a healthcheck"
    migrate_deps = services["migrate"].get("depends_on") or {}
    assert migrate_deps.get("postgres", {}).get("condition") == "service_healthy"
    for name in ("web", "worker", "beat"):
        deps = services[name].get("depends_on") or {}
        assert isinstance(deps, dict), f"service {name!r}: depends_on must be a mapping with conditions"
        assert deps.get("migrate", {}).get("condition") == "service_completed_successfully", (
            f"service {name!r} must wait for migrate to complete successfully"
        )
        assert set(deps) <= set(services), f"service {name!r} depends on unknown services"


def test_image_healthcheck_only_on_web(compose):
    """The image's HEALTHCHECK probes gunicorn, so the other app services turn it off."""
    for name in ("migrate", "worker", "beat"):
        assert compose["services"][name].get("healthcheck", {}).get("disable") is True, (
            f"service {name!r} runs no web server: set healthcheck: {{disable: true}}"
        )
    assert not compose["services"]["web"].get("healthcheck", {}).get("disable")


def test_data_volume_is_shared_by_web_and_worker(compose):
    def data_volume(name: str) -> str:
        for volume in compose["services"][name].get("volumes") or []:
            source, _, target = str(volume).partition(":")
            if target.split(":")[0] == "/data":
                return source
        pytest.fail(f"service {name!r} does not mount a volume at /data")

    web, worker = data_volume("web"), data_volume("worker")
    assert web == worker, f"web mounts {web!r} but worker mounts {worker!r} at /data"
    assert web in (compose.get("volumes") or {}), f"{web!r} must be a named volume (top-level volumes:)"


def test_web_port_matches_gunicorn_bind(compose, dockerfile):
    web = compose["services"]["web"]
    bind = _check_command(_command("web", web), "service 'web'")["bind"]
    port = str(bind).rsplit(":", 1)[-1]
    published = [str(p).rsplit(":", 1)[-1] for p in web.get("ports") or []]
    assert port in published, f"web publishes {published!r}, gunicorn binds {bind}"
    exposed = {token.split("/")[0] for k, rest in dockerfile if k == "EXPOSE" for token in rest.split()}
    assert port in exposed, f"Dockerfile EXPOSEs {sorted(exposed)}, gunicorn binds {bind}"


# -------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_and_ends_unprivileged(dockerfile):
    stages = _stages(dockerfile)
    assert len(stages) >= 2, "docker/Dockerfile must be multi-stage (two or more FROM)"
    users = [rest for keyword, rest in stages[-1] if keyword == "USER"]
    assert users, "the final stage must switch to an unprivileged USER"
    user = users[-1].split(":")[0].strip()
    assert user not in {"root", "0"}, f"the final stage runs as {users[-1]!r}"


def test_dockerfile_copies_exist_in_the_context(dockerfile):
    stage_names = _stage_names(dockerfile)
    for keyword, rest in dockerfile:
        if keyword not in {"COPY", "ADD"}:
            continue
        flags, tokens = _split_flags(_args(rest))
        if "from" in flags:
            source = flags["from"]
            if not any(c in source for c in ":/"):
                assert source in stage_names, f"{keyword} --from={source}: no such stage"
            continue
        assert len(tokens) >= 2, f"{keyword} {rest}: needs a source and a destination"
        for source in tokens[:-1]:
            if source in {".", "./"} or re.match(r"^[a-z]+://", source):
                continue
            matches = list(REPO_ROOT.glob(source)) if any(c in source for c in "*?[") else [REPO_ROOT / source]
            assert matches and all(m.exists() for m in matches), f"{keyword} {source}: not in the repository"
            assert not _is_dockerignored(source), f"{keyword} {source}: excluded by {DOCKERIGNORE.name}"


def test_dockerfile_settings_module_exists(dockerfile):
    envs = " ".join(rest for keyword, rest in _stages(dockerfile)[-1] if keyword == "ENV")
    match = re.search(r"DJANGO_SETTINGS_MODULE[= ]([\w.]+)", envs)
    assert match, "the final stage must set DJANGO_SETTINGS_MODULE"
    assert match.group(1) == "config.settings.production"
    assert importlib.util.find_spec(match.group(1)) is not None, f"{match.group(1)} does not exist"


def test_dockerfile_default_command_is_real(dockerfile):
    cmds = [rest for keyword, rest in _stages(dockerfile)[-1] if keyword == "CMD"]
    assert cmds, "the final stage needs a CMD"
    assert cmds[-1].startswith("["), "CMD must use the exec (JSON) form"
    _check_command(_args(cmds[-1]), "Dockerfile CMD")


def test_healthcheck_probes_healthz(dockerfile):
    from django.urls import resolve

    checks = [rest for keyword, rest in _stages(dockerfile)[-1] if keyword == "HEALTHCHECK"]
    assert checks, "the final stage needs a HEALTHCHECK"
    instruction = checks[-1]
    if HEALTHCHECK_PATH not in instruction:
        # The probe lives in a script copied with the code (COPY . /app): find and read it.
        workdirs = [rest for keyword, rest in _stages(dockerfile)[-1] if keyword == "WORKDIR"]
        app_dir = (workdirs[-1] if workdirs else "/app").rstrip("/") + "/"
        scripts = re.findall(rf"{re.escape(app_dir)}[\w./-]+\.py", instruction)
        assert scripts, f"HEALTHCHECK neither mentions {HEALTHCHECK_PATH} nor runs a script under {app_dir}"
        for script in scripts:
            relative = script[len(app_dir) :]
            path = REPO_ROOT / relative
            assert path.is_file(), f"HEALTHCHECK script {relative} is missing"
            assert not _is_dockerignored(relative), f"{relative} is excluded by {DOCKERIGNORE.name}"
            assert HEALTHCHECK_PATH in path.read_text(), f"{relative} does not probe {HEALTHCHECK_PATH}"
    resolve(HEALTHCHECK_PATH)  # raises Resolver404 until the health-check view is routed
