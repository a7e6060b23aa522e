"""A clock the test moves by hand, for production code that takes one (`clock=`): seconds since
the epoch that change only when the test says so, so no real minute or TTL decides a verdict."""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
