"""Stamp pairing: nearest message within a slop, bounded, and safe while callbacks add from other threads."""

import threading

from abspose.ros.sync import StampBuffer


def test_nearest_within_slop_and_bounded():
    buf = StampBuffer(3)
    assert buf.nearest(0) is None and buf.closest(0) == (None, float("inf")) and buf.newest_stamp() is None
    for k in range(5):
        buf.add(k * 100_000_000, f"m{k}")  # 0.0 ... 0.4 s; only the last 3 kept
    assert len(buf.items) == 3 and buf.newest_stamp() == 400_000_000
    assert buf.nearest(0) == "m2"  # m0, m1 fell out
    msg, offset = buf.closest(260_000_000)
    assert msg == "m3" and abs(offset - 0.04) < 1e-12
    assert buf.nearest(260_000_000, slop=0.05) == "m3" and buf.nearest(260_000_000, slop=0.03) is None
    assert buf.nearest(500_000_000, slop=0.1) == "m4"  # exactly slop away: within
    buf.clear()
    assert buf.nearest(0) is None
    tiny = StampBuffer(0)  # holds at least the newest message
    tiny.add(1, "a")
    tiny.add(2, "b")
    assert list(tiny.items) == [(2, "b")]


def test_lookups_while_other_threads_add_never_fail():
    """The node's worker looks up while subscription callbacks append: no 'deque mutated during iteration'."""
    buf = StampBuffer(10)
    errors: list[BaseException] = []
    stop = threading.Event()

    def add() -> None:
        k = 0
        while not stop.is_set():
            buf.add(k, k)
            k += 1

    def look() -> None:
        try:
            for k in range(20_000):
                buf.nearest(k, 0.5)
        except BaseException as exc:
            errors.append(exc)

    adders = [threading.Thread(target=add) for _ in range(2)]
    lookers = [threading.Thread(target=look) for _ in range(2)]
    for t in adders + lookers:
        t.start()
    for t in lookers:
        t.join()
    stop.set()
    for t in adders:
        t.join()
    assert errors == []
