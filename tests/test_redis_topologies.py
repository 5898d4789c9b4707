"""Redis Cluster and Redis behind Sentinel: the contract suite, the one-round-trip hot path, a failover."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from flask_gridauth.records import utcnow
from flask_gridauth.storage import Storage, storage_from_uri
from flask_gridauth.storage.cache import KeyCache
from flask_gridauth.testing import StorageContract, make_record

from .conftest import bearer, build_app, create_key
from .redis_servers import HOST, Servers, start_cluster, start_sentinel, wait_for


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """A 3-master Redis Cluster on free ports, for this module."""
    servers = Servers(tmp_path_factory.mktemp("cluster"))
    try:
        yield start_cluster(servers)
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def sentinel_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, int]]:
    """A master, a replica and a sentinel on free ports, for this module."""
    servers = Servers(tmp_path_factory.mktemp("sentinel"))
    try:
        yield start_sentinel(servers)
    finally:
        servers.stop()


def cluster_uri(ports: list[int]) -> str:
    """A redis+cluster:// URI naming two of the nodes, under a fresh key prefix."""
    return f"redis+cluster://{HOST}:{ports[0]},{HOST}:{ports[1]}?key_prefix=t{uuid.uuid4().hex[:10]}"


def sentinel_uri(ports: tuple[int, int, int]) -> str:
    """A redis+sentinel:// URI of the service, under a fresh key prefix."""
    return f"redis+sentinel://{HOST}:{ports[2]}/gridauth/0?key_prefix=t{uuid.uuid4().hex[:10]}"


class TestClusterStorage(StorageContract):
    """The contract on a real 3-master Redis Cluster."""

    @pytest.fixture
    def storage_factory(self, cluster_ports: list[int]) -> Callable[[], Storage]:
        """Handles on one fresh key prefix of the cluster."""
        uri = cluster_uri(cluster_ports)
        return lambda: storage_from_uri(uri)


class TestSentinelStorage(StorageContract):
    """The contract on a real master + replica behind a sentinel."""

    @pytest.fixture
    def storage_factory(self, sentinel_ports: tuple[int, int, int]) -> Callable[[], Storage]:
        """Handles on one fresh key prefix of the monitored master."""
        uri = sentinel_uri(sentinel_ports)
        return lambda: storage_from_uri(uri)


def test_cluster_keys_of_one_key_share_a_slot(cluster_ports: list[int], tmp_path: Path) -> None:
    """A record and the counters its look-up hits hash to one slot (one script, one round trip)."""
    app = build_app(
        str(tmp_path),
        GRIDAUTH_STORAGE_URI=cluster_uri(cluster_ports),
        GRIDAUTH_RATELIMIT_ENABLED=True,
        GRIDAUTH_RATELIMIT_API_KEY="3/minute",
    )
    record, raw = create_key(app)
    client = app.test_client()
    statuses = [client.get("/items", headers=bearer(raw)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    storage = app.extensions["gridauth"].storage
    cluster = storage.client
    keys = [k.decode() for k in cluster.scan_iter(match=f"{storage.prefix}*")]  # every primary
    tagged = [k for k in keys if "{" + record.lookup + "}" in k]
    assert len(tagged) == 2  # the record and its one counter
    assert len({cluster.keyslot(k) for k in tagged}) == 1


def test_cluster_starts_while_down(tmp_path: Path) -> None:
    """An app on a cluster that does not answer starts, and its key requests get 503."""
    from .redis_servers import free_port

    app = build_app(
        str(tmp_path),
        GRIDAUTH_STORAGE_URI=f"redis+cluster://{HOST}:{free_port()}",
        GRIDAUTH_STORAGE_TIMEOUT=0.3,
        GRIDAUTH_RATELIMIT_ENABLED=True,
    )
    from flask_gridauth.keys import generate_key

    response = app.test_client().get("/items", headers=bearer(generate_key("grd")))
    assert response.status_code == 503 and response.get_json()["code"] == "unavailable"


def test_bad_topology_uris_refused() -> None:
    """A sentinel URI without a service, or a host list without ports, is a configuration error."""
    from flask_gridauth.errors import ConfigurationError

    for uri in ("redis+sentinel://127.0.0.1:26379", "redis+sentinel://h:1/svc/x", "redis+cluster://nohost"):
        with pytest.raises(ConfigurationError):
            storage_from_uri(uri)


def test_sentinel_failover_under_traffic(tmp_path: Path) -> None:
    """Killing the master under traffic gives only 503s during the switch, never a revoked key through.

    Traffic comes back on the promoted replica without restarting the app.
    """
    servers = Servers(tmp_path / "servers")
    try:
        master, replica, sentinel = start_sentinel(servers)
        app = build_app(
            str(tmp_path / "app"),
            GRIDAUTH_STORAGE_URI=f"redis+sentinel://{HOST}:{sentinel}/gridauth",
            GRIDAUTH_STORAGE_TIMEOUT=0.5,
            GRIDAUTH_RATELIMIT_ENABLED=True,
            GRIDAUTH_RATELIMIT_API_KEY="1000000/minute",
            GRIDAUTH_FAILED_AUTH_LIMIT=None,  # the revoked key's 401s would throttle the address
        )
        _, good = create_key(app)
        revoked, bad = create_key(app)
        with app.app_context():
            app.extensions["gridauth"].keys.revoke(revoked.id, owner="alice")
        # Replication is asynchronous: wait until the replica holds the revocation before the crash.
        redis.Redis(host=HOST, port=master).wait(1, 5000)

        seen: dict[str, list[int]] = {"good": [], "bad": []}
        stop = threading.Event()

        def traffic(name: str, raw: str) -> None:
            client = app.test_client()
            while not stop.is_set():
                seen[name].append(client.get("/items", headers=bearer(raw)).status_code)

        threads = [threading.Thread(target=traffic, args=args) for args in (("good", good), ("bad", bad))]
        for thread in threads:
            thread.start()
        wait_for(lambda: seen["good"].count(200) >= 5, "traffic before the failover")
        servers.kill(master)
        watcher = redis.Redis(host=HOST, port=sentinel)
        wait_for(
            lambda: (
                watcher.execute_command("SENTINEL", "get-master-addr-by-name", "gridauth")[1] == str(replica).encode()
            ),
            "the sentinel to promote the replica",
        )
        before = len(seen["good"])
        wait_for(lambda: seen["good"][before:].count(200) >= 5, "traffic on the new master", deadline=60)
        stop.set()
        for thread in threads:
            thread.join()
        assert set(seen["good"]) <= {200, 503} and 503 in seen["good"]
        assert set(seen["bad"]) <= {401, 503} and 401 in seen["bad"]
        assert seen["good"][-1] == 200
    finally:
        servers.stop()


def test_sentinel_record_round_trip(sentinel_ports: tuple[int, int, int]) -> None:
    """A key written through the sentinel-found master is on the master the sentinel names."""
    storage = storage_from_uri(sentinel_uri(sentinel_ports))
    try:
        record = storage.add(make_record())
        direct = redis.Redis(host=HOST, port=sentinel_ports[0])
        assert direct.exists(f"{storage.prefix}:rec:{record.lookup}") == 1
    finally:
        storage.close()


@pytest.mark.parametrize("strategy", ("fixed-window", "moving-window"))
def test_cluster_as_counter_storage(cluster_ports: list[int], tmp_path: Path, strategy: str) -> None:
    """GRIDAUTH_RATELIMIT_STORAGE_URI may name a cluster: the limit holds there, with either strategy."""
    app = build_app(
        str(tmp_path),
        GRIDAUTH_RATELIMIT_ENABLED=True,
        GRIDAUTH_RATELIMIT_API_KEY="3/minute",
        GRIDAUTH_RATELIMIT_STRATEGY=strategy,
        GRIDAUTH_RATELIMIT_STORAGE_URI=cluster_uri(cluster_ports),
    )
    _, raw = create_key(app)
    client = app.test_client()
    assert [client.get("/items", headers=bearer(raw)).status_code for _ in range(4)] == [200, 200, 200, 429]


def _cached_pair(ports: list[int]) -> tuple[Storage, Storage, KeyCache]:
    """A cached handle and a plain one on one fresh prefix of the cluster, the cache's channel up."""
    uri = cluster_uri(ports)
    cached, plain = storage_from_uri(uri), storage_from_uri(uri)
    assert cached.enable_cache(30.0)
    cache = cached._key_cache
    assert cache is not None
    cached.find("0" * 64)  # the first look-up starts the listener
    wait_for(lambda: cache.live, "the cluster change feed")
    return cached, plain, cache


def test_cluster_cache_hits_and_pushed_changes(cluster_ports: list[int]) -> None:
    """On a cluster, found keys are cached; an update (published by its script) and a pushed write reach it."""
    cached, plain, cache = _cached_pair(cluster_ports)
    try:
        record = plain.add(make_record())
        first = cached.find(record.lookup)
        assert first == record
        hits = cache.hits
        assert cached.find(record.lookup) is first and cache.hits == hits + 1
        revoked = utcnow().replace(microsecond=0)
        plain.update(record.id, {"revoked_at": revoked})  # PUBLISH from inside the compare-and-set script
        wait_for(lambda: (r := cached.find(record.lookup)) is not None and r.revoked_at == revoked, "the revocation")
        other = plain.add(make_record())
        assert cached.find(other.lookup) == other
        pushed = cache.pushed
        plain._push_change()  # what every write without a push of its own sends: every key dropped
        wait_for(lambda: cache.pushed > pushed, "the pushed change")
        assert cache.get(other.lookup) is None
    finally:
        cached.close()
        plain.close()


def test_cluster_cache_channel_down_empties_and_recovers(cluster_ports: list[int]) -> None:
    """When the subscription's node drops it, the cache empties and stays off; back, it serves what is current."""
    cached, plain, cache = _cached_pair(cluster_ports)
    try:
        record = plain.add(make_record())
        assert cached.find(record.lookup) == record
        generation = cache.generation
        for port in cluster_ports:  # whichever node the subscription is on
            node = redis.Redis(host=HOST, port=port)
            node.client_kill_filter(_type="pubsub")
            node.close()
        wait_for(lambda: cache.generation > generation, "the cache to be emptied")
        plain.update(record.id, {"name": "changed while the channel was down"})  # its push may be lost
        wait_for(lambda: cache.live, "the change feed to come back")
        found = cached.find(record.lookup)
        assert found is not None and found.name == "changed while the channel was down"
    finally:
        cached.close()
        plain.close()


def test_cluster_cache_revocation_reaches_other_app(cluster_ports: list[int], tmp_path: Path) -> None:
    """With GRIDAUTH_CACHE_TTL on redis+cluster://, a key revoked by another app is refused there."""
    uri = cluster_uri(cluster_ports)
    serving = build_app(str(tmp_path / "a"), GRIDAUTH_STORAGE_URI=uri, GRIDAUTH_CACHE_TTL=60)
    managing = build_app(str(tmp_path / "b"), GRIDAUTH_STORAGE_URI=uri)
    record, raw = create_key(managing)
    client = serving.test_client()
    cache = serving.extensions["gridauth"].storage._key_cache
    assert cache is not None, "the cluster backend refused the cache"
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    wait_for(lambda: cache.live, "the cluster change feed")
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    assert cache.hits >= 1
    with managing.app_context():
        managing.extensions["gridauth"].keys.revoke(record.id)
    wait_for(lambda: client.get("/items", headers=bearer(raw)).status_code == 401, "the revocation", deadline=5)
