"""The harness' markdown: the results table (inferd ÷ each peer) and the check table."""
from common import DISTURBED, NAMES, SETS, SYSTEMS

def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float) and x >= 100:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def table(results, systems):
    by = {(r["system"], r["set"], r["concurrency"]): r for r in results}
    peers = [s for s in ("st", "ort") if s in systems]
    head = "| system | texts | clients | texts/s | p50 ms | p99 ms | peak RSS MB |"
    sep = "|---|---|---|--:|--:|--:|--:|"
    for p in peers:
        head += f" inferd ÷ {'ST' if p == 'st' else 'ORT'} |"
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
                    line += f" {r['texts_per_s'] / base['texts_per_s']:.2f}× |"
                else:
                    line += " |"
            lines.append(line)
    return "\n".join(lines)


def ratios(results):
    by = {(r["system"], r["set"], r["concurrency"]): r for r in results}
    out = []
    for (s, set_, c), r in by.items():
        if s != "inferd":
            continue
        for p in ("st", "ort"):
            b = by.get((p, set_, c))
            if b and b["texts_per_s"] and r["texts_per_s"]:
                out.append(
                    {
                        "set": set_,
                        "concurrency": c,
                        "peer": p,
                        "throughput_ratio": r["texts_per_s"] / b["texts_per_s"],
                        "p50_ratio": b["p50_ms"] / r["p50_ms"] if r["p50_ms"] else None,
                        "rss_ratio": r["peak_rss_mb"] / b["peak_rss_mb"] if b["peak_rss_mb"] else None,
                    }
                )
    return out

