"""What the passenger reads on the validator, per result code (spec §5)."""
from __future__ import annotations

PASSENGER = {
    0: "Welcome aboard - ticket valid",
    1: "Ticket could not be read - please try again",
    2: "Ticket not valid here",
    3: "Ticket not valid at this time",
    4: "Please open your ticket in the app and scan again",
    5: "Ticket not recognised",
    6: "Ticket not recognised - open it in the app",
    7: "Ticket blocked - please contact customer service",
    8: "Ticket already used here",
    9: "Ticket cannot be used - please contact staff",
}

INSPECTION_VALID = "Ticket valid - thank you"
# The device cannot decide (its clock, its trust list or its cache cannot be trusted): not the ticket's fault.
OUT_OF_SERVICE = "Validator out of service - please ask staff"


def passenger_message(code: int, mode: str) -> str:
    """An inspector's passenger is already on board: no "welcome" there."""
    return INSPECTION_VALID if code == 0 and mode == "inspection" else PASSENGER[code]


RESULT_NAMES = {0: "success", 1: "other", 2: "spatial", 3: "time", 4: "device header", 5: "issuer signature",
                6: "device signature", 7: "deny list", 8: "passback", 9: "fraud"}
