"""When a lease may be taken over: decided from what the checkpoint rows showed and this
process's own clock, never another host's."""

from __future__ import annotations

from persistence.projection_leases import Leases


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def leases(clock: Clock, dead: frozenset[str] = frozenset()) -> Leases:
    return Leases(timeout=3.0, me="here:1:me", clock=clock, died=lambda leader: leader in dead)


def test_a_free_lease_may_be_taken_at_once() -> None:
    view = leases(Clock())
    view.observe("orders", None, 7)
    assert view.claimable("orders")
    assert not view.holds("orders")


def test_a_lease_whose_beat_moves_is_never_taken() -> None:
    clock = Clock()
    view = leases(clock)
    for beat in range(10):
        view.observe("orders", "there:2:it", beat)
        assert not view.claimable("orders")
        clock.now += 2.9  # under the timeout between beats, for ever longer in all


def test_a_lease_whose_beat_stands_still_is_taken_after_the_timeout() -> None:
    clock = Clock()
    view = leases(clock)
    view.observe("orders", "there:2:it", 5)
    clock.now += 2.9
    view.observe("orders", "there:2:it", 5)
    assert not view.claimable("orders")
    clock.now += 0.2
    assert view.claimable("orders")


def test_a_holder_that_died_on_this_host_is_taken_over_at_once() -> None:
    view = leases(Clock(), dead=frozenset({"here:9:gone"}))
    view.observe("orders", "here:9:gone", 5)
    assert view.claimable("orders")


def test_a_lease_naming_this_process_is_held_and_not_claimable() -> None:
    view = leases(Clock())
    view.observe("orders", "here:1:me", 5)
    assert view.holds("orders")
    assert not view.claimable("orders")
    view.observe("orders", "there:2:it", 6)
    assert not view.holds("orders")
