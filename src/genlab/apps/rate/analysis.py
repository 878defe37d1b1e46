"""``genlab rate analyze TEST_DIR``: scores with 95 % intervals, tests, exclusions, plots, reports.

- MOS (ITU-T P.800 ACR): the mean opinion score per system; its 95 % interval is a bootstrap over
  participants *and* items (each replicate draws both with replacement and weights every rating by
  the product of the draw counts, as in CROWDMOS, Ribeiro et al., 2011), with the percentile
  interval rescaled to the crossed random-effects variance (:func:`corrected_interval`): the plain
  product bootstrap counts the residual variance three times and over-covers.
- MUSHRA (ITU-R BS.1534-3 §9.3 post-screening): an assessor is excluded when they rate the hidden
  reference below 90 for more than 15 % of the items; per-condition means with the same bootstrap;
  Wilcoxon signed-rank tests between systems on paired (participant, item) scores, Holm-corrected.
- Pairwise preference: Bradley–Terry strengths, P(i beats j) = e^{θ_i} / (e^{θ_i} + e^{θ_j})
  (Bradley & Terry, 1952), fitted with ``choix.ilsr_pairwise`` (Maystre & Grossglauser, 2015),
  centred to mean 0, with bootstrap intervals; two-sided exact binomial tests per pair ("no
  preference" answers are counted and left out of the tests), Holm-corrected.
- HYPE∞ (Zhou et al., 2019): the error rate of humans telling real from generated on a 50/50
  mix, here per system the balanced error ½·(P(fake judged real) + P(real judged fake)), with a
  bootstrap interval over participants and items; 50 % means indistinguishable from real.
Participants who fail more than ``max_trap_failures`` attention (trap) trials are excluded first.
"""
from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .create import load_manifest
from .server import DEFAULT_DB
from .storage import export_rows, open_storage, rows_to_csv


# ----------------------------------------------------------------------------- statistics
def holm(pvalues: list[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values: p_(i) ↦ max_{j≤i} min(1, (m − j + 1) p_(j))."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def _weights(rng, n: int, n_boot: int, active: bool) -> np.ndarray:
    if not active or n <= 1:
        return np.ones((n_boot, n))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)


def corrected_interval(point, reps: dict[str, np.ndarray], level: float = 0.95):
    """Percentile interval of the two-way (participants × items) bootstrap, rescaled to the
    variance of the crossed random-effects model.

    Under y_pq = μ + a_p + b_q + e_pq the mean has Var = σ_a²/P + σ_b²/Q + σ_e²/(PQ). Resampling
    participants only gives V_P ≈ σ_a²/P + σ_e²/(PQ), items only V_Q ≈ σ_b²/Q + σ_e²/(PQ), both at
    once (product weights, Owen 2007, "The pigeonhole bootstrap") V_PQ ≈ σ_a²/P + σ_b²/Q + 3σ_e²/(PQ),
    which over-covers when the residual dominates. So V = 2(V_P + V_Q) − V_PQ (clipped to
    [max(V_P, V_Q), V_PQ]) is unbiased, and the V_PQ percentile interval is scaled about the
    estimate by sqrt(V / V_PQ).
    """
    a = (1 - level) / 2
    point = np.asarray(point, float)
    vp, vq, vpq = (np.nanvar(reps[k], axis=0, ddof=1) for k in ("p", "q", "pq"))
    v = np.clip(2 * (vp + vq) - vpq, np.maximum(vp, vq), vpq)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(vpq > 0, np.sqrt(v / vpq), 1.0)
    qlo = np.nanquantile(reps["pq"], a, axis=0)
    qhi = np.nanquantile(reps["pq"], 1 - a, axis=0)
    return point - k * (point - qlo), point + k * (qhi - point)


def two_way_bootstrap(values: np.ndarray, groups: np.ndarray, participants: np.ndarray, items: np.ndarray,
                      n_groups: int, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """Per-group mean of ``values`` and its bootstrap interval over participants and items.

    Replicate b draws participant counts w_p ~ Multinomial(P, 1/P) and item counts
    w_q ~ Multinomial(Q, 1/Q); the replicate mean of group g is Σ w_p w_q v / Σ w_p w_q over that
    group's observations. Three sets of replicates (participants only, items only, both) give the
    variance-corrected interval of :func:`corrected_interval`.
    Returns (means, lo, hi, reps) with reps[mode] shaped (n_boot, n_groups), mode in p | q | pq.
    """
    values = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    pu, p_idx = np.unique(participants, return_inverse=True)
    qu, q_idx = np.unique(items, return_inverse=True)
    P, Q = len(pu), len(qu)
    onehot = np.zeros((len(values), n_groups))
    onehot[np.arange(len(values)), groups] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (values @ onehot) / onehot.sum(0)
    reps = {}
    chunk = max(1, int(2e7 // max(len(values), 1)))
    for mode in ("p", "q", "pq"):
        wp = _weights(rng, P, n_boot, "p" in mode)
        wq = _weights(rng, Q, n_boot, "q" in mode)
        boots = np.empty((n_boot, n_groups))
        for s in range(0, n_boot, chunk):
            w = wp[s:s + chunk, p_idx] * wq[s:s + chunk, q_idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                boots[s:s + chunk] = ((w * values) @ onehot) / (w @ onehot)
        reps[mode] = boots
    lo, hi = corrected_interval(means, reps, level)
    return means, lo, hi, reps


def bradley_terry(wins: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """Bradley–Terry log-strengths θ (mean 0) from a win-count matrix (``wins[i, j]`` = times i beat j)
    via choix's I-LSR; the small ``alpha`` (choix's regularisation) keeps a system that never loses
    finite."""
    import choix
    if wins.sum() == 0:
        return np.zeros(len(wins))
    theta = choix.ilsr_pairwise_dense(np.asarray(wins, float), alpha=alpha, max_iter=1000)
    return theta - theta.mean()


def _item_key(r: dict[str, Any]) -> str:
    return str(r["base_trial"])


# ----------------------------------------------------------------------------- exclusions
def trap_failures(rows: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, int]:
    """Failed attention trials per participant (rating > 2 for a broken stimulus, preferring it,
    or calling it real)."""
    traps = {t["id"]: t for t in manifest.get("traps", [])}
    fails: dict[str, int] = defaultdict(int)
    for r in rows:
        if not r["trap"]:
            continue
        t = traps[r["base_trial"]]
        e, resp = t["expect"], r["response"]
        ok = True
        if "rating_max" in e:
            ok = resp["rating"] <= e["rating_max"]
        elif "choice_of" in e:
            slot = {"left": 0, "right": 1}.get(resp["choice"])
            ok = slot is not None and r["positions"][slot] == e["choice_of"]
        elif "judgement" in e:
            ok = resp["judgement"] == e["judgement"]
        fails[r["participant_id"]] += 0 if ok else 1
    return dict(fails)


def mushra_screen(rows: list[dict[str, Any]], threshold: float = 90.0, max_fraction: float = 0.15):
    """BS.1534-3 post-screening: participants rating the hidden reference below ``threshold`` for more
    than ``max_fraction`` of their items. Returns {participant: fraction below}."""
    below: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if r["kind"] != "mushra" or r["trap"]:
            continue
        for slot, role in enumerate(r["roles"][:len(r["response"]["scores"])]):
            if role == "hidden_reference":
                below[r["participant_id"]].append(r["response"]["scores"][slot] < threshold)
    return {p: float(np.mean(v)) for p, v in below.items() if np.mean(v) > max_fraction}


# ----------------------------------------------------------------------------- per test type
def analyze_mos(rows, n_boot, seed):
    names = sorted({r["sources"][0] for r in rows})
    g = {n: i for i, n in enumerate(names)}
    vals = np.array([r["response"]["rating"] for r in rows], float)
    grp = np.array([g[r["sources"][0]] for r in rows])
    parts = np.array([r["participant_id"] for r in rows])
    items = np.array([f"{r['sources'][0]}|{r['items'][0]}" for r in rows])
    m, lo, hi, _ = two_way_bootstrap(vals, grp, parts, items, len(names), n_boot, seed)
    counts = np.bincount(grp, minlength=len(names))
    table = [{"system": n, "mos": float(m[i]), "ci_low": float(lo[i]), "ci_high": float(hi[i]),
              "n": int(counts[i])} for i, n in enumerate(names)]
    table.sort(key=lambda d: -d["mos"])
    return {"scores": table, "score_name": "MOS (1–5)"}


def analyze_mushra(rows, n_boot, seed):
    from scipy.stats import wilcoxon
    obs = []   # (participant, item, condition, score)
    for r in rows:
        for slot, score in enumerate(r["response"]["scores"]):
            role, src = r["roles"][slot], r["sources"][slot]
            cond = "hidden reference" if role == "hidden_reference" else src
            obs.append((r["participant_id"], _item_key(r), cond, score, role))
    conds = sorted({o[2] for o in obs})
    g = {c: i for i, c in enumerate(conds)}
    vals = np.array([o[3] for o in obs], float)
    grp = np.array([g[o[2]] for o in obs])
    parts = np.array([o[0] for o in obs])
    items = np.array([o[1] for o in obs])
    m, lo, hi, _ = two_way_bootstrap(vals, grp, parts, items, len(conds), n_boot, seed)
    role_of = {o[2]: o[4] for o in obs}
    table = [{"condition": c, "role": role_of[c], "mean": float(m[i]), "ci_low": float(lo[i]),
              "ci_high": float(hi[i]), "n": int((grp == i).sum())} for i, c in enumerate(conds)]
    table.sort(key=lambda d: -d["mean"])
    systems = sorted(c for c in conds if role_of[c] == "system")
    paired = defaultdict(dict)
    for p, it, c, s, _ in obs:
        paired[(p, it)][c] = s
    tests = []
    for i in range(len(systems)):
        for j in range(i + 1, len(systems)):
            a, b = systems[i], systems[j]
            x = np.array([[d[a], d[b]] for d in paired.values() if a in d and b in d], float)
            if len(x) == 0 or np.all(x[:, 0] == x[:, 1]):
                p = 1.0
                stat = 0.0
            else:
                res = wilcoxon(x[:, 0], x[:, 1], zero_method="wilcox", alternative="two-sided")
                p, stat = float(res.pvalue), float(res.statistic)
            tests.append({"a": a, "b": b, "n_pairs": int(len(x)), "median_diff": float(np.median(x[:, 0] - x[:, 1]))
                          if len(x) else 0.0, "statistic": stat, "p": p})
    for t, ph in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = ph
    return {"scores": table, "tests": tests, "score_name": "MUSHRA score (0–100)"}


def analyze_pairwise(rows, n_boot, seed):
    from scipy.stats import binomtest
    names = sorted({s for r in rows for s in r["sources"][:2]})
    g = {n: i for i, n in enumerate(names)}
    comps = []   # (participant, item, winner or -1, a, b)
    for r in rows:
        a, b = g[r["sources"][0]], g[r["sources"][1]]
        c = r["response"]["choice"]
        w = {"left": a, "right": b}.get(c, -1)
        comps.append((r["participant_id"], _item_key(r), w, a, b))
    rng = np.random.default_rng(seed)
    pu = sorted({c[0] for c in comps})
    qu = sorted({c[1] for c in comps})
    pi = {p: i for i, p in enumerate(pu)}
    qi = {q: i for i, q in enumerate(qu)}
    arr = np.array([(pi[c[0]], qi[c[1]], c[2], c[3], c[4]) for c in comps], int)
    dec = arr[arr[:, 2] >= 0]
    winner = dec[:, 2]
    loser = np.where(dec[:, 2] == dec[:, 3], dec[:, 4], dec[:, 3])
    S = len(names)

    def matrix(weight):
        m = np.zeros((S, S))
        np.add.at(m, (winner, loser), weight)
        return m

    W = matrix(np.ones(len(dec)))
    theta = bradley_terry(W)
    # bootstrap over participants and items: each decided comparison weighted by its draw counts
    B = min(n_boot, 1000)
    reps = {}
    for mode in ("p", "q", "pq"):
        wp = _weights(rng, len(pu), B, "p" in mode)
        wq = _weights(rng, len(qu), B, "q" in mode)
        reps[mode] = np.stack([bradley_terry(matrix(wp[k, dec[:, 0]] * wq[k, dec[:, 1]])) for k in range(B)])
    lo, hi = corrected_interval(theta, reps)
    table = [{"system": n, "bt_score": float(theta[i]), "ci_low": float(lo[i]), "ci_high": float(hi[i]),
              "wins": int(W[i].sum()),
              "comparisons": int(sum(1 for c in comps if i in (c[3], c[4])))} for i, n in enumerate(names)]
    table.sort(key=lambda d: -d["bt_score"])
    tests = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            sub = [c for c in comps if {c[3], c[4]} == {i, j}]
            wi = sum(1 for c in sub if c[2] == i)
            wj = sum(1 for c in sub if c[2] == j)
            ties = sum(1 for c in sub if c[2] < 0)
            p = float(binomtest(wi, wi + wj, 0.5).pvalue) if wi + wj else 1.0
            tests.append({"a": names[i], "b": names[j], "a_wins": wi, "b_wins": wj, "no_preference": ties,
                          "p": p})
    for t, ph in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = ph
    return {"scores": table, "tests": tests, "score_name": "Bradley–Terry log-strength (mean 0)"}


def analyze_hype(rows, n_boot, seed):
    systems = sorted({r["sources"][0] for r in rows if r["roles"][0] != "real"})
    err = np.array([float((r["response"]["judgement"] == "real") != (r["roles"][0] == "real")) for r in rows])
    parts = np.array([r["participant_id"] for r in rows])
    items = np.array([f"{r['sources'][0]}|{r['items'][0]}" for r in rows])
    names = systems + ["reference"]
    g = {n: i for i, n in enumerate(names)}
    grp = np.array([g[r["sources"][0]] for r in rows])
    m, lo, hi, reps = two_way_bootstrap(err, grp, parts, items, len(names), n_boot, seed)
    table = []
    for i, s in enumerate(systems):
        bal = {k: 0.5 * (r[:, i] + r[:, -1]) for k, r in reps.items()}
        point = 0.5 * (m[i] + m[-1])
        blo, bhi = corrected_interval(np.array([point]), {k: v[:, None] for k, v in bal.items()})
        table.append({"system": s, "hype_inf": float(point), "ci_low": float(blo[0]), "ci_high": float(bhi[0]),
                      "fooled_rate": float(m[i]), "n_fake": int((grp == i).sum())})
    table.sort(key=lambda d: -d["hype_inf"])
    return {"scores": table, "real_error": {"rate": float(m[-1]), "ci_low": float(lo[-1]),
                                            "ci_high": float(hi[-1]), "n_real": int((grp == len(names) - 1).sum())},
            "score_name": "HYPE∞ error rate (50 % = indistinguishable)"}


ANALYZERS = {"mos": analyze_mos, "mushra": analyze_mushra, "pairwise": analyze_pairwise, "hype": analyze_hype}


# ----------------------------------------------------------------------------- entry point
def analyze_rows(rows: list[dict[str, Any]], manifest: dict[str, Any], n_boot: int = 2000, seed: int = 0):
    """Exclusions then the test type's analysis, on export rows (see :func:`storage.export_rows`)."""
    design = manifest["design"]
    excluded: dict[str, str] = {}
    for p, k in trap_failures(rows, manifest).items():
        if k > design.get("max_trap_failures", 0):
            excluded[p] = f"failed {k} attention trial(s)"
    if design["type"] == "mushra":
        for p, f in mushra_screen(rows, design.get("mushra_hidden_ref_threshold", 90.0),
                                  design.get("mushra_max_fraction_below", 0.15)).items():
            excluded.setdefault(p, f"rated the hidden reference below "
                                   f"{design.get('mushra_hidden_ref_threshold', 90):g} on {f:.0%} of items")
    all_parts = sorted({r["participant_id"] for r in rows})
    kept = [r for r in rows if not r["trap"] and r["participant_id"] not in excluded]
    res: dict[str, Any] = {"test": design["name"], "type": design["type"], "modality": design["modality"],
                           "participants": len(all_parts), "excluded": excluded,
                           "participants_kept": len(all_parts) - len(excluded), "responses": len(rows),
                           "responses_analysed": len(kept), "n_boot": n_boot, "seed": seed}
    if kept:
        res.update(ANALYZERS[design["type"]](kept, n_boot, seed))
    else:
        res["scores"] = []
    return res


def _fmt(x, d=2):
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{d}f}"


def _tables(res: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    t = res["type"]
    out = []
    sc = res.get("scores", [])
    if t == "mos":
        out.append(("Mean opinion score (95 % bootstrap CI over participants and items)",
                    ["system", "MOS", "95 % CI", "ratings"],
                    [[d["system"], _fmt(d["mos"]), f"[{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]", str(d["n"])]
                     for d in sc]))
    elif t == "mushra":
        out.append(("MUSHRA scores (95 % bootstrap CI)", ["condition", "role", "mean", "95 % CI", "scores"],
                    [[d["condition"], d["role"], _fmt(d["mean"], 1), f"[{_fmt(d['ci_low'], 1)}, {_fmt(d['ci_high'], 1)}]",
                      str(d["n"])] for d in sc]))
        out.append(("Wilcoxon signed-rank tests between systems (Holm-corrected)",
                    ["A", "B", "pairs", "median A−B", "p", "p (Holm)"],
                    [[x["a"], x["b"], str(x["n_pairs"]), _fmt(x["median_diff"], 1), f"{x['p']:.3g}",
                      f"{x['p_holm']:.3g}"] for x in res.get("tests", [])]))
    elif t == "pairwise":
        out.append(("Bradley–Terry scores (log-strength, mean 0; 95 % bootstrap CI)",
                    ["system", "score", "95 % CI", "wins", "comparisons"],
                    [[d["system"], _fmt(d["bt_score"]), f"[{_fmt(d['ci_low'])}, {_fmt(d['ci_high'])}]",
                      str(d["wins"]), str(d["comparisons"])] for d in sc]))
        out.append(("Binomial tests per pair (no-preference answers left out; Holm-corrected)",
                    ["A", "B", "A wins", "B wins", "no preference", "p", "p (Holm)"],
                    [[x["a"], x["b"], str(x["a_wins"]), str(x["b_wins"]), str(x["no_preference"]),
                      f"{x['p']:.3g}", f"{x['p_holm']:.3g}"] for x in res.get("tests", [])]))
    else:
        out.append(("HYPE∞ error rate (balanced real/fake; 95 % bootstrap CI)",
                    ["system", "HYPE∞", "95 % CI", "fakes judged real", "fake trials"],
                    [[d["system"], f"{100 * d['hype_inf']:.1f} %",
                      f"[{100 * d['ci_low']:.1f}, {100 * d['ci_high']:.1f}] %", f"{100 * d['fooled_rate']:.1f} %",
                      str(d["n_fake"])] for d in sc]))
        if "real_error" in res:
            re_ = res["real_error"]
            out.append(("Real images judged fake", ["rate", "95 % CI", "real trials"],
                        [[f"{100 * re_['rate']:.1f} %", f"[{100 * re_['ci_low']:.1f}, {100 * re_['ci_high']:.1f}] %",
                          str(re_["n_real"])]]))
    return out


def summary_markdown(res: dict[str, Any]) -> str:
    lines = [f"# Subjective evaluation: {res['test']} ({res['type']}, {res['modality']})", "",
             f"- participants: {res['participants']} (kept {res['participants_kept']}, "
             f"excluded {len(res['excluded'])})",
             f"- responses: {res['responses']} stored, {res['responses_analysed']} analysed "
             f"(attention trials and excluded participants left out)",
             f"- intervals: percentile bootstrap, {res['n_boot']} replicates, seed {res['seed']}", ""]
    for title, head, body in _tables(res):
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        lines.append("")
    lines.append("## Exclusions")
    lines.append("")
    if res["excluded"]:
        lines += [f"- `{p}`: {why}" for p, why in sorted(res["excluded"].items())]
    else:
        lines.append("none")
    lines.append("")
    return "\n".join(lines)


def summary_html(res: dict[str, Any], plot: str | None) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>{e(res['test'])}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem}</style>",
             f"<h1>Subjective evaluation: {e(res['test'])} ({e(res['type'])}, {e(res['modality'])})</h1>",
             f"<p>{res['participants']} participants (kept {res['participants_kept']}), "
             f"{res['responses_analysed']} of {res['responses']} responses analysed.</p>"]
    if plot:
        parts.append(f"<p><img src='{e(plot)}' alt='scores with 95% intervals' style='max-width:100%'></p>")
    for title, head, body in _tables(res):
        parts.append(f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body]
        parts.append("</table>")
    parts.append("<h2>Exclusions</h2><ul>" + "".join(f"<li><code>{e(p)}</code>: {e(w)}</li>"
                                                    for p, w in sorted(res["excluded"].items())) + "</ul>")
    return "\n".join(parts)


def plot_scores(res: dict[str, Any], path: Path) -> bool:
    sc = res.get("scores", [])
    if not sc:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    key = {"mos": "mos", "mushra": "mean", "pairwise": "bt_score", "hype": "hype_inf"}[res["type"]]
    label = [d.get("system", d.get("condition")) for d in sc]
    v = np.array([d[key] for d in sc])
    lo = np.array([d["ci_low"] for d in sc])
    hi = np.array([d["ci_high"] for d in sc])
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(sc), 3.2), dpi=100)
    ax.bar(range(len(sc)), v, color="#4a7fb5")
    ax.errorbar(range(len(sc)), v, yerr=[v - lo, hi - v], fmt="none", ecolor="k", capsize=4)
    ax.set_xticks(range(len(sc)), label, rotation=20)
    ax.set_ylabel(res["score_name"])
    if res["type"] == "hype":
        ax.axhline(0.5, ls="--", c="gray")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def analyze(test_dir: str | Path, out: str | Path | None = None, db: str | None = None, n_boot: int = 2000,
            seed: int = 0) -> dict[str, Any]:
    """Analyse a test folder's responses; writes summary.md, summary.html, scores.png,
    results.json and responses.csv (raw responses) into ``out`` (default TEST_DIR/analysis)."""
    test_dir = Path(test_dir)
    manifest = load_manifest(test_dir)
    target = db or str(test_dir / DEFAULT_DB)
    if db is None and not Path(target).exists():
        raise FileNotFoundError(f"no responses yet: {target} does not exist (serve the test first)")
    store = open_storage(target)
    try:
        rows = export_rows(store, manifest["files"])
    finally:
        store.close()
    res = analyze_rows(rows, manifest, n_boot=n_boot, seed=seed)
    out = Path(out) if out else test_dir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    (out / "responses.csv").write_text(rows_to_csv(rows))
    has_plot = plot_scores(res, out / "scores.png")
    md = summary_markdown(res)
    (out / "summary.md").write_text(md + ("\n![scores](scores.png)\n" if has_plot else ""))
    (out / "summary.html").write_text(summary_html(res, "scores.png" if has_plot else None))
    (out / "results.json").write_text(json.dumps(res, indent=1))
    res["summary_markdown"] = md
    res["out"] = str(out)
    return res
