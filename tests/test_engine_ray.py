"""The Ray engine on a real local cluster (a head and one more worker node, from Ray's CLI) gives what the local
engine gives, into SQLite (results written by the driver) and into Postgres (actors write), even when a worker
process is killed in the middle of the run."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import assert_same_collection, collection_snapshot

from polymodal.collection import Collection

pytest.importorskip("ray", reason="the Ray engine needs the scale extra (ray[data])")


def test_ray_into_sqlite_gives_the_local_results(ray_cluster, local_subset, subset, subset_queries, tmp_path) -> None:
    collection = Collection(tmp_path / "store")
    seen: list[str] = []
    report = collection.index(subset, engine="ray", ray_address=ray_cluster, progress=lambda d, t, k: seen.append(k))
    assert not report.errors and report.outcomes["analyzed"] == 8
    assert {os.path.basename(k) for k in seen if k} == {p.name for p in subset.iterdir()}  # progress came back
    assert_same_collection(
        collection_snapshot(collection, subset_queries), collection_snapshot(local_subset, subset_queries)
    )
    # The decision is made before dispatch: a second run sends nothing to the cluster.
    again = collection.index(subset, engine="ray", ray_address=ray_cluster)
    assert dict(again.outcomes) == {"unchanged": 8}


def _worker_pids() -> set[int]:
    import psutil

    pids = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any("IndexWorker" in part for part in proc.info["cmdline"] or []):
                pids.add(proc.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


def test_ray_into_postgres_survives_a_killed_worker(
    ray_cluster, postgres, local_subset, subset, subset_queries
) -> None:
    """SIGKILL an actor's process once it has finished a file: Ray restarts it and runs its partition again; the
    store ends as the local engine's, nothing lost or duplicated."""
    collection = Collection(postgres("ray_killed"))
    first_file = threading.Event()
    killed: list[int] = []

    def progress(done: int, total: int, key: str) -> None:
        if key:
            first_file.set()

    def kill_one() -> None:
        if not first_file.wait(timeout=300):
            return
        pids = _worker_pids()
        if pids:
            pid = sorted(pids)[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_one)
    killer.start()
    started = time.monotonic()
    report = collection.index(subset, engine="ray", ray_address=ray_cluster, progress=progress)
    killer.join()
    assert killed, "no worker process was found to kill"
    assert not report.errors and report.outcomes["analyzed"] == 8, report.to_dict()
    assert time.monotonic() - started < 600
    assert_same_collection(
        collection_snapshot(collection, subset_queries), collection_snapshot(local_subset, subset_queries)
    )
    import psycopg

    with psycopg.connect(collection.store.url) as conn:  # nothing written twice by the retried partition
        assert conn.execute("SELECT count(*) FROM (SELECT sha, ord FROM evidence GROUP BY sha, ord "
                            "HAVING count(*) > 1) AS d").fetchone()[0] == 0  # fmt: skip
        assert conn.execute("SELECT count(DISTINCT path) = count(*) FROM files").fetchone()[0]
    collection.close()


def test_partitions_are_small_and_keep_the_order(tmp_path) -> None:
    import os as _os

    from polymodal.engine.ray_engine import PARTITION_BYTES, PARTITION_FILES, partitions
    from polymodal.index import _Ahead

    big = _os.stat_result((0, 0, 0, 0, 0, 0, PARTITION_BYTES // 2 + 1, 0, 0, 0))
    small = _os.stat_result((0, 0, 0, 0, 0, 0, 10, 0, 0, 0))
    items = [_Ahead(f"/f{i}", small, sha=str(i)) for i in range(PARTITION_FILES + 1)]
    items += [_Ahead("/big1", big, sha="b1"), _Ahead("/big2", big, sha="b2")]
    cut = partitions(items)
    assert [key for part in cut for key in part] == [item.key for item in items]
    assert len(cut[0]) == PARTITION_FILES and cut[-1] == ["/big2"]  # two big files do not share a partition
