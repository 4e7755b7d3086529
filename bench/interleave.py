"""Times commands in interleaved rounds, so that the machine's drift falls on
every command alike rather than on whichever ran while it lasted.

    interleave.py [--runs R] [--warmup W] [--seed S] [--timeout SECONDS]
                  [--label TEXT] SPEC.jsonl OUT.json

SPEC.jsonl holds one command a line, as JSON:

    {"name": "with-secrets N=50", "argv": ["/path/with-secrets", "-m", "m.toml", "--", "true"],
     "env": {"VAR": "value"}, "required": true, "expect_fail": false, "every": 1,
     "tags": {"tool": "with-secrets", "n": 50}}

`env` is added to the runner's own environment (run the runner under `env -i
...` to give every command a clean one); `tags` are copied to the results
untouched, for the report. Each round runs every command once, in a freshly
shuffled order (warm-up rounds too, whose times are dropped). A command
exits 0, or, with `expect_fail`, non-zero; anything else is a failure, which
is counted (with the signal that killed it, if one did) and whose time is
left out. A failure of a `required` command stops everything at once (exit
1); any other command is dropped, and marked skipped, once it has failed in
more than half of its runs after at least 5 runs. A command with `every` k
runs in every k-th round only (rounds 0, k, 2k, ... counting the warm-ups):
for one that takes a hundred times longer than the rest, a few runs spread
over the whole time.

Every command is started with os.posix_spawn (argv[0] resolved on PATH
beforehand), stdin and stdout on /dev/null and stderr to a file that the
runner reads only after a failure, and reaped with os.wait4; the time is
time.perf_counter_ns around the spawn and the wait, and wait4's rusage gives
the CPU time of each run (not its peak RSS: posix_spawn's child shares the
runner's memory until it execs, so ru_maxrss would be the runner's; use
/usr/bin/time for that). OUT.json is shaped like hyperfine's
export (times in seconds: mean, stddev, median, min, max, times) plus q1,
q3, failures, signals, skipped, last_error, user, system (CPU seconds),
rounds (the round of each time, for ratios taken within a round) and the
tags. Standard library only.
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time

DEVNULL = os.open(os.devnull, os.O_RDWR)
# Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
# across exec: give the commands the defaults back, as a shell would.
RESTORE = (signal.SIGPIPE, signal.SIGXFSZ)


class Command:
    def __init__(self, spec, base_env, errdir, index):
        self.name = spec["name"]
        self.argv = [str(a) for a in spec["argv"]]
        env = dict(base_env)
        env.update({k: str(v) for k, v in spec.get("env", {}).items()})
        self.env = env
        path = shutil.which(self.argv[0], path=env.get("PATH", os.defpath))
        if path is None:
            sys.exit(f"interleave.py: {self.name}: {self.argv[0]} not found on PATH")
        self.path = path
        self.required = bool(spec.get("required", False))
        self.expect_fail = bool(spec.get("expect_fail", False))
        self.tags = spec.get("tags", {})
        self.every = max(1, int(spec.get("every", 1)))
        self.errfile = os.path.join(errdir, f"{index}.err")
        self.actions = [
            (os.POSIX_SPAWN_DUP2, DEVNULL, 0),
            (os.POSIX_SPAWN_DUP2, DEVNULL, 1),
            (os.POSIX_SPAWN_OPEN, 2, self.errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        ]
        self.times = []
        self.rounds = []
        self.user = []
        self.system = []
        self.runs = 0
        self.failures = 0
        self.signals = {}
        self.last_error = None
        self.skipped = None


class Timeout(Exception):
    pass


def run_once(cmd, timeout):
    """One run: (ok, ns, rusage)."""
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(cmd.path, cmd.argv, cmd.env, file_actions=cmd.actions, setsigdef=RESTORE)
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        _, status, usage = os.wait4(pid, 0)
    except Timeout:
        os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        cmd.last_error = f"killed after {timeout} s"
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
    t1 = time.perf_counter_ns()
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        cmd.signals[sig] = cmd.signals.get(sig, 0) + 1
        ok = False
    else:
        code = os.WEXITSTATUS(status)
        ok = (code != 0) if cmd.expect_fail else (code == 0)
    if not ok:
        try:
            with open(cmd.errfile, "rb") as f:
                tail = f.read()[-2000:].decode("utf-8", "replace").strip()
        except OSError:
            tail = ""
        what = f"signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status) \
            else f"exit status {os.WEXITSTATUS(status)}"
        cmd.last_error = f"{what}: {tail[-500:]}" if tail else what
    return ok, t1 - t0, usage


def quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is killed")
    ap.add_argument("--label", default="", help="shown in the progress line")
    ap.add_argument("spec")
    ap.add_argument("out")
    args = ap.parse_args()

    def on_alarm(_sig, _frame):
        raise Timeout()

    signal.signal(signal.SIGALRM, on_alarm)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    errdir = tempfile.mkdtemp(prefix="interleave.")
    with open(args.spec) as f:
        specs = [json.loads(line) for line in f if line.strip()]
    if not specs:
        sys.exit("interleave.py: no commands")
    base_env = dict(os.environ)
    cmds = [Command(s, base_env, errdir, i) for i, s in enumerate(specs)]
    names = [c.name for c in cmds]
    if len(set(names)) != len(names):
        sys.exit("interleave.py: command names must differ")

    started = time.time()
    total = args.warmup + args.runs
    for rnd in range(total):
        warm = rnd < args.warmup
        order = [c for c in cmds if c.skipped is None and rnd % c.every == 0]
        rng.shuffle(order)
        for cmd in order:
            ok, ns, usage = run_once(cmd, args.timeout)
            if not warm:
                cmd.runs += 1
            if ok:
                if not warm:
                    cmd.times.append(ns / 1e9)
                    cmd.rounds.append(rnd - args.warmup)
                    cmd.user.append(usage.ru_utime)
                    cmd.system.append(usage.ru_stime)
                continue
            if cmd.required:
                print(f"interleave.py: {cmd.name} failed ({cmd.last_error}); "
                      f"it must not: stopping", file=sys.stderr)
                sys.exit(1)
            if not warm:
                cmd.failures += 1
        for cmd in cmds:
            if cmd.skipped is None and cmd.runs >= 5 and cmd.failures * 2 > cmd.runs:
                cmd.skipped = f"failed {cmd.failures} of {cmd.runs} runs: {cmd.last_error}"
                print(f"interleave.py: dropping {cmd.name}, {cmd.skipped}", file=sys.stderr)
        if (rnd + 1) % 10 == 0 or rnd + 1 == total:
            print(f"{args.label}{': ' if args.label else ''}round {rnd + 1} of {total}"
                  f" ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)

    results = []
    for cmd in cmds:
        r = {"command": cmd.name, "tags": cmd.tags, "runs": cmd.runs, "failures": cmd.failures,
             "signals": cmd.signals, "skipped": cmd.skipped, "last_error": cmd.last_error}
        if cmd.times:
            q1, q3 = quartiles(cmd.times)
            r.update({
                "mean": statistics.fmean(cmd.times),
                "stddev": statistics.stdev(cmd.times) if len(cmd.times) > 1 else 0.0,
                "median": statistics.median(cmd.times),
                "q1": q1,
                "q3": q3,
                "min": min(cmd.times),
                "max": max(cmd.times),
                "user": statistics.fmean(cmd.user),
                "system": statistics.fmean(cmd.system),
                "times": cmd.times,
                "rounds": cmd.rounds,
            })
        results.append(r)
    out = {"runner": "bench/interleave.py", "seed": seed, "runs": args.runs, "warmup": args.warmup,
           "results": results}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, args.out)
    shutil.rmtree(errdir, ignore_errors=True)

    width = max(len(c.name) for c in cmds)
    print(f"{'command':<{width}}  {'median':>9}  {'q1':>9}  {'q3':>9}  {'min':>9}  fail", file=sys.stderr)
    for r in results:
        if "median" in r:
            print(f"{r['command']:<{width}}  {r['median'] * 1e3:7.2f}ms  {r['q1'] * 1e3:7.2f}ms  "
                  f"{r['q3'] * 1e3:7.2f}ms  {r['min'] * 1e3:7.2f}ms  {r['failures']}/{r['runs']}"
                  f"{'  skipped' if r['skipped'] else ''}", file=sys.stderr)
        else:
            print(f"{r['command']:<{width}}  {'—':>9}  no successful run: {r['last_error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
