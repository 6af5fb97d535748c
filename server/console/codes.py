"""Words and colours for what the operator reads: ticketEvent result codes (spec §5) and
ticket states. The device shows a passenger its own words; these are the back office's."""
from __future__ import annotations

RESULTS = {
    0: "accepted",
    1: "unreadable or malformed",
    2: "not valid here (zone, stop area or mode)",
    3: "not valid at this time",
    4: "device binding or device time",
    5: "issuer signature",
    6: "device signature",
    7: "on the deny list",
    8: "passback: used again too soon",
    9: "fraud: impossible travel speed",
}

# Okabe-Ito, a palette readable with the common colour-vision deficiencies (plus two greys);
# every chart also labels its colours in words.
COLOURS = {0: "#009E73", 1: "#7F7F7F", 2: "#56B4E9", 3: "#E69F00", 4: "#CC79A7", 5: "#0072B2",
           6: "#F0E442", 7: "#D55E00", 8: "#000000", 9: "#B3B3B3"}
UNKNOWN_COLOUR = "#5A5A5A"

STATES = {
    "active": "active: usable",
    "frozen": "frozen: refused until thawed",
    "recovered": "recovered: value waits to be re-issued",
    "replaced": "replaced by a re-issued ticket",
    "refunded": "refunded",
    "revoked": "revoked",
}


def result_name(code: int | None) -> str:
    """``7 · on the deny list``; an event stored without a result says so."""
    if code is None:
        return "no result"
    return f"{code} · {RESULTS.get(code, 'unknown code')}"


def result_colour(code: int | None) -> str:
    return COLOURS.get(code, UNKNOWN_COLOUR) if code is not None else UNKNOWN_COLOUR
