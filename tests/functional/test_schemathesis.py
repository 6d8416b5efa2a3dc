"""schemathesis against a live `onestory serve` on loopback, one SQLite
database seeded with the demo, holding every answer to the OpenAPI document.

The runs go in this order, each with one role's token and only the
operations that role may use (tests/functional/schemathesis.toml says what is
checked, and where valid input is still legitimately refused): a
practitioner, the auditor, the family (its own session), the family on every
staff route (all refused), a coordinator, the coordinator ending its agency's
part, then the admin's erasure of a family of its own. A run fails the test
when schemathesis finds anything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordination.crypto import new_keyring_document, write_secret_file
from tests.conftest import AUDIT_KEY, INDEX_KEY
from tests.functional.test_serve import (
    SECRET,
    checked,
    clean_env,
    onestory,
    parse_demo,
    server,
    wait_healthy,
)
from tests.pg import free_port

CONFIG = Path(__file__).with_name("schemathesis.toml")
RUN_TIMEOUT = 300
RECEIPT = re.compile(r"code (\S+), PIN (\d+)")


@dataclass
class Live:
    base: str
    tokens: dict[str, str]
    family: str  # the Norway family: created by the health centre
    own_family: str  # a family of the admin run's own, to erase
    kept_family: str  # another, that only the practitioner's run touches
    workdir: Path


def _call(base: str, method: str, path: str, token: str | None = None,
          body: object = None) -> tuple[int, dict[str, str]]:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method,  # noqa: S310
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    keyring = tmp / "keyring.json"
    write_secret_file(keyring, json.dumps(new_keyring_document()))
    env = clean_env(tmp, ONESTORY_DATABASE_URL=f"sqlite:///{tmp / 'onestory.db'}",
                    ONESTORY_KEYSTORE_URL=f"sqlite:///{tmp / 'keys.db'}",
                    ONESTORY_SECRET_KEY=SECRET, ONESTORY_KEYRING_FILE=str(keyring),
                    ONESTORY_INDEX_KEY=INDEX_KEY, ONESTORY_AUDIT_SIGNING_KEY=AUDIT_KEY)
    checked(onestory(env, "init"))
    seeded = checked(onestory(env, "seed-demo"))
    logins, families = parse_demo(seeded.splitlines(keepends=True))
    receipt = RECEIPT.search(seeded)
    assert receipt and set(families) == {"norway", "belgium"}, seeded
    tokens = {user: checked(onestory(env, "token", "create", user)).strip()
              for user in ("nurse1", "coord1", "auditor1", "admin1")}
    assert {logins[user]["role"] for user in tokens} == {
        "practitioner", "coordinator", "auditor", "admin"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / "serve.log"
    with server(env, "serve", "--host", "127.0.0.1", "--port", str(port), log=log) as proc:
        wait_healthy(base, proc, log.read_text)
        status, opened = _call(base, "POST", "/api/v1/family/session",
                               body={"receipt_code": receipt[1], "pin": receipt[2]})
        assert status == 201, opened
        assert opened["family_id"] == families["norway"]
        tokens["family"] = opened["token"]
        created = []
        for name in ("To be erased", "To be kept"):
            status, family = _call(base, "POST", "/api/v1/families", tokens["nurse1"],
                                   {"display_name": name})
            assert status == 201, family
            created.append(family["id"])
        yield Live(base, tokens, families["norway"], *created, tmp)
        assert proc.poll() is None, log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()


def schemathesis_command() -> list[str]:
    script = Path(sys.executable).parent / "schemathesis"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "schemathesis.cli"]


@dataclass
class Outcome:
    operations: int
    cases: int
    seconds: float
    output: str


def fuzz(live: Live, token: str, operations: list[str], family: str,
         agency: str = "health-centre", document: str | None = None,
         exclude_checks: tuple[str, ...] = ()) -> Outcome:
    """One schemathesis run over `operations` with `token`; fails on any finding.
    `document`: another document than the server's (a file)."""
    env = clean_env(live.workdir, ONESTORY_FUZZ_TOKEN=token, ONESTORY_FUZZ_FAMILY=family,
                    ONESTORY_FUZZ_AGENCY=agency, NO_COLOR="1")
    started = time.monotonic()
    result = subprocess.run(
        [*schemathesis_command(), "--config-file", str(CONFIG), "run",
         document or f"{live.base}/api/v1/openapi.json", "--url", live.base,
         "--include-operation-id-regex", f"^({'|'.join(operations)})$",
         *(["--exclude-checks", ",".join(exclude_checks)] if exclude_checks else [])],
        env=env, cwd=live.workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert tested and cases, output
    assert int(tested[1]) == len(operations), output
    assert cases[1] == cases[2], output
    outcome = Outcome(int(tested[1]), int(cases[1]), seconds, output)
    print(f"schemathesis: {outcome.operations} operations, {outcome.cases} cases, "
          f"{seconds:.1f} s")
    return outcome


# The operations (operationId) each run fuzzes, in the order the runs go. A new
# route goes into the run of each role that may use it (test_every_operation_is_fuzzed
# fails until it is in one), with an [[operations]] section in schemathesis.toml
# when valid input can still be refused.
STAFF_READS = ["agencies", "fields"]
REFERRALS = ["create_referral", "referral_list", "family_referrals", "referral"]
APPOINTMENTS = ["book_appointment", "appointment_outcome", "close_referral"]
ACCESS_REQUESTS = ["create_access_request", "access_requests_list"]
ACCESS_ANSWERS = ["approve_access_request", "decline_access_request"]
DUTY_ACTS = ["propose_duty_grant", "approve_duty_grant", "reject_duty_grant"]
AREAS = ["areas_list", "set_family_area"]
PRACTITIONER = [*STAFF_READS, "create_family", "search", "family", "write_entry",
                "get_consent", *REFERRALS, *APPOINTMENTS, *ACCESS_REQUESTS, "worklist_items",
                "duty_grants_list", "open_emergency_access", *AREAS]
HOLDS = ["place_protection_hold", "family_protection_holds", "renew_protection_hold",
         "lift_protection_hold"]
HOLD_REVIEWS = ["protection_holds_list", "protection_holds_review_queue"]
EMERGENCY_REVIEW = ["emergency_accesses", "review_emergency_access"]
AUDITOR = [*STAFF_READS, "audit_entries", "audit_verify", "duty_grants_list", *HOLD_REVIEWS,
           *EMERGENCY_REVIEW, "report"]
FAMILY = ["get_consent", "history", "access_log", "revoke", "family_session",
          "openapi_document", "family_referrals", "referral", "agree_referral",
          "refuse_referral", "access_requests_list", *ACCESS_ANSWERS, "duty_grants_list"]
STAFF_ONLY = [*STAFF_READS, "create_family", "search", "family", "write_entry", "refer",
              "update_involvement", "put_consent", "hide", "audit_entries", "audit_verify",
              "erase", "create_referral", "referral_list", "accept_referral",
              "decline_referral", "withdraw_referral", *APPOINTMENTS, "create_access_request",
              "worklist_items", *DUTY_ACTS, *HOLDS, *HOLD_REVIEWS, "open_emergency_access",
              *EMERGENCY_REVIEW, *AREAS, "report"]
COORDINATOR = ["family", "get_consent", "put_consent", "revoke", "history", "access_log",
               "hide", "refer", "write_entry", *REFERRALS, "accept_referral",
               "decline_referral", "withdraw_referral", *APPOINTMENTS, "agree_referral",
               "refuse_referral", *ACCESS_REQUESTS, *ACCESS_ANSWERS, "worklist_items",
               "duty_grants_list", *DUTY_ACTS, *HOLDS, "open_emergency_access", "report"]
COORDINATOR_LAST = ["update_involvement", "end_involvement"]
# The family ends an agency's part after every staff run that needs that agency.
FAMILY_LAST = ["end_involvement"]
ADMIN = [*STAFF_READS, "erase"]


def test_every_operation_is_fuzzed(live: Live) -> None:
    status, doc = _call(live.base, "GET", "/api/v1/openapi.json")
    assert status == 200
    documented = {operation["operationId"] for operations in doc["paths"].values()
                  for operation in operations.values()}
    fuzzed = {*PRACTITIONER, *AUDITOR, *FAMILY, *COORDINATOR, *COORDINATOR_LAST, *FAMILY_LAST,
              *ADMIN}
    assert documented == fuzzed
    # all the family may not use
    assert set(STAFF_ONLY) == documented - set(FAMILY) - set(FAMILY_LAST)


def test_an_answer_the_document_does_not_describe_fails_the_run(live: Live) -> None:
    status, doc = _call(live.base, "GET", "/api/v1/openapi.json")
    assert status == 200
    doc["components"]["schemas"]["AgencyOut"]["properties"]["minimal_data"] = {
        "type": "string"}  # the server answers a boolean
    broken = live.workdir / "broken-openapi.json"
    broken.write_text(json.dumps(doc))
    with pytest.raises(AssertionError) as failed:
        fuzz(live, live.tokens["nurse1"], ["agencies"], live.family, document=str(broken))
    assert "Response violates schema" in str(failed.value)
    assert 'false is not of type "string"' in str(failed.value)


def test_practitioner(live: Live) -> None:
    fuzz(live, live.tokens["nurse1"], PRACTITIONER, live.family)


def test_auditor(live: Live) -> None:
    fuzz(live, live.tokens["auditor1"], AUDITOR, live.family)


def test_family(live: Live) -> None:
    fuzz(live, live.tokens["family"], FAMILY, live.family)


def test_roles_a_route_does_not_admit(live: Live) -> None:
    """The family's token on every staff route: each answers 403 whatever the
    input, so `positive_data_acceptance` (valid input gets a 2xx) does not fit
    this run; every other check does."""
    fuzz(live, live.tokens["family"], STAFF_ONLY, live.family,
         exclude_checks=("positive_data_acceptance",))


def test_coordinator(live: Live) -> None:
    fuzz(live, live.tokens["coord1"], COORDINATOR, live.family)


def test_coordinator_ends_its_part(live: Live) -> None:
    """Closing its own involvement, or recording that the family ended its
    part, may end the family's visibility: after the rest."""
    fuzz(live, live.tokens["coord1"], COORDINATOR_LAST, live.family)


def test_family_ends_a_part(live: Live) -> None:
    """The family ends physiotherapy's part: after every run that needs it."""
    fuzz(live, live.tokens["family"], FAMILY_LAST, live.family, agency="physio")


def test_admin_erasure_last(live: Live) -> None:
    fuzz(live, live.tokens["admin1"], ADMIN, live.own_family)
    status, _body = _call(live.base, "GET", f"/api/v1/families/{live.own_family}",
                          live.tokens["nurse1"])
    assert status == 404  # erased by the run, and nothing else was
    status, _body = _call(live.base, "GET", f"/api/v1/families/{live.kept_family}",
                          live.tokens["nurse1"])
    assert status == 200
