"""The test card tokens of the local gateway, and what a charge with each does."""

import re
from dataclasses import dataclass

UNAVAILABLE = re.compile(r"tok_unavailable_(\d{1,6})")
SLOW = re.compile(r"tok_slow_(\d{1,7})")


@dataclass(frozen=True)
class Card:
    """What a charge with a token does: declined (`decline_code`), refused with 503 for the first
    `unavailable_attempts` attempts under its key, executed after `delay_seconds`, or executed
    with its answer lost (`loses_answer`)."""

    decline_code: str | None = None
    unavailable_attempts: int = 0
    delay_seconds: float = 0.0
    loses_answer: bool = False


CARDS = {
    "tok_visa": Card(),
    "tok_chargeDeclined": Card(decline_code="generic_decline"),
    "tok_chargeDeclinedInsufficientFunds": Card(decline_code="insufficient_funds"),
    "tok_chargeDeclinedExpiredCard": Card(decline_code="expired_card"),
    "tok_lostAnswer": Card(loses_answer=True),
}
INVALID = Card(decline_code="invalid_token")


def card_for(token: object) -> Card:
    if not isinstance(token, str):
        return INVALID
    if token in CARDS:
        return CARDS[token]
    if match := UNAVAILABLE.fullmatch(token):
        return Card(unavailable_attempts=int(match[1]))
    if match := SLOW.fullmatch(token):
        return Card(delay_seconds=int(match[1]) / 1000)
    return INVALID
