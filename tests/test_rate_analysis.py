"""genlab rate analysis on simulated ratings with a known ground truth: orderings come out right and
the 95 % intervals cover the truth about 95 % of the time; MUSHRA post-screening and trap exclusions
remove exactly the bad participants; the full `analyze` report is written from a served test."""
import csv
import io

import numpy as np
import pytest
from scipy.stats import norm

from genlab.apps.rate import analyze, create, load_manifest
from genlab.apps.rate.analysis import (analyze_hype, analyze_mos, analyze_mushra, analyze_pairwise, holm,
                                       two_way_bootstrap)
from genlab.apps.rate.server import RateService
from genlab.apps.rate.testing import toy_design


def test_holm_matches_hand_computation():
    # sorted p: .005·4 = .02, .01·3 = .03, .03·2 = .06, .04·1 = .04 → monotone: .02 .03 .06 .06
    assert np.allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def _row(pid, base, kind, sources, roles, items, response, positions=None):
    return {"participant_id": pid, "base_trial": base, "kind": kind, "trap": 0, "sources": sources,
            "roles": roles, "items": items, "response": response, "positions": positions or [0, 1]}


def test_mos_bootstrap_orders_systems_and_covers_the_truth():
    mu = np.array([2.6, 3.1, 3.6])
    sd_p, sd_q, sd_e = 0.5, 0.4, 0.7
    sd = np.sqrt(sd_p ** 2 + sd_q ** 2 + sd_e ** 2)
    # truth: E[clip(round(mu + Z), 1, 5)] with Z ~ N(0, sd²), the population mean opinion score
    edges = np.array([-np.inf, 1.5, 2.5, 3.5, 4.5, np.inf])
    truth = np.array([np.sum(np.arange(1, 6) * np.diff(norm.cdf((edges - m) / sd))) for m in mu])
    rng = np.random.default_rng(0)
    P, Q, studies = 16, 12, 80
    cover, ordered = [], 0
    for s in range(studies):
        bp = rng.normal(0, sd_p, P)
        cq = rng.normal(0, sd_q, (3, Q))
        p_idx, s_idx, q_idx = np.meshgrid(np.arange(P), np.arange(3), np.arange(Q), indexing="ij")
        p_idx, s_idx, q_idx = p_idx.ravel(), s_idx.ravel(), q_idx.ravel()
        r = np.clip(np.round(mu[s_idx] + bp[p_idx] + cq[s_idx, q_idx] + rng.normal(0, sd_e, p_idx.size)), 1, 5)
        rows = [_row(f"p{p}", f"t{si}-{q}", "mos", [f"sys{si}"], ["system"], [str(q)], {"rating": int(v)})
                for p, si, q, v in zip(p_idx, s_idx, q_idx, r)]
        res = analyze_mos(rows, n_boot=400, seed=s)
        by = {d["system"]: d for d in res["scores"]}
        for k in range(3):
            d = by[f"sys{k}"]
            cover.append(d["ci_low"] <= truth[k] <= d["ci_high"])
        ordered += [d["system"] for d in res["scores"]] == ["sys2", "sys1", "sys0"]
    coverage = np.mean(cover)
    print("MOS coverage", coverage)
    assert 0.88 <= coverage <= 0.99, coverage
    assert ordered >= 0.9 * studies


def test_bootstrap_ignoring_participants_would_undercover():
    """The two-way bootstrap is needed: with a strong participant effect, resampling items only
    gives intervals that are too narrow (this is what the test above guards against)."""
    rng = np.random.default_rng(1)
    P, Q = 10, 20
    cover_two, cover_items = [], []
    for s in range(60):
        bp = rng.normal(0, 1.0, P)
        v = (bp[:, None] + rng.normal(0, 0.3, (P, Q))).ravel()
        parts = np.repeat(np.arange(P), Q)
        items = np.tile(np.arange(Q), P)
        g = np.zeros(v.size, int)
        _, lo, hi, _ = two_way_bootstrap(v, g, parts, items, 1, n_boot=300, seed=s)
        cover_two.append(lo[0] <= 0 <= hi[0])
        _, lo, hi, _ = two_way_bootstrap(v, g, np.zeros(v.size), items, 1, n_boot=300, seed=s)
        cover_items.append(lo[0] <= 0 <= hi[0])
    print("two-way vs items-only coverage", np.mean(cover_two), np.mean(cover_items))
    assert np.mean(cover_two) >= 0.85
    assert np.mean(cover_items) < 0.5


def test_bradley_terry_recovers_strengths_with_intervals():
    theta = np.array([-0.8, 0.0, 0.8])
    rng = np.random.default_rng(2)
    P, items, studies = 20, 6, 10
    cover, ordered, est, width = [], 0, [], []
    for s in range(studies):
        rows = []
        for p in range(P):
            for it in range(items):
                for a in range(3):
                    for b in range(a + 1, 3):
                        if rng.random() < 0.1:
                            choice = "none"
                        else:
                            pa = 1 / (1 + np.exp(theta[b] - theta[a]))
                            choice = "left" if rng.random() < pa else "right"
                        rows.append(_row(f"p{p}", f"t{it}-{a}{b}", "pairwise", [f"s{a}", f"s{b}"],
                                         ["system", "system"], [str(it)] * 2, {"choice": choice}))
        res = analyze_pairwise(rows, n_boot=80, seed=s)
        by = {d["system"]: d for d in res["scores"]}
        for k in range(3):
            cover.append(by[f"s{k}"]["ci_low"] <= theta[k] <= by[f"s{k}"]["ci_high"])
        est.append([by[f"s{k}"]["bt_score"] for k in range(3)])
        width.append([by[f"s{k}"]["ci_high"] - by[f"s{k}"]["ci_low"] for k in range(3)])
        ordered += [d["system"] for d in res["scores"]] == ["s2", "s1", "s0"]
        t02 = next(t for t in res["tests"] if {t["a"], t["b"]} == {"s0", "s2"})
        assert t02["p_holm"] < 1e-3 and t02["no_preference"] > 0
    # intervals are not needlessly wide: width vs 2·1.96 × the spread of the estimates across studies
    ratio = np.mean(width, 0) / (2 * 1.96 * np.std(est, 0, ddof=1))
    print("BT coverage", np.mean(cover), "width ratio", ratio)
    assert 0.8 <= np.mean(cover) <= 1.0, np.mean(cover)
    assert np.all((ratio > 0.7) & (ratio < 1.7)), ratio
    assert ordered >= 0.9 * studies


def test_hype_error_rate_and_interval():
    fool = {"a": 0.1, "b": 0.3, "c": 0.45}    # P(fake judged real) per system
    real_err = 0.2                             # P(real judged fake)
    truth = {k: 0.5 * (v + real_err) for k, v in fool.items()}
    rng = np.random.default_rng(3)
    cover, ordered, est, width = [], 0, [], []
    for s in range(40):
        rows = []
        dq = rng.uniform(-0.1, 0.1, size=(3, 10))   # some fakes are more convincing than others
        for p in range(15):
            u = rng.uniform(-0.05, 0.05)      # participants differ; the population mean is the truth
            for si, (sys, f) in enumerate(fool.items()):
                for it in range(10):
                    j = "real" if rng.random() < f + u + dq[si, it] else "fake"
                    rows.append(_row(f"p{p}", f"{sys}{it}", "hype", [sys], ["system"], [str(it)], {"judgement": j}))
            for it in range(20):
                j = "fake" if rng.random() < real_err + u else "real"
                rows.append(_row(f"p{p}", f"r{it}", "hype", ["reference"], ["real"], [str(it)], {"judgement": j}))
        res = analyze_hype(rows, n_boot=400, seed=s)
        for d in res["scores"]:
            cover.append(d["ci_low"] <= truth[d["system"]] <= d["ci_high"])
        by = {d["system"]: d for d in res["scores"]}
        est.append([by[k]["hype_inf"] for k in fool])
        width.append([by[k]["ci_high"] - by[k]["ci_low"] for k in fool])
        ordered += [d["system"] for d in res["scores"]] == ["c", "b", "a"]
    ratio = np.mean(width, 0) / (2 * 1.96 * np.std(est, 0, ddof=1))
    print("HYPE coverage", np.mean(cover), "width ratio", ratio)
    assert np.all((ratio > 0.7) & (ratio < 1.7)), ratio
    assert 0.85 <= np.mean(cover) <= 1.0, np.mean(cover)
    assert ordered >= 36


def test_mushra_screening_wilcoxon_and_holm():
    rng = np.random.default_rng(4)
    true = {"A": 75, "B": 55, "C": 55, "anchor": 20}
    rows = []
    for p in range(14):
        bad = p < 2                             # two careless participants
        for it in range(10):
            conds = list(true) + ["hidden"]
            scores = []
            for c in conds:
                base = (100 if not bad or rng.random() < 0.5 else 60) if c == "hidden" else true[c]
                scores.append(int(np.clip(base + rng.normal(0, 8), 0, 100)) if c != "hidden" or bad
                              else int(np.clip(100 - abs(rng.normal(0, 3)), 0, 100)))
            roles = ["system", "system", "system", "anchor", "hidden_reference", "open_reference"]
            srcs = ["A", "B", "C", "anchor", "reference", "reference"]
            rows.append(_row(f"p{p}", f"t{it}", "mushra", srcs, roles, [str(it)] * 6, {"scores": scores},
                             positions=list(range(5))))
    from genlab.apps.rate.analysis import mushra_screen
    excl = mushra_screen(rows)
    assert set(excl) == {"p0", "p1"}
    kept = [r for r in rows if r["participant_id"] not in excl]
    res = analyze_mushra(kept, n_boot=300, seed=0)
    order = [d["condition"] for d in res["scores"]]
    assert order[0] == "hidden reference" and order[1] == "A" and order[-1] == "anchor"
    tests = {frozenset((t["a"], t["b"])): t for t in res["tests"]}
    assert tests[frozenset("AB")]["p_holm"] < 1e-3 and tests[frozenset("AC")]["p_holm"] < 1e-3
    assert tests[frozenset("BC")]["p_holm"] > 0.05
    assert tests[frozenset("AB")]["p_holm"] >= tests[frozenset("AB")]["p"]


def test_analyze_report_from_a_served_test(tmp_path):
    """Participants answer through the service (the server's logic, in process); one fails the traps."""
    d = toy_design(tmp_path / "src", "mos", "image", n_systems=3, n_items=4)
    test = create(d, tmp_path / "test")
    m = load_manifest(test)
    svc = RateService(test)
    rng = np.random.default_rng(5)
    quality = {"sys0": 2.0, "sys1": 3.0, "sys2": 4.2}
    for k in range(12):
        s = svc.new_session(None, "pytest")
        p = svc.participant("Bearer " + s["token"])
        while True:
            nxt = svc.next_trial(p)
            if nxt["done"]:
                break
            t = nxt["trial"]
            meta = m["files"][t["stimuli"][0]["url"].split("/")[-1]]
            if meta["role"] == "trap_broken":
                rating = 5 if k == 0 else 1      # participant 0 rates the broken image 'excellent'
            else:
                rating = int(np.clip(round(quality[meta["source"]] + rng.normal(0, 0.6)), 1, 5))
            svc.answer(p, {"session_id": s["session_id"], "trial_index": t["index"], "trial_id": t["trial_id"],
                           "response": {"rating": rating}, "rt_ms": 2000, "played": None, "client": None}, "pytest")
    svc.store.close()
    res = analyze(test, n_boot=300)
    assert res["participants"] == 12 and res["participants_kept"] == 11
    assert list(res["excluded"].values()) == ["failed 2 attention trial(s)"]
    assert [d["system"] for d in res["scores"]] == ["sys2", "sys1", "sys0"]
    out = tmp_path / "test" / "analysis"
    for f in ("summary.md", "summary.html", "scores.png", "results.json", "responses.csv"):
        assert (out / f).stat().st_size > 0
    raw = list(csv.DictReader(io.StringIO((out / "responses.csv").read_text())))
    assert len(raw) == 12 * m["n_trials"] == res["responses"]
    assert "| sys2 |" in (out / "summary.md").read_text()
    with pytest.raises(FileNotFoundError, match="no responses"):
        analyze(create(d, tmp_path / "empty"))
