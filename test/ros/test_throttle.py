"""Rate-limited log lines: once per period per kind, every call counted."""

from abspose.ros.throttle import Throttle


def test_once_per_period_per_kind_and_counted():
    now = [0.0]
    lines = []
    throttle = Throttle(5.0, lines.append, clock=lambda: now[0])
    assert throttle("a", "a1") is True and throttle("a", "a2") is False
    assert throttle("b", "b1")  # another kind is not held back
    now[0] = 4.9
    assert not throttle("a", "a3")
    now[0] = 5.0
    assert throttle("a", "a4")
    assert lines == ["a1", "b1", "a4"] and throttle.counts == {"a": 4, "b": 1}


def test_without_emit_it_only_decides():
    throttle = Throttle(1.0, emit=None, clock=lambda: 0.0)
    assert throttle("k", "x") and not throttle("k", "x") and throttle.counts["k"] == 2
