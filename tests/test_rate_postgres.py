"""genlab rate storage on PostgreSQL (shared by several server processes). Runs only when
GENLAB_TEST_POSTGRES_URL names a scratch database (e.g. postgresql://postgres@127.0.0.1:5432/ratetest)
and psycopg is installed; the tables are dropped first."""
import os
import threading

import pytest

URL = os.environ.get("GENLAB_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set GENLAB_TEST_POSTGRES_URL to a scratch PostgreSQL database")


def test_two_servers_share_one_postgres_database(tmp_path):
    psycopg = pytest.importorskip("psycopg")
    from genlab.apps.rate import create
    from genlab.apps.rate.testing import Participant, free_port, request, start_server, toy_design
    with psycopg.connect(URL, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS responses, sessions, participants CASCADE")
    test = create(toy_design(tmp_path / "src", "pairwise", "image", n_systems=3, n_items=2), tmp_path / "test")
    ports = [free_port(), free_port()]
    procs = [start_server(test, p, "adm", db=URL, fork=True) for p in ports]
    try:
        parts = [Participant(ports[i % 2], i) for i in range(20)]
        errors = []

        def go(p):
            try:
                p.start()
                while p.step():
                    pass
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        th = [threading.Thread(target=go, args=(p,)) for p in parts]
        [t.start() for t in th]
        [t.join(120) for t in th]
        assert errors == []
        with psycopg.connect(URL) as c:
            n, distinct = c.execute("SELECT COUNT(*), COUNT(DISTINCT (participant_id, trial_index)) "
                                    "FROM responses").fetchone()
            numbers = [r[0] for r in c.execute("SELECT number FROM participants ORDER BY number")]
        assert n == distinct == 20 * 8 == sum(len(p.acked) for p in parts)
        assert numbers == list(range(20))                 # sequential numbering across both processes
        # a replay through the other process is refused by the database
        p = parts[0]
        a = p.acked[0]
        body = {"session_id": p.session, "trial_index": a["trial_index"], "trial_id": a["trial_id"],
                "response": a["response"], "rt_ms": 1500, "played": [True, True]}
        st, r = request(ports[1], "POST", "/api/response", body, token=p.token)
        assert st == 409
        with psycopg.connect(URL, autocommit=True) as c, pytest.raises(psycopg.errors.RaiseException):
            c.execute("DELETE FROM responses")
        st, prog = request(ports[0], "GET", "/admin/progress", token="adm")
        assert prog["completed"] == 20
    finally:
        for pr in procs:
            pr.kill()
            pr.wait(10)
