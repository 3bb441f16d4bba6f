#!/usr/bin/env python3
"""corral against tini, tini-static, dumb-init and catatonit in tini mode
(one main command, no services), each as a real PID 1 of a fresh PID
namespace. First part of issue 6; the supervisor-mode peers come next.

Installs the peers from Debian's packages if missing, builds corral
(release) and the stand-in helper (bench/helper.c, static), interleaves the
systems within each repetition, and prints medians with min-max as a
Markdown table (also written to bench/results/tini-mode.md).

    python3 bench/peers.py [--quick] [--reps N]

Run as root. Not a test; CI does not run it.
"""
import argparse, datetime, os, platform, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chart  # noqa: E402  (bench/chart.py: dependency-free SVG bars)
from tables import spread  # noqa: E402
from pagecache import evict  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORRAL = os.path.join(ROOT, "target/static/corral")


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def setup(work):
    missing = [p for p, b in [("tini", "/usr/bin/tini"), ("dumb-init", "/usr/bin/dumb-init"), ("catatonit", "/usr/bin/catatonit")] if not os.path.exists(b)]
    if missing:
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", *missing, stdout=subprocess.DEVNULL)
    sh("bash", "scripts/release-build", "-q", cwd=ROOT)
    helper = os.path.join(work, "helper")
    sh("gcc", "-O2", "-static", "-o", helper, os.path.join(ROOT, "bench/helper.c"))
    evict([CORRAL, "/usr/bin/tini", "/usr/bin/tini-static", "/usr/bin/dumb-init", "/usr/bin/catatonit"])
    return helper


SYSTEMS = {
    "no init": [],
    "corral": [CORRAL, "--"],
    "tini": ["/usr/bin/tini", "--"],
    "tini-static": ["/usr/bin/tini-static", "--"],
    "dumb-init": ["/usr/bin/dumb-init"],
    "catatonit": ["/usr/bin/catatonit", "--"],
}


def pid1(system, argv):
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] + SYSTEMS[system] + argv


def env_for(work):
    e = dict(os.environ)
    e["CORRAL_SOCKET"] = os.path.join(work, "ctl.sock")
    e.pop("CORRAL_LOG", None)
    return e


def host_pid1(unshare):
    path = f"/proc/{unshare.pid}/task/{unshare.pid}/children"
    for _ in range(2000):
        try:
            kids = open(path).read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError("no PID 1")


def startup(system, helper, env):
    t0 = time.perf_counter()
    subprocess.run(pid1(system, [helper, "true"]), env=env, check=True)
    return (time.perf_counter() - t0) * 1000


def rss_kib(system, helper, env):
    p = subprocess.Popen(pid1(system, [helper, "sleep"]), env=env)
    try:
        pid = host_pid1(p)
        time.sleep(0.2)
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    finally:
        p.kill()
        p.wait()


def forwarding_us(system, helper, env, work, n, sig="USR1"):
    """Median microseconds from kill(2) on PID 1 to the child's handler of
    SIGUSR1 or SIGTERM. The driver is the C helper (`helper ping`), so no
    interpreter sits in the measured path."""
    fifo = os.path.join(work, f"fifo-{system}")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    p = subprocess.Popen(pid1(system, [helper, "sigecho", fifo]), env=env)
    try:
        with open(fifo, "rb", buffering=0) as f:
            line = b""
            while not line.endswith(b"\n"):
                line += f.read(1)
            assert line.strip() == b"ready"
            pid = host_pid1(p)
            out = subprocess.run([helper, "ping", str(pid), str(n), sig], stdin=f, capture_output=True, text=True,
                                 check=True)
            return statistics.median(int(x) / 1000 for x in out.stdout.split())
    finally:
        p.kill()
        p.wait()


def orphans(system, helper, env, n):
    """The reaping tail in ms (from the end of an orphan storm until PID 1
    has no zombie child left, timed by the helper inside the namespace) and
    the most zombies seen at once during the storm."""
    p = subprocess.Popen(pid1(system, [helper, "tail", str(n)]), env=env, stdout=subprocess.PIPE, text=True)
    pid = host_pid1(p)
    peak = [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
                z = 0
                for k in kids:
                    try:
                        stat = open(f"/proc/{k}/stat").read()
                        if stat[stat.rfind(")") + 2] == "Z":
                            z += 1
                    except OSError:
                        pass
                peak[0] = max(peak[0], z)
            except OSError:
                pass
            time.sleep(0.001)

    t = threading.Thread(target=watch)
    t.start()
    out, _ = p.communicate()
    done.set()
    t.join()
    tail = int(out.split()[0]) / 1e6 if out.split() else None
    return tail, peak[0]


def targets(res, base):
    """Issue 19's tini-mode targets for corral (issue 6's for reaping),
    judged within this run, with the best peer's figure and corral's
    ratio to it."""
    def med(s, k):
        vals = [v for v in res[s][k] if v is not None]
        return statistics.median(vals) if vals else None

    peers = [s for s in res if s not in ("no init", "corral")]
    start = {s: med(s, "start") - base for s in res if s != "no init"}
    zombies = {s: max(res[s]["zomb"]) for s in res}
    rss = {s: med(s, "rss") for s in res}
    usr1 = {s: med(s, "sig") for s in res}
    term = {s: med(s, "term") for s in res}
    rows = [
        ("PID 1 RSS, sleeping child", rss, "KiB", 0, f"<= tini-static's ({rss['tini-static']:.0f} KiB)",
         lambda c: c <= rss["tini-static"]),
        ("start-up overhead", start, "ms", 2, f"<= catatonit's ({start['catatonit']:.2f} ms)",
         lambda c: c <= start["catatonit"]),
        ("SIGUSR1 forwarding", usr1, "us", 1, f"<= tini's ({usr1['tini']:.1f} us)", lambda c: c <= usr1["tini"]),
        ("SIGTERM forwarding", term, "us", 1, f"<= tini's ({term['tini']:.1f} us)", lambda c: c <= term["tini"]),
        ("reaping tail", {s: med(s, "orph") for s in res}, "ms", 3, "<= 0.3 ms", lambda c: c <= 0.3),
        ("most zombies at once", zombies, "", 0, "<= 10", lambda c: c <= 10),
    ]
    out = ["## Targets (issues 19 and 6), judged within this run", "",
           "| scenario | corral | best peer | corral / best peer | target | |", "| --- | --- | --- | --- | --- | --- |"]
    for what, vals, unit, digits, target, ok in rows:
        c = vals["corral"]
        b, who = min((vals[s], s) for s in peers if vals[s] is not None)
        ratio = f"{c / b:.2f}x" if b else "-"
        out.append(f"| {what} | {c:.{digits}f} {unit} | {who} {b:.{digits}f} {unit} | {ratio} | {target} | "
                   f"{'met' if ok(c) else 'MISSED'} |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 repetitions, small counts (a smoke run)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    # A SIGTERM (timeout, CI) unwinds through the finally blocks, which kill
    # every PID 1 this bench started: nothing is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    reps = 2 if args.quick else args.reps
    n_sig = 100 if args.quick else 1000
    n_term = 3 if args.quick else 10
    n_orphans = 2000 if args.quick else 20000
    work = tempfile.mkdtemp(prefix="corral-peers-")
    try:
        helper = setup(work)
        env = env_for(work)
        systems = list(SYSTEMS)
        res = {s: {"start": [], "rss": [], "sig": [], "term": [], "orph": [], "zomb": []} for s in systems}
        for r in range(reps):
            # Interleaved: machine drift hits every system alike.
            for s in systems:
                res[s]["start"].append(statistics.median(startup(s, helper, env) for _ in range(20)))
                res[s]["rss"].append(rss_kib(s, helper, env))
                res[s]["sig"].append(forwarding_us(s, helper, env, work, n_sig))
                # SIGTERM starts an init's stop: one per PID 1, the child
                # survives it, the PID 1 is killed after.
                res[s]["term"].append(statistics.median(
                    forwarding_us(s, helper, env, work, 1, "TERM") for _ in range(n_term)))
                took, zomb = orphans(s, helper, env, n_orphans)
                res[s]["orph"].append(took)
                res[s]["zomb"].append(zomb)
            print(f"repetition {r + 1}/{reps} done", file=sys.stderr)
        base = statistics.median(res["no init"]["start"])
        rows = []
        for s in systems:
            binary = SYSTEMS[s][0] if SYSTEMS[s] else None
            size = f"{os.path.getsize(binary) / 1024:.0f} KiB" if binary else "-"
            static = "-"
            if binary:
                ldd = subprocess.run(["ldd", binary], capture_output=True, text=True)
                static = "static" if "=>" not in ldd.stdout else "dynamic"
            over = [v - base for v in res[s]["start"]]
            if s == "no init":
                res[s]["orph"] = [None]
            rows.append(
                f"| {s} | {spread(over, 'ms', 2)} | {spread(res[s]['rss'], 'KiB', 0)} | {spread(res[s]['sig'], 'us', 1)} "
                f"| {spread(res[s]['term'], 'us', 1)} "
                f"| {spread(res[s]['orph'], 'ms', 3)} | {max(res[s]['zomb'])} | {size} | {static} |"
            )
        versions = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "tini", "dumb-init", "catatonit"], capture_output=True, text=True).stdout.strip().replace("\n", ", ")
        table = "\n".join(
            [
                "# tini mode: corral against its peers",
                "",
                f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}; "
                f"{reps} interleaved repetitions{' (--quick)' if args.quick else ''}; medians (min-max). "
                f"Peers from Debian: {versions}. Every system is PID 1 of a fresh PID namespace (`unshare --pid --fork "
                f"--mount-proc`) running bench/helper.c.",
                "",
                "| system | start-up overhead over no init | PID 1 RSS, sleeping child | SIGUSR1 forwarding (median of "
                f"{n_sig}) | SIGTERM forwarding (median of {n_term} PID 1s) | reaping tail after {n_orphans} orphans "
                "| most zombies seen | binary | linked |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
                *rows,
                "",
                "Every binary is dropped from the page cache before the first repetition, so each is read from disk as in a container just started. "
                "Start-up overhead: median of 20 runs of `INIT helper true` per repetition, minus the same without an init. "
                "Forwarding: from kill(2) on PID 1 to the helper's SIGUSR1 or SIGTERM handler (CLOCK_MONOTONIC), through a "
                "FIFO, driven by the C helper (`helper ping`); SIGTERM once per PID 1, since it starts the init's stop. Orphans: the helper double-forks in bursts of 1000, then "
                "spins on /proc/1/task/1/children until no zombie is left (the tail); zombies sampled every "
                "millisecond among PID 1's children during the storm. \"no init\": the helper is PID 1 itself and "
                "reaps nothing, so its tail is not a figure.",
                "",
                *targets(res, base),
            ]
        )
        print(table)
        if not args.quick:
            with open(os.path.join(ROOT, "bench/results/tini-mode.md"), "w") as f:
                f.write(table + "\n")
            out = os.path.join(ROOT, "bench/results")
            inits = [s for s in systems if s != "no init"]
            chart.bars(os.path.join(out, "tini-mode-rss.svg"), "PID 1 RSS with a sleeping child (KiB)",
                       [(s, statistics.median(res[s]["rss"])) for s in inits])
            chart.bars(os.path.join(out, "tini-mode-startup.svg"), "Start-up overhead over no init (ms)",
                       [(s, statistics.median(res[s]["start"]) - base) for s in inits])
            chart.bars(os.path.join(out, "tini-mode-forwarding.svg"), "SIGUSR1 forwarding latency (us)",
                       [(s, statistics.median(res[s]["sig"])) for s in inits])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
