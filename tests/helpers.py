"""Small builders shared by the tests."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from agent.rules.policy import Policy
from agent.rules.simulate import Event, read_events


def policy(email: dict[str, Any] | None = None, timezone: str = "America/Chicago", **meetings: Any) -> Policy:
    return Policy.model_validate(
        {
            "mentor": {
                "name": "Dr. Ana Rivera",
                "addresses": ["arivera@hospital.example.org"],
                "timezone": timezone,
                "pronoun": "she",
            },
            "email": email or {},
            "meetings": meetings,
        }
    )


def events(*items: dict[str, Any]) -> list[Event]:
    return read_events([json.dumps(item) for item in items])


def send(at: str, id: str, **extra: Any) -> dict[str, Any]:
    return {"at": at, "type": "send", "id": id, "subject": f"about {id}", **extra}


def reply(at: str, to: str) -> dict[str, Any]:
    return {"at": at, "type": "reply", "to": to}


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
