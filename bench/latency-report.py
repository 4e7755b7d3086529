"""Turns bench/latency's results into results.md and plot.svg, in its
output folder.

    latency-report.py DIR

DIR holds runs.json (bench/interleave.py, each command tagged with tool,
rtt, n and paths), requests.tsv, notes.txt and meta.tsv. Medians throughout,
with the interquartile range. Standard library only.
"""

import html
import json
import math
import sys
from pathlib import Path

TOOLS = [
    ("with-secrets-cold", "with-secrets, cold"),
    ("with-secrets-cached", "with-secrets, cached"),
    ("secretspec", "secretspec"),
    ("fnox", "fnox"),
    ("curl", "curl, one path (reference)"),
]
COLORS = {
    "with-secrets-cold": "#d62728",
    "with-secrets-cached": "#e377c2",
    "secretspec": "#9467bd",
    "fnox": "#ff7f0e",
    "curl": "#1f77b4",
}


# The floor's (median, q1, q3), `env A=x true`, when the run had one.
FLOOR = []


def ms(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def load(d):
    times = {}  # (tool, rtt, n, paths) -> (median, q1, q3, runs) in ms
    failed = []
    for r in json.loads((d / "runs.json").read_text())["results"]:
        t = r["tags"]
        if r.get("failures") or r.get("skipped"):
            failed.append(r)
        if "median" in r and not r.get("skipped"):
            if t["tool"] == "floor":
                FLOOR.append((r["median"] * 1e3, r["q1"] * 1e3, r["q3"] * 1e3))
                continue
            times[(t["tool"], t["rtt"], t["n"], t["paths"])] = (
                r["median"] * 1e3, r["q1"] * 1e3, r["q3"] * 1e3, len(r["times"]))
    requests = {}
    path = d / "requests.tsv"
    if path.exists():
        for line in path.read_text().splitlines()[1:]:
            tool, rtt, n, paths, count = line.split("\t")
            requests.setdefault((tool, int(n), int(paths)), {})[int(rtt)] = count
    return times, failed, requests


def read_kv(path):
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            k, _, v = line.partition("\t")
            out[k] = v
    return out


def report(d, times, failed, requests):
    meta = read_kv(d / "meta.tsv")
    notes = [n for n in (d / "notes.txt").read_text().splitlines() if n] if (d / "notes.txt").exists() else []
    for r in failed:
        signals = ", ".join(f"{k} {v}×" for k, v in (r.get("signals") or {}).items())
        if r.get("skipped"):
            notes.append(f"{r['command']}: dropped, {r['skipped']}")
        else:
            notes.append(f"{r['command']}: {r['failures']} of {r['runs']} runs failed"
                         f"{f' ({signals})' if signals else ''}, left out of its figures; the last: {r['last_error']}")
    tools = [(k, label) for k, label in TOOLS if any(key[0] == k for key in times)]
    rtts = sorted({key[1] for key in times})
    cases = sorted({(key[2], key[3]) for key in times})
    md = ["# with-secrets against OpenBao at a network's latency", ""]
    md.append("Wall time in ms of one run of `-- true` with N entries over P paths, against "
              "`bao server -dev-tls` behind the round-trip time in the first column: the median, and "
              f"in brackets the interquartile range; {meta.get('runs', '?')}. "
              "The ratios are each peer's median over with-secrets's cold median.")
    md.append("")
    head = ["RTT", "N / paths"] + [label for _, label in tools]
    peers = [k for k, _ in tools if k in ("secretspec", "fnox")]
    head += [f"{k} / cold" for k in peers]
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "---|" * 2 + "---:|" * (len(head) - 2))
    for rtt in rtts:
        for n, paths in cases:
            row = [f"{rtt} ms", f"{n} / {paths}"]
            for k, _ in tools:
                f = times.get((k, rtt, n, paths))
                row.append(f"{ms(f[0])} ({ms(f[1])}–{ms(f[2])})" if f else "—")
            cold = times.get(("with-secrets-cold", rtt, n, paths))
            for k in peers:
                f = times.get((k, rtt, n, paths))
                row.append(f"{f[0] / cold[0]:.1f}×" if f and cold else "—")
            md.append("| " + " | ".join(row) + " |")
    md.append("")
    if requests:
        md += ["Requests per run, from the server's audit log (the cached row: the run after the "
               "one that filled the cache, at each delay):", ""]
        head = ["N / paths"] + [label for k, label in tools if any(key[0] == k for key in requests)]
        md.append("| " + " | ".join(head) + " |")
        md.append("|---|" + "---:|" * (len(head) - 1))
        for n, paths in cases:
            row = [f"{n} / {paths}"]
            for k, _ in tools:
                if not any(key[0] == k for key in requests):
                    continue
                counts = requests.get((k, n, paths), {})
                values = sorted(set(counts.values()))
                row.append(" / ".join(values) if values else "—")
            md.append("| " + " | ".join(row) + " |")
        md.append("")
    # The targets.
    lines = []
    top = max(rtts)
    big = max(cases) if cases else None
    if big:
        n, paths = big
        bound = 3 * top + 10
        f = times.get(("with-secrets-cold", top, n, paths))
        if f:
            lines.append(f"| cold, {top} ms RTT, N={n} over {paths} paths ≤ TCP connect + TLS 1.3 + one round "
                         f"of requests (3 RTT) + 10 ms = {bound} ms | {ms(f[0])} ms | "
                         f"{'met' if f[0] <= bound else '**not met**'} |")
        c = times.get(("curl", top, n, paths))
        if f and c:
            lines.append(f"| (reference) cold over curl reading one path through the same delay, {top} ms, "
                         f"N={n}/{paths} | {ms(f[0])} against {ms(c[0])} ms: {f[0] - c[0]:+.1f} ms | — |")
    cached = [(key, f) for key, f in times.items() if key[0] == "with-secrets-cached"]
    if cached:
        worst_key, worst = max(cached, key=lambda kf: kf[1][0])
        lines.append(f"| cached ≤ 3 ms at every N and RTT | at most {ms(worst[0])} ms (median; {worst_key[1]} ms, "
                     f"N={worst_key[2]}/{worst_key[3]}) | {'met' if worst[0] <= 3 else '**not met**'} |")
    else:
        lines.append("| cached ≤ 3 ms at every N and RTT | not measured | — |")
    if FLOOR:
        f = FLOOR[0]
        lines.append(f"| (reference) the floor, `env A=x true`: two execs, as a cached run is with-secrets "
                     f"then `true` | {ms(f[0])} ms ({ms(f[1])}–{ms(f[2])}) | — |")
    md += ["| target (issue 23) | measured | |", "|---|---|---|"] + lines + [""]
    if notes:
        md += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    if meta:
        md += ["| run | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in meta.items()] + [""]
    return "\n".join(md)


def plot(times):
    """Time against RTT at N=50 over 5 paths (solid) and N=1 (dashed), log scale."""
    cases = sorted({(key[2], key[3]) for key in times})
    if not cases:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    big, small = max(cases), min(cases)
    rtts = sorted({key[1] for key in times})
    width, height = 940, 520
    left, right, top, bottom = 70, 320, 40, 60
    pw, ph = width - left - right, height - top - bottom
    values = [f[0] for key, f in times.items() if (key[2], key[3]) in (big, small) and f[0] > 0]
    nice = [m * 10.0 ** k for k in range(-3, 7) for m in (1, 2, 5)]
    lo = max(v for v in nice if v <= min(values))
    hi = min(v for v in nice if v >= max(values + [3 * max(rtts) + 10]))
    xmax = max(rtts) or 1

    def x(r):
        return left + r / xmax * pw

    def y(v):
        return top + ph - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    s = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
         f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='12'>",
         f"<rect width='{width}' height='{height}' fill='white'/>",
         f"<text x='{left}' y='22' font-size='15' font-weight='bold'>Time to run `true` with secrets from "
         f"OpenBao over TLS, against the round-trip time (median)</text>"]
    for v in nice:
        if lo * 0.9999 <= v <= hi * 1.0001:
            m = round(v / 10 ** math.floor(math.log10(v) + 1e-9))
            s.append(f"<line x1='{left}' y1='{y(v):.1f}' x2='{left + pw}' y2='{y(v):.1f}' "
                     f"stroke='#{'ccc' if m == 1 else 'eee'}'/>")
            s.append(f"<text x='{left - 6}' y='{y(v) + 4:.1f}' text-anchor='end'>{v:g}</text>")
    for r in rtts:
        s.append(f"<line x1='{x(r):.1f}' y1='{top}' x2='{x(r):.1f}' y2='{top + ph}' stroke='#eee'/>")
        s.append(f"<text x='{x(r):.1f}' y='{top + ph + 18}' text-anchor='middle'>{r}</text>")
    s.append(f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#444'/>")
    s.append(f"<text x='{left + pw / 2}' y='{height - 18}' text-anchor='middle'>round-trip time, ms</text>")
    s.append(f"<text transform='translate(18 {top + ph / 2}) rotate(-90)' text-anchor='middle'>"
             "ms per run (log scale)</text>")
    legend_y = top + 10
    lx = left + pw + 16
    # The targets: 3 RTT + 10 ms cold, 3 ms cached.
    pts = " ".join(f"{x(r):.1f},{y(3 * r + 10):.1f}" for r in rtts)
    s.append(f"<polyline points='{pts}' fill='none' stroke='#888' stroke-width='1.2' stroke-dasharray='2 3'/>")
    s.append(f"<line x1='{left}' y1='{y(3):.1f}' x2='{left + pw}' y2='{y(3):.1f}' stroke='#888' "
             "stroke-width='1.2' stroke-dasharray='2 3'/>")
    s.append(f"<line x1='{lx}' y1='{legend_y}' x2='{lx + 22}' y2='{legend_y}' stroke='#888' stroke-dasharray='2 3'/>")
    s.append(f"<text x='{lx + 28}' y='{legend_y + 4}'>targets: 3 RTT + 10 ms; 3 ms</text>")
    legend_y += 20
    for (n, paths), dash, what in ((big, "", f"N={big[0]} over {big[1]} paths"),
                                   (small, " stroke-dasharray='5 4'", f"N={small[0]}")):
        for key, label in TOOLS:
            if key == "curl" and (n, paths) != big:
                continue  # one path whatever N: once is enough
            name = label if key == "curl" else f"{label}, {what}"
            points = [(r, times[(key, r, n, paths)][0]) for r in rtts if (key, r, n, paths) in times]
            if not points:
                continue
            color = COLORS[key]
            wide = 2.6 if key.startswith("with-secrets") else 1.8
            if len(points) > 1:
                p = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in points)
                s.append(f"<polyline points='{p}' fill='none' stroke='{color}' stroke-width='{wide}'{dash}/>")
            for r, v in points:
                s.append(f"<circle cx='{x(r):.1f}' cy='{y(v):.1f}' r='3.5' fill='{color}'><title>"
                         f"{html.escape(name)}, {r} ms RTT: {v:.1f} ms</title></circle>")
            s.append(f"<line x1='{lx}' y1='{legend_y}' x2='{lx + 22}' y2='{legend_y}' stroke='{color}' "
                     f"stroke-width='{wide}'{dash}/>")
            s.append(f"<text x='{lx + 28}' y='{legend_y + 4}'>{html.escape(name)}</text>")
            legend_y += 20
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    d = Path(sys.argv[1])
    times, failed, requests = load(d)
    (d / "results.md").write_text(report(d, times, failed, requests))
    (d / "plot.svg").write_text(plot(times))


if __name__ == "__main__":
    main()
