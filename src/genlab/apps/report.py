"""Benchmark report: a Markdown file and a self-contained HTML file (leaderboard, protocol,
sample grids and training curves embedded as base64 PNGs; no external resources)."""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path


#: leaderboard columns: (header, summary key, lower is better?)
COLUMNS = [
    ("NLL", "nll", True), ("bits/dim", "nll.bits_per_dim", True), ("KL gap", "kl_gap", True),
    ("MMD²", "mmd", True), ("energy", "energy", True), ("W1", "wasserstein", True),
    ("FD", "fd", True), ("KID", "kid", True), ("precision", "prdc.precision", False),
    ("recall", "prdc.recall", False), ("density", "prdc.density", False), ("coverage", "prdc.coverage", False),
    ("modes", "mode_coverage.modes_captured", False), ("HQ %", "mode_coverage.high_quality_pct", False),
    ("rev. KL", "mode_coverage.reverse_kl", True), ("C2ST acc", "c2st.accuracy", None),
    ("class. score", "classifier_score.score", False),
]


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def leaderboard(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per trained family) with the columns any result has."""
    from ..evaluation import summary
    flat = [summary(r["record"]) if "record" in r else {} for r in results]
    cols = [(h, k, lo) for h, k, lo in COLUMNS if any(k in f for f in flat)]
    header = ["family", "dataset", "log_prob"] + [h for h, _, _ in cols] + ["steps", "params", "train s"]
    rows = []
    for r, f in zip(results, flat):
        if "error" in r:
            rows.append([r["family"], r["dataset"], "–"] + ["–"] * len(cols) + [str(r["steps"]), "–",
                                                                                "failed: " + r["error"][:80]])
            continue
        kind = r["record"]["protocol"]["likelihood"].get("kind", "?")
        rows.append([r["family"], r["dataset"], kind] + [_fmt(f.get(k)) for _, k, _ in cols]
                    + [str(r["steps"]) + (f" (best {r['best_step']})" if r.get("best_step") else ""),
                       f"{r.get('num_parameters', 0):,}", f"{r.get('train_seconds', 0):.0f}"])
    return header, rows


def _png_b64(path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def curves_png(results: list[dict]) -> bytes | None:
    """Training loss against step for every family (one panel per dataset)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    by_ds: dict[str, list[dict]] = {}
    for r in results:
        if r.get("history"):
            by_ds.setdefault(r["dataset"], []).append(r)
    if not by_ds:
        return None
    fig = Figure(figsize=(5 * len(by_ds), 3.5))
    FigureCanvasAgg(fig)
    for i, (ds, rs) in enumerate(sorted(by_ds.items())):
        ax = fig.add_subplot(1, len(by_ds), i + 1)
        for r in rs:
            pts = [(h["step"], h["loss"]) for h in r["history"] if "step" in h and "loss" in h]
            if pts:
                ax.plot(*zip(*pts), marker='.' if len(pts) < 20 else None, label=f"{r['family']} ({r.get('likelihood', '?')})")
        ax.set_title(f"training loss on {ds}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (family's own objective)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _protocol_lines(results, meta) -> list[str]:
    rec = next((r["record"] for r in results if "record" in r), None)
    lines = [f"suite `{meta.get('suite')}`: {meta.get('description', '')}",
             f"training: {meta.get('train')}, seed {meta.get('seed')}, steps per family as listed"
             + ("; single-phase families export the weights with the lowest validation loss (evaluated every "
                "steps/20; the step is listed as 'best')" if meta.get("keep_best") else ""),
             f"metrics: {meta.get('metrics') or 'gl.evaluate defaults for the data'}"]
    if rec:
        p = rec["protocol"]
        lines += [f"evaluation: {p['dataset']}/{p['split']}, n_data={p['n_data']}, n_samples={p['n_samples']}, "
                  f"seed={p['seed']}, features={p['features'].get('name')}"
                  + (f" (sha256 {p['features']['sha256'][:16]}…)" if p["features"].get("sha256") else ""),
                  f"genlab {p['genlab_version']}, torch {p['torch_version']}, date {p['date']}"]
    lines.append("NLL/KL gap are nats per example; a `bound` is an upper bound on the NLL and an `estimate` is "
                 "stochastic; lower is better for distances, higher for precision/recall/density/coverage/modes.")
    return lines


def write_report(results: list[dict], out, meta: dict | None = None) -> Path:
    """Write ``out/report.md`` and ``out/report.html``; returns the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = meta or {}
    header, rows = leaderboard(results)
    title = f"genlab bench: {meta.get('suite', '?')}"
    prot = _protocol_lines(results, meta)
    curves = curves_png(results)
    if curves:
        (out / "curves.png").write_bytes(curves)

    md = [f"# {title}", "", *[f"- {p}" for p in prot], "", "## Leaderboard", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    notes = [(r["family"], n) for r in results for n in r.get("record", {}).get("notes", [])]
    if notes:
        md += ["", "## Notes", ""] + [f"- {f}: {n}" for f, n in notes]
    md += ["", "## Samples", ""]
    for r in results:
        if r.get("samples_png"):
            md.append(f"![{r['family']} on {r['dataset']}]({Path(r['samples_png']).relative_to(out)})")
    if curves:
        md += ["", "## Training curves", "", "![training curves](curves.png)"]
    (out / "report.md").write_text("\n".join(md) + "\n")

    e = html.escape
    h = ["<!doctype html><html><head><meta charset='utf-8'><title>" + e(title) + "</title><style>",
         "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
         "td:first-child,th:first-child,td:nth-child(2),td:nth-child(3){text-align:left}"
         ".grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0}figcaption{font-size:12px}",
         "</style></head><body>", f"<h1>{e(title)}</h1><ul>"]
    h += [f"<li>{e(p)}</li>" for p in prot]
    h += ["</ul><h2>Leaderboard</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in header) + "</tr>"]
    h += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
    h.append("</table>")
    if notes:
        h += ["<h2>Notes</h2><ul>"] + [f"<li>{e(f)}: {e(n)}</li>" for f, n in notes] + ["</ul>"]
    h.append("<h2>Samples</h2><div class='grid'>")
    for r in results:
        if r.get("samples_png"):
            h.append(f"<figure><img width='300' src='data:image/png;base64,{_png_b64(r['samples_png'])}'>"
                     f"<figcaption>{e(r['family'])} on {e(r['dataset'])}</figcaption></figure>")
    h.append("</div>")
    if curves:
        h.append("<h2>Training curves</h2><img src='data:image/png;base64," + base64.b64encode(curves).decode() + "'>")
    h.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(h))
    return path


__all__ = ["write_report", "leaderboard", "curves_png", "COLUMNS"]
