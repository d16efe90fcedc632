"""The process registry of every backend: leases, liveness by the OS, the last one out."""

from __future__ import annotations

import os
from collections.abc import Callable

from flask_alerting.store import ProcessId, Store, current_process, is_alive
from flask_alerting.store.process import host_name, local_alive
from tests.store_support import NOW, dead_local_process, remote_process

ME = current_process()


def test_the_current_process_names_this_host_pid_and_start() -> None:
    me = current_process()
    assert (me.host, me.pid) == (host_name(), os.getpid()) and me.started > 0
    assert ProcessId.parse(str(me)) == me and me.local
    assert local_alive(me)


def test_a_reused_pid_is_not_the_process_that_had_it() -> None:
    impostor = ProcessId(ME.host, ME.pid, ME.started - 3600)
    assert not local_alive(impostor)
    assert not is_alive(impostor, NOW + 60, NOW)  # on this host the lease does not count


def test_a_process_of_another_host_lives_as_long_as_its_lease() -> None:
    other = remote_process()
    assert is_alive(other, NOW + 1, NOW) and not is_alive(other, NOW, NOW)
    assert not is_alive(other, None, NOW)


def test_registered_processes_and_their_liveness(store: Store) -> None:
    dead, other = dead_local_process(), remote_process()
    for process in (ME, dead, other):
        store.register(process, now=NOW, lease=30)
    seen = {info.process: (info.deadline, info.alive) for info in store.processes(now=NOW + 1)}
    assert seen == {ME: (NOW + 30, True), dead: (NOW + 30, False), other: (NOW + 30, True)}
    later = {info.process: info.alive for info in store.processes(now=NOW + 31)}
    assert later == {ME: True, dead: False, other: False}


def test_a_heartbeat_renews_the_lease(store: Store) -> None:
    other = remote_process()
    store.register(other, now=NOW, lease=30)
    store.register(other, now=NOW + 25, lease=30)
    (info,) = store.processes(now=NOW + 40)
    assert info.deadline == NOW + 55 and info.alive


def test_only_the_last_live_process_is_told_it_is_last(store: Store) -> None:
    other = remote_process()
    store.register(ME, now=NOW, lease=30)
    store.register(other, now=NOW, lease=30)
    assert store.deregister(other, now=NOW + 1) is False
    assert store.deregister(ME, now=NOW + 2) is True
    assert store.processes(now=NOW + 2) == []


def test_dead_processes_do_not_keep_the_last_one_waiting(store: Store) -> None:
    store.register(ME, now=NOW, lease=30)
    store.register(dead_local_process(), now=NOW, lease=30)  # killed, never deregistered
    store.register(remote_process(1), now=NOW, lease=5)  # its lease ran out
    store.register(remote_process(2), now=NOW, lease=60)  # still alive
    assert store.deregister(ME, now=NOW + 10) is False
    assert [info.process for info in store.processes(now=NOW + 10)] == [remote_process(2)]
    assert store.deregister(remote_process(2), now=NOW + 11) is True


def test_every_handle_of_a_store_sees_the_same_registry(
    make_store: Callable[..., Store],
) -> None:
    one, two = make_store(), make_store()
    one.register(remote_process(), now=NOW, lease=30)
    assert [info.process for info in two.processes(now=NOW)] == [remote_process()]
    assert two.deregister(remote_process(), now=NOW) is True
