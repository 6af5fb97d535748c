"""The back office, documented (issue 11.5): the README's walkthrough is what the server
answers, call by call, and the README's table of differences from the seed is the document's."""
from __future__ import annotations

from server.deviations import markdown_table

from . import walkthrough
from .conftest import PASSWORD


async def test_the_readme_walkthrough_is_what_the_server_answers(make_server):
    d = make_server()
    results = await walkthrough.run_steps(d.base, PASSWORD)
    for result in results:
        assert result.status == result.step.status, (result.step.title, result.status, result.answer)
    readme = walkthrough.README.read_text(encoding="utf-8")
    assert walkthrough.readme_section(readme) == walkthrough.render(results), \
        "server/README.md is out of date: run .venv/bin/python -m tests.server.walkthrough --write"


async def test_every_back_office_action_is_in_the_walkthrough():
    done = {(step.method, step.path.split("?")[0].replace("$TICKET", "{id}").replace("$LOST", "{id}")
             .replace("$NEW", "{id}")) for step in walkthrough.STEPS}
    for action in (("POST", "/manifest"), ("POST", "/ticket"), ("GET", "/ticket/{id}"), ("GET", "/ticket"),
                   ("PUT", "/ticket/{id}/active"), ("PUT", "/ticket/{id}/refundStatus"),
                   ("PUT", "/ticket/{id}/recoverStatus"), ("PUT", "/ticket/{id}/revoke"),
                   ("GET", "/ticket/{id}/event"), ("GET", "/blacklist")):
        assert action in done, action
    assert any(step.path == "/ticket?pageSize=20" for step in walkthrough.STEPS)  # admin: every ticket


async def test_the_readme_and_the_document_list_the_same_differences_from_the_seed(api):
    assert markdown_table() in walkthrough.README.read_text(encoding="utf-8")
    doc = (await api.get("/openapi.json", role=None)).body
    assert markdown_table() in doc["info"]["description"]
    assert "Differs from the BoB Ticket API v1 seed" in doc["paths"]["/ticket/{ticketId}/refundStatus"]["put"][
        "description"]
