"""The harness' markdown: the results table (inferd ÷ each peer) and the check table."""
from common import BASELINES, DISTURBED, NAMES, SETS, SYSTEMS

def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float) and x >= 100:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def table(results, systems):
    by = {(r["system"], r["set"], r["concurrency"]): r for r in results}
    peers = [s for s in BASELINES if s in systems]
    head = "| system | texts | clients | texts/s | p50 ms | p99 ms | peak RSS MB |"
    sep = "|---|---|---|--:|--:|--:|--:|"
    for p in peers:
        head += f" inferd ÷ {BASELINES[p]} |"
        sep += "--:|"
    lines = [head, sep]
    keys = sorted({(r["set"], r["concurrency"]) for r in results}, key=lambda k: (list(SETS).index(k[0]), k[1]))
    for set_, c in keys:
        for s in SYSTEMS:
            r = by.get((s, set_, c))
            if not r:
                continue
            line = (
                f"| {NAMES[s]} | {set_} | {c} | {fmt(r['texts_per_s'])}"
                f"{' (' + str(r['errors']) + ' errors)' if r.get('errors') else ''}"
                f"{' †' if (r.get('others_cores') or 0) > DISTURBED else ''} | {fmt(r['p50_ms'], 2)} | "
                f"{fmt(r['p99_ms'], 2)} | {fmt(r['peak_rss_mb'], 0)} |"
            )
            for p in peers:
                base = by.get((p, set_, c))
                if s == "inferd" and base and r["texts_per_s"] and base["texts_per_s"]:
                    line += f" {ratio_cell(r, base, p)} |"
                else:
                    line += " |"
            lines.append(line)
    return "\n".join(lines)


def ratio_cell(r, base, peer):
    """`1.23×`, or with several rounds the median per-round ratio and its range."""
    spread = r.get("round_ratios", {}).get(peer)
    if spread and len(spread) > 1:
        return f"{median(spread):.2f}× ({min(spread):.2f}–{max(spread):.2f})"
    return f"{r['texts_per_s'] / base['texts_per_s']:.2f}×"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def combine(rows):
    """Per-round rows to one row per (system, set, clients): median texts/s and latencies,
    largest RSS, and for inferd the per-round ratios to each peer (rounds pair up by number)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["system"], r["set"], r["concurrency"]), []).append(r)
    out = []
    for (s, set_, c), rs in groups.items():
        row = dict(rs[-1])
        for f in ("texts_per_s", "p50_ms", "p99_ms"):
            vals = [r[f] for r in rs if r.get(f) is not None]
            row[f] = median(vals) if vals else None
        row["peak_rss_mb"] = max((r.get("peak_rss_mb") or 0) for r in rs) or None
        row["rounds_texts_per_s"] = [r["texts_per_s"] for r in rs]
        if s == "inferd":
            row["round_ratios"] = {}
            for p in BASELINES:
                peer = {r["round"]: r for r in groups.get((p, set_, c), [])}
                pairs = [
                    r["texts_per_s"] / peer[r["round"]]["texts_per_s"]
                    for r in rs
                    if r["round"] in peer and r["texts_per_s"] and peer[r["round"]]["texts_per_s"]
                ]
                if pairs:
                    row["round_ratios"][p] = pairs
        out.append(row)
    return out


def ratios(results):
    by = {(r["system"], r["set"], r["concurrency"]): r for r in results}
    out = []
    for (s, set_, c), r in by.items():
        if s != "inferd":
            continue
        for p in BASELINES:
            b = by.get((p, set_, c))
            if b and b["texts_per_s"] and r["texts_per_s"]:
                out.append(
                    {
                        "set": set_,
                        "concurrency": c,
                        "peer": p,
                        "throughput_ratio": median(r["round_ratios"][p])
                        if r.get("round_ratios", {}).get(p)
                        else r["texts_per_s"] / b["texts_per_s"],
                        "p50_ratio": b["p50_ms"] / r["p50_ms"] if r["p50_ms"] else None,
                        "rss_ratio": r["peak_rss_mb"] / b["peak_rss_mb"] if b["peak_rss_mb"] else None,
                    }
                )
    return out

