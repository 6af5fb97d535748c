"""``python -m server b2b ...``: the operator's commands, run as the operator runs them."""
from __future__ import annotations

import json

from server import cli

from ..server.conftest import make_data_dir


def run(capsys, *argv: str) -> tuple[int, object]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def test_companies_keys_integrations_webhooks_and_the_jobs(tmp_path, capsys):
    data = str(make_data_dir(tmp_path / "data"))
    code, made = run(capsys, "b2b", "company", "add", "--data", data, "--name", "ACME", "--product-id", "job-ticket",
                     "--fare-amount", "49", "--currency", "EUR", "--vat-percent", "7", "--zones", "A,B",
                     "--modes", "bus", "--plan", "split-pay-plan", "--contribution", "29")
    assert code == 0 and made["id"] == 1 and made["plan"] == {"type": "split-pay-plan",
                                                              "employeeContributionAmount": 29.0}
    code, companies = run(capsys, "b2b", "company", "list", "--data", data)
    assert companies == [made]
    assert made["product"]["fare"] == {"amount": 49.0, "currency": "EUR", "vatAmount": 3.43, "vatPercent": 7.0}
    code, key = run(capsys, "b2b", "key", "add", "--data", data, "--company", "1", "--permissions", "view-employees")
    assert code == 0 and key["permissions"] == ["view-employees"] and len(key["secret"]) >= 40
    code, listed = run(capsys, "b2b", "key", "list", "--data", data, "--company", "1")
    assert [k["keyId"] for k in listed] == [key["keyId"]] and "secret" not in listed[0]
    assert run(capsys, "b2b", "key", "disable", "--data", data, "--key", key["keyId"])[1]["enabled"] is False
    code, changed = run(capsys, "b2b", "key", "permissions", "--data", data, "--key", key["keyId"], "--permissions",
                        "view-employees,view-hr-integrations")
    assert changed["permissions"] == ["view-employees", "view-hr-integrations"] and changed["enabled"] is False
    code, integration = run(capsys, "b2b", "integration", "add", "--data", data, "--company", "1", "--name", "Personio")
    assert integration["id"] == 1 and integration["status"] == "INITIAL SYNC PENDING"
    code, hook = run(capsys, "b2b", "webhook", "add", "--data", data, "--company", "1", "--url",
                     "http://127.0.0.1:9/hook", "--events", "employee-subscription-changed")
    assert code == 0 and hook["secret"].startswith("whsec_")
    code, hooks = run(capsys, "b2b", "webhook", "list", "--data", data)
    assert hooks[0]["events"] == ["employee-subscription-changed"] and "secret" not in hooks[0]
    assert run(capsys, "b2b", "webhook", "disable", "--data", data, "--endpoint", "1")[1]["enabled"] is False
    assert run(capsys, "b2b", "webhook", "log", "--data", data, "--endpoint", "1")[1] == []
    code, result = run(capsys, "b2b", "rollover", "--data", data, "--at", "2026-06-01T00:05:00+02:00")
    assert code == 0 and result == {"refreshed": 0, "issued": 0, "documents": 0, "revoked": 0, "errors": []}
    assert run(capsys, "b2b", "deliver", "--data", data)[1] == {"attempts": 0, "pending": 0}
    for argv, message in ((("key", "add", "--company", "9"), "no company 9"),
                          (("key", "add", "--company", "1", "--permissions", "fly"), "permissions"),
                          (("key", "disable", "--key", "8d1f2b8e-4a0d-4f52-9c1e-2b7e6f0a9d11"), "no API key"),
                          (("webhook", "add", "--company", "1", "--url", "ftp://x"), "url"),
                          (("webhook", "enable", "--endpoint", "7"), "no webhook endpoint 7"),
                          (("company", "add", "--name", "X", "--product-id", "p", "--fare-amount", "1",
                            "--currency", "EUR", "--plan", "split-pay-plan"), "contribution"),
                          (("rollover", "--at", "yesterday"), "--at"),
                          (("company", "add", "--name", "X"), "needs")):
        code, err = run(capsys, "b2b", *argv, "--data", data)
        assert code == 1 and message in err, (argv, err)
