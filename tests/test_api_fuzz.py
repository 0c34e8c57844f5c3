"""Schemathesis over the hub's whole OpenAPI document: no request it can make gets a 5xx.

A real ``cityhub serve`` with access control on, on the database under test, and a platform
administrator's token (so that the requests reach the endpoints' own checks, not only the 401 of the
gate). Each operation gets ``HUB_TEST_FUZZ_EXAMPLES`` generated requests (default 5); the operations that
change the caller's own credentials or cut the caller off (a blocked source address, a disabled
user, revoked tokens) are left out, because after them every further request answers 401/403 and
tests nothing; so are the server-sent event streams, which answer for as long as one listens.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import BACKEND, _pg_database
from tests.processes import HubProcess, hub_env, running_hub

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = int(os.environ.get("HUB_TEST_FUZZ_EXAMPLES", "5"))
PASSWORD = "Fuzz-Horse-Battery-42"
SECRET_KEY = "fuzz-signing-key-" + "f" * 32
# the caller's own credentials and anything that locks the caller out
EXCLUDED = (
    r"^/api/v1/auth/(totp|password|me)"
    r"|/revoke-tokens$"
    r"|^/api/v1/users/\{user_id\}$"
    r"|^/api/v1/security/incidents/\{[a-z_]+\}/actions"
    # server-sent event streams answer for as long as the client listens (their own tests cover them)
    r"|/stream$"
)


@pytest.fixture(scope="module")
def fuzz_database(tmp_path_factory: pytest.TempPathFactory, database_template: str) -> Iterator[str]:
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "hub.db"
        shutil.copyfile(database_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    with _pg_database("cityhub_fuzz", template=database_template) as url:
        yield url


@pytest.fixture(scope="module")
def fuzz_hub(
    tmp_path_factory: pytest.TempPathFactory, fuzz_database: str
) -> Iterator[tuple[HubProcess, str]]:
    settings_env = {
        "CITYHUB_DATABASE_URL": fuzz_database,
        "CITYHUB_AUTH_MODE": "on",
        "CITYHUB_SECRET_KEY": SECRET_KEY,
        "CITYHUB_RATE_LIMIT_PER_MINUTE": "0",
        "CITYHUB_LOG_LEVEL": "WARNING",
    }
    workdir = tmp_path_factory.mktemp("fuzz-hub")
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "cityhub",
            "users",
            "create-admin",
            "--username",
            "fuzzer",
            "--password",
            PASSWORD,
        ],
        env=hub_env(**settings_env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    found = re.search(r"TOTP secret: (\S+)", made.stdout)
    assert found, made.stdout
    with running_hub(workdir, "fuzz-hub", **settings_env) as hub:
        answer = httpx.post(
            f"{hub.url}/api/v1/auth/token",
            data={
                "grant_type": "password",
                "username": "fuzzer",
                "password": PASSWORD,
                "totp": pyotp.TOTP(found.group(1)).now(),
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        yield hub, answer.json()["access_token"]
        errors = [line for line in hub.output().splitlines() if "Traceback" in line]
        assert not errors, hub.output()[-5000:]


@pytest.mark.timeout(1800)
def test_no_request_gets_a_server_error(fuzz_hub: tuple[HubProcess, str]) -> None:
    hub, token = fuzz_hub
    # fetched here, not by schemathesis: building the document can take longer than its 10 s on a busy machine
    document = httpx.get(f"{hub.url}/openapi.json", timeout=120).json()
    schema = schemathesis.openapi.from_dict(document).exclude(path_regex=EXCLUDED)
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    refused: set[str] = set()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def requests_to(case: Any) -> None:
            response = case.call(base_url=hub.url, headers=headers, timeout=60)
            statuses[response.status_code // 100] += 1
            if response.status_code == 401 and not case.operation.path.startswith("/api/v1/auth/"):
                refused.add(case.operation.label)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            requests_to()
        except Exception as error:  # one operation's failure must not hide the others'
            failures.append(f"{operation.label}: {str(error)[:2000]}")
    assert operations > 100, f"only {operations} operations in the OpenAPI document"
    # the token works: outside the token endpoints themselves, no request is turned away with 401
    assert not refused, sorted(refused)
    assert statuses[2] > 0, statuses
    assert not failures, "\n\n".join(failures)
