"""The API fuzzer shared by ``tests/serving/test_fuzz.py`` (a bounded pass in ``make test``) and
``benchmarks/fuzz_api.py`` (a longer one): schemathesis draws requests for every operation of SFAI's OpenAPI
document, valid and invalid, sends them with each role's key, and checks every answer.

Checks per answer: no 5xx; the status code is documented for the operation; the body matches the documented
schema (errors included: they are documented as ``ErrorResponse``); every 4xx is the one error shape
``{"error": {"code", "message"}}``. Failures are collected (not shrunk), one line each.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("admin", "scientist", "mes", "planner")
PEPPER = "fuzz-secret-0123456789"


@dataclass
class FuzzReport:
    operations: int = 0
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)  # "ROLE METHOD PATH: kind" -> an example

    def summary(self) -> str:
        by_class = Counter(f"{s // 100}xx" for s in self.statuses.elements())
        return (
            f"{self.operations} operations, {self.cases} cases, statuses {dict(sorted(by_class.items()))}, "
            f"{len(self.failures)} failure kinds"
        )

    def describe_failures(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"


def error_shape_problem(status: int, body: bytes) -> str | None:
    if status < 400:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return f"{status} body is not JSON: {body[:120]!r}"
    err = doc.get("error") if isinstance(doc, dict) else None
    if not (isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str)):
        return f"{status} body is not the error shape: {body[:160]!r}"
    return None


def build_app(home: Path, *, models: bool = True):  # noqa: ANN201
    """An app on its own SQLite database with a tenant holding every module, one key per role, and (with
    ``models``) the demo models, so that the prediction endpoints reach the model code. Solver time limits are
    capped at 2 s so that fuzzed plans cannot hold the machine."""
    from serving import tenancy
    from serving.app import create_app
    from serving.db import Database
    from serving.settings import Settings

    settings = Settings(
        home=home,
        environment="test",
        secret_key=PEPPER,
        rate_limits={},
        platform_rate_limit=None,
        scheduling_max_solve_s=2,
        scheduling_max_job_s=2,
    )
    settings.ensure_home()
    db = Database(settings.resolved_database_url)
    tenancy.create_tenant(db, "fuzz", "C29")
    for m in tenancy.MODULES:
        tenancy.subscribe(db, "fuzz", m, plan="enterprise")
    keys = {role: tenancy.create_api_key(db, PEPPER, "fuzz", role, role).token for role in ROLES}
    if models:
        from models.demo import train_demo_models

        train_demo_models(settings, db, "fuzz", progress=False)
    app = create_app(settings, db=db)

    def reset() -> None:
        """Undo what a fuzzed admin call may have done to the tenant (ended a subscription), so that every
        operation is fuzzed with the modules subscribed."""
        active = tenancy.active_subscriptions(db, tenancy.get_tenant(db, "fuzz").id)
        for m in tenancy.MODULES:
            if m not in active:
                tenancy.subscribe(db, "fuzz", m, plan="enterprise")
        app.state.platform.access.invalidate()

    app.state.fuzz_reset = reset
    return app, keys


def fuzz_app(
    home: Path,
    *,
    roles=ROLES,  # noqa: ANN001 - role names; None means no key
    examples: int = 6,
    seed: int = 0,
    app=None,  # noqa: ANN001
    keys: dict[str, str] | None = None,
    negative: bool = True,
) -> FuzzReport:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import seed as hseed
    from hypothesis import settings as hsettings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    if app is None:
        app, keys = build_app(home)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    report = FuzzReport()
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if negative else [GenerationMode.POSITIVE]
    for result in schema.get_all_operations():
        op = result.ok()
        report.operations += 1
        for role in roles:
            headers = {"Authorization": f"Bearer {keys[role]}"} if role else {}
            label = f"{role or 'anonymous'} {op.method.upper()} {op.path}"

            for mode in modes:
                run = _runner(report, label, headers, checks)
                test = hseed(seed)(
                    hsettings(
                        max_examples=examples,
                        deadline=None,
                        database=None,
                        phases=[Phase.explicit, Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    )(given(case=op.as_strategy(generation_mode=mode))(run))
                )
                reset = getattr(app.state, "fuzz_reset", None)
                if reset is not None:
                    reset()
                try:
                    test()
                except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
                    continue
    return report


def _runner(report: FuzzReport, label: str, headers: dict, checks: list):  # noqa: ANN202
    from schemathesis.core.failures import FailureGroup

    def run(case) -> None:  # noqa: ANN001
        report.cases += 1
        try:
            response = case.call(headers=headers)
        except Exception as e:  # noqa: BLE001 - the app raised through the transport: a crash
            report.failures.setdefault(f"{label}: raised", f"{type(e).__name__}: {e}"[:300])
            return
        report.statuses[response.status_code] += 1
        problem = error_shape_problem(response.status_code, response.content)
        if problem:
            report.failures.setdefault(f"{label}: error shape", problem)
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:  # record each kind, go on (no shrinking)
            for failure in group.exceptions:
                text = " ".join(str(failure).split())
                report.failures.setdefault(f"{label}: {type(failure).__name__}", text[:400])

    return run
