"""How the engine uses the back office's fraud check (``/fraudcheck``, issue 12): a velocity over
the limit turns an acceptance into fraud (9); the engine waits for the answer only when it would
accept, and never past the budget. (Against the real server: tests/e2e/test_fraudcheck.py.)"""
from __future__ import annotations

import time
from datetime import timedelta

from agent.sync.fraudcheck import Velocity

from .conftest import NOW, ticket
from .test_engine import ctx, issue

HOUR = 3600.0


def answered(kmh: float | None) -> Velocity:
    velocity = Velocity(time.monotonic() + HOUR)
    velocity.answer(kmh)
    return velocity


def test_a_velocity_over_the_limit_is_fraud_and_under_it_is_not(engine, issuer_key):
    decision = engine.validate_sync(issue(issuer_key), ctx(), velocity=answered(300.0))
    assert (decision.event_result, decision.event_reason) == \
        (9, "the back office's fraud check: 300 km/h from its last sighting (> 200)")
    assert engine.validate_sync(issue(issuer_key), ctx(), velocity=answered(50.0)).event_result == 0


def test_no_answer_within_the_budget_decides_with_what_the_device_has(engine, issuer_key):
    silent = Velocity(time.monotonic() + 0.05)  # never answered: the budget ends the wait
    assert engine.validate_sync(issue(issuer_key), ctx(), velocity=silent).event_result == 0
    assert engine.validate_sync(issue(issuer_key, ticket("T2")), ctx(),
                                velocity=answered(None)).event_result == 0  # the server could not say


def test_a_refusal_never_waits_for_the_back_office(engine, cache, issuer_key):
    cache.deny("ticket", "T1", NOW + timedelta(days=1))
    never = Velocity(time.monotonic() + HOUR)  # were it waited for, this test would hang for an hour
    assert engine.validate_sync(issue(issuer_key), ctx(), velocity=never).event_result == 7
