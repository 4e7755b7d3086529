"""Turns bench/run's results into a Markdown report and an SVG plot.

    report.py RESULTS_DIR OUT.md OUT.svg

RESULTS_DIR holds runs.json (bench/interleave.py's results: every command,
tagged with its tool and N, or group "startup"), rss.tsv (label, then KiB of
each run), meta.tsv (key, value) and notes.txt. Every figure is a median;
the spread shown is the interquartile range. Standard library only, so it
runs wherever bench/run does.
"""

import html
import json
import math
import statistics
import sys
from pathlib import Path

# (hyperfine name, label, whether its work grows with N)
TOOLS = [
    ("floor", "floor: `env A=x true`", False),
    ("with-secrets", "**with-secrets** `-m M -- true`", True),
    ("secret-tool", "`secret-tool lookup` (C libsecret, 1 secret)", False),
    ("python-keyring", "Python keyring, N × `get_password`", True),
    ("keyring-cli", "`keyring get` (Python CLI, 1 secret)", False),
    ("secretspec", "secretspec `run -- true`", True),
    ("fnox", "fnox `exec -- true`", True),
    ("envchain", "envchain (Rust port) `run NS true`", True),
    ("with-secrets-plain", "with-secrets, plain session (`WITH_SECRETS_PLAIN_SESSION=1`)", True),
    ("protocol-floor", "protocol floor (`bench/protocol-floor.c`: libdbus, plain session, no exec)", True),
]
# Shorter names for the plot's legend.
SHORT = {
    "with-secrets-plain": "with-secrets, plain session",
    "protocol-floor": "protocol floor (C, plain, no exec)",
}
COLORS = {
    "floor": "#888888",
    "with-secrets": "#d62728",
    "secret-tool": "#1f77b4",
    "python-keyring": "#2ca02c",
    "keyring-cli": "#17becf",
    "secretspec": "#9467bd",
    "fnox": "#ff7f0e",
    "envchain": "#8c564b",
    "with-secrets-plain": "#e377c2",
    "protocol-floor": "#000000",
}


def plain(label):
    return label.replace("**", "").replace("`", "")


def load(results):
    """{tool: {n: (median_ms, q1_ms, q3_ms)}}, the sorted secret counts, the
    start-up rows [(name, median, q1, q3)], and the runs that failed or were
    dropped [(name, failures, runs, signals, skipped, last_error)]."""
    times = {}
    counts = []
    startup = []
    failed = []
    global ROUNDS
    for r in json.loads((results / "runs.json").read_text())["results"]:
        tags = r.get("tags", {})
        if "tool" in tags and r.get("times"):
            ROUNDS[(tags["tool"], tags["n"])] = dict(zip(r.get("rounds", []), r["times"]))
        if r.get("failures") or r.get("skipped"):
            failed.append((r["command"], r["failures"], r["runs"], r.get("signals") or {},
                           r.get("skipped"), r.get("last_error")))
        if r.get("skipped") or "median" not in r:
            continue
        figure = (r["median"] * 1000, r["q1"] * 1000, r["q3"] * 1000)
        tags = r.get("tags", {})
        if tags.get("group") == "startup":
            startup.append((r["command"],) + figure)
        elif "tool" in tags:
            times.setdefault(tags["tool"], {})[tags["n"]] = figure
            counts.append(tags["n"])
    return times, sorted(set(counts)), startup, failed


# {(tool, n): {round: seconds}}, for ratios taken within each round.
ROUNDS = {}


def paired(peer, n):
    """The median over the rounds of peer's time over with-secrets's in the
    same round, or None."""
    a, b = ROUNDS.get((peer, n), {}), ROUNDS.get(("with-secrets", n), {})
    ratios = [a[r] / b[r] for r in a if r in b]
    return statistics.median(ratios) if ratios else None


def fmt(figure):
    median, q1, q3 = figure
    return f"{median:.2f} ({q1:.2f}–{q3:.2f})"


def slope(series, counts):
    """Cost of each extra secret, from the medians at the first and last N, in ms."""
    lo, hi = counts[0], counts[-1]
    if hi == lo or lo not in series or hi not in series:
        return None
    return (series[hi][0] - series[lo][0]) / (hi - lo)


def main_table(times, counts):
    lo, hi = counts[0], counts[-1]
    head = ["tool"] + [f"N={n}" for n in counts]
    head.append(f"per extra secret (t({hi}) − t({lo})) / {hi - lo}")
    rows = [head, ["---"] + ["---:"] * (len(head) - 1)]
    for key, label, scales in TOOLS:
        if key not in times:
            continue
        series = times[key]
        row = [label] + [fmt(series[n]) if n in series else "—" for n in counts]
        per = slope(series, counts) if scales else None
        row.append(f"{per:.3f}" if per is not None else "—")
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def ratio_table(times, counts):
    """Each peer's time over with-secrets's, at each N."""
    ws = times.get("with-secrets", {})
    rows = [["peer / with-secrets"] + [f"N={n}" for n in counts]]
    rows.append(["---"] + ["---:"] * len(counts))
    for key, label, _ in TOOLS:
        if key in ("with-secrets", "floor") or key not in times:
            continue
        row = [label]
        for n in counts:
            if n in times[key] and n in ws:
                row.append(f"{times[key][n][0] / ws[n][0]:.1f}×")
            else:
                row.append("—")
        rows.append(row)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def read_rss(results):
    path = results / "rss.tsv"
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        label, _, values = line.partition("\t")
        kib = [int(v) for v in values.split() if v.isdigit()]
        if kib:
            out[label] = kib
    return out


def targets(times, counts, rss, startup):
    """Issue 5's targets, each with the figure measured here."""
    out = []
    ws = times.get("with-secrets", {})

    def line(target, measured, met):
        verdict = "—" if met is None else ("met" if met else "**not met**")
        out.append(f"| {target} | {measured} | {verdict} |")

    per = slope(ws, counts)
    if per is not None:
        line("each extra secret ≤ 0.25 ms", f"{per:.3f} ms", per <= 0.25)
    if 1 in ws and 50 in ws:
        r = ws[50][0] / ws[1][0]
        line("t(50) ≤ 3 × t(1)", f"{r:.2f}×", r <= 3)
    st = times.get("secret-tool", {})
    if 1 in ws and 1 in st:
        r = ws[1][0] / st[1][0]
        line("t(1) ≤ 0.6 × `secret-tool lookup`", f"{r:.2f}×", r <= 0.6)
    for peer in ("fnox", "secretspec"):
        if 50 in times.get(peer, {}) and 50 in ws:
            r = times[peer][50][0] / ws[50][0]
            line(f"at N=50, ≥ 3× faster than {peer}", f"{r:.1f}×", r >= 3)
    for peer in ("python-keyring", "envchain", "secretspec", "fnox"):
        series = times.get(peer, {})
        both = [n for n in counts if n in series and n in ws]
        if both:
            slower = [n for n in both if ws[n][0] >= series[n][0]]
            line(
                f"faster than {peer} at every N",
                "yes" if not slower else "slower at N=" + ", ".join(map(str, slower)),
                not slower,
            )
    if "with-secrets" in rss:
        peak = max(rss["with-secrets"]) / 1024
        line("peak RSS ≤ 8 MiB with 50 secrets", f"{peak:.1f} MiB (max of {len(rss['with-secrets'])})", peak <= 8)
    floor = next((m for name, m, _, _ in startup if name == "floor"), None)
    for name, mean, _, _ in startup:
        if name != "floor" and floor:
            r = mean / floor
            line(f"`{name}` ≤ 1.5 × floor", f"{r:.2f}×", r <= 1.5)
    if not out:
        return ""
    return "\n".join(["| target (issue 5) | measured | |", "|---|---:|---|"] + out)


def report(results, times, counts, startup, failed):
    meta = {}
    if (results / "meta.tsv").exists():
        for line in (results / "meta.tsv").read_text().splitlines():
            key, _, value = line.partition("\t")
            meta[key] = value
    notes = []
    if (results / "notes.txt").exists():
        notes = [n for n in (results / "notes.txt").read_text().splitlines() if n]
    rss = read_rss(results)
    for name, failures, runs, signals, skipped, last_error in failed:
        how = ", ".join(f"{k} {v}×" for k, v in signals.items())
        if skipped:
            notes.append(f"{name}: dropped, {skipped}")
        else:
            notes.append(f"{name}: {failures} of {runs} runs failed{f' ({how})' if how else ''}, "
                         f"left out of its figures; the last: {last_error}")

    md = ["# with-secrets benchmark", ""]
    md.append(
        "Wall time in ms of one run of each command against a private gnome-keyring "
        "holding the N secrets: the median, and in brackets the interquartile range "
        f"(the middle half of the runs); {meta.get('runs', '?')}."
    )
    md += ["", main_table(times, counts), ""]
    if "with-secrets" in times and len(times) > 2:
        md += ["Each tool's median over with-secrets's median at the same N:", ""]
        md += [ratio_table(times, counts), ""]
        rows = []
        for key, label, _ in TOOLS:
            if key in ("with-secrets", "floor"):
                continue
            cells = [paired(key, n) for n in counts]
            if any(c is not None for c in cells):
                rows.append("| " + " | ".join([label] + [f"{c:.1f}×" if c is not None else "—" for c in cells]) + " |")
        if rows:
            md += ["The same taken within each round: the median over the rounds of the tool's time "
                   "over with-secrets's time in that round:", ""]
            md += ["| peer / with-secrets, within rounds | " + " | ".join(f"N={n}" for n in counts) + " |",
                   "| --- |" + " ---: |" * len(counts)] + rows + [""]
    if startup:
        floor = next((m for name, m, _, _ in startup if name == "floor"), None)
        md += ["Start-up without store access:", ""]
        md += ["| command | ms | × floor |", "|---|---:|---:|"]
        for name, median, q1, q3 in startup:
            cell = f"{median:.2f} ({q1:.2f}–{q3:.2f})"
            md.append(f"| {name} | {cell} | {median / floor:.2f}× |" if floor else f"| {name} | {cell} | |")
        md.append("")
    if rss:
        md += ["Peak RSS (`/usr/bin/time -f %M`, 10 runs), 50 secrets where the tool takes any:", ""]
        md += ["| command | median | max |", "|---|---:|---:|"]
        for label, kib in rss.items():
            md.append(f"| {label} | {statistics.median(kib) / 1024:.1f} MiB | {max(kib) / 1024:.1f} MiB |")
        md.append("")
    goals = targets(times, counts, rss, startup)
    if goals:
        md += [goals, ""]
    if notes:
        md += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    if meta:
        md += ["| run | |", "|---|---|"]
        for key in ("date", "command", "keyring", "cpus", "cpu", "kernel", "load_before", "load_after",
                    "python", "with-secrets", "gnome-keyring", "secret-tool",
                    "python-keyring", "secretspec", "fnox", "envchain"):
            if key in meta:
                md.append(f"| {key} | {meta[key]} |")
        md.append("")
    return "\n".join(md)


def plot(times, counts):
    """Time against N, one line per tool; log-scale time so that the fast
    tools stay readable beside the slow ones."""
    width, height = 920, 520
    left, right, top, bottom = 70, 330, 40, 60
    pw, ph = width - left - right, height - top - bottom
    values = [m for series in times.values() for m, _, _ in series.values() if m > 0]
    if not values:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    # The y range: from the nice value (1, 2 or 5 × 10^k) at or below the
    # fastest figure to the one at or above the slowest.
    nice = [m * 10.0 ** k for k in range(-3, 7) for m in (1, 2, 5)]
    lo = max(v for v in nice if v <= min(values))
    hi = min(v for v in nice if v >= max(values))
    xmax = max(counts)

    def x(n):
        return left + (n / xmax if xmax else 0) * pw

    def y(ms):
        return top + ph - (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    s = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='12'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
        f"<text x='{left}' y='22' font-size='15' font-weight='bold'>"
        "Time to run `true` with N secrets from gnome-keyring (median)</text>",
    ]
    for v in nice:
        if lo * 0.9999 <= v <= hi * 1.0001:
            m = round(v / 10 ** math.floor(math.log10(v) + 1e-9))
            yy = y(v)
            s.append(f"<line x1='{left}' y1='{yy:.1f}' x2='{left + pw}' y2='{yy:.1f}' "
                     f"stroke='#{'ccc' if m == 1 else 'eee'}'/>")
            s.append(f"<text x='{left - 6}' y='{yy + 4:.1f}' text-anchor='end'>{v:g}</text>")
    for n in counts:
        s.append(f"<line x1='{x(n):.1f}' y1='{top}' x2='{x(n):.1f}' y2='{top + ph}' stroke='#eee'/>")
        s.append(f"<text x='{x(n):.1f}' y='{top + ph + 18}' text-anchor='middle'>{n}</text>")
    s.append(f"<rect x='{left}' y='{top}' width='{pw}' height='{ph}' fill='none' stroke='#444'/>")
    s.append(f"<text x='{left + pw / 2}' y='{height - 18}' text-anchor='middle'>N, secrets in the manifest</text>")
    s.append(f"<text transform='translate(18 {top + ph / 2}) rotate(-90)' text-anchor='middle'>"
             "ms per run (log scale)</text>")
    legend_y = top + 10
    for key, label, _ in TOOLS:
        series = times.get(key)
        if not series:
            continue
        color = COLORS[key]
        points = [(n, series[n][0]) for n in counts if n in series]
        wide = 3 if key == "with-secrets" else 1.8
        dash = " stroke-dasharray='5 4'" if key in ("floor", "secret-tool", "protocol-floor") else ""
        if len(points) > 1:
            path = " ".join(f"{x(n):.1f},{y(m):.1f}" for n, m in points)
            s.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='{wide}'{dash}/>")
        for n, m in points:
            s.append(f"<circle cx='{x(n):.1f}' cy='{y(m):.1f}' r='3.5' fill='{color}'>"
                     f"<title>{html.escape(SHORT.get(key, plain(label)))}, N={n}: {m:.2f} ms</title></circle>")
        lx = left + pw + 16
        s.append(f"<line x1='{lx}' y1='{legend_y}' x2='{lx + 22}' y2='{legend_y}' stroke='{color}' "
                 f"stroke-width='{wide}'{dash if len(points) > 1 else ''}/>")
        s.append(f"<text x='{lx + 28}' y='{legend_y + 4}'>{html.escape(SHORT.get(key, plain(label)))}</text>")
        legend_y += 20
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    results, out_md, out_svg = (Path(a) for a in sys.argv[1:4])
    times, counts, startup, failed = load(results)
    if not counts:
        sys.exit(f"report.py: no figures in {results}/runs.json")
    # The start-up table's floor is the floor row at the smallest N.
    if "floor" in times and counts[0] in times["floor"]:
        startup.insert(0, ("floor",) + times["floor"][counts[0]])
    out_md.write_text(report(results, times, counts, startup, failed))
    out_svg.write_text(plot(times, counts))


if __name__ == "__main__":
    main()
