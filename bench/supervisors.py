#!/usr/bin/env python3
"""corral against runit, s6, supervisord and Horust in supervisor mode, with a bare
C spawner as the reference (issue 6, second part). Every system runs as a
real PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`);
every service is bench/helper.c (static), started without a shell: runit
and s6 `run` files are symlinks to it and read their arguments from a file.

Installs the peers from Debian's packages if missing, builds corral
(release) and the helper, interleaves the systems within each repetition,
prints medians with min-max as Markdown, and (unless --quick) writes
bench/results/supervisors.md and one SVG chart per scenario group.

    python3 bench/supervisors.py [--quick] [--reps N]

Run as root. Not a test: CI runs only --quick, to keep it working.
"""
import argparse, datetime, json, os, platform, select, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chart  # noqa: E402  (bench/chart.py: dependency-free SVG bars)
from pagecache import evict  # noqa: E402
from tables import spread  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORRAL = os.path.join(ROOT, "target/static/corral")
SYSTEMS = ["spawner", "corral", "runit", "s6", "supervisord", "horust"]
PEERS = {"runit": "/usr/bin/runsvdir", "s6": "/usr/bin/s6-svscan", "supervisord": "/usr/bin/supervisord"}
# Horust is not in Debian: built from crates.io into this cache (a few
# minutes, once per machine). --quick skips it when it is not built yet.
HORUST_VERSION = "0.1.14"
HORUST_ROOT = os.path.expanduser("~/.cache/corral-bench/horust-" + HORUST_VERSION)
HORUST = os.path.join(HORUST_ROOT, "bin/horust")
# What each system is told, so the comparison is fair; printed with the table.
SETTINGS = {
    "corral": "one TOML per service (`command = [helper, ...]`), defaults but `stop_timeout = \"1s\"`; "
    "socket on tmpfs; output prefixed to PID 1's stdout",
    "runit": "`runsvdir -P DIR`, `run` a symlink to the helper; no log/ service (output inherited, unprefixed)",
    "s6": "`s6-svscan DIR`, `run` a symlink to the helper, `timeout-kill` 1000 ms; no logger (output inherited)",
    "supervisord": "`supervisord -n`, `startsecs=0`, `autorestart=true`, `stopwaitsecs=1`, "
    "`stdout_logfile=/dev/stdout` with maxbytes 0 (relayed, unprefixed), loglevel warn",
    "spawner": "`helper spawn N`: fork+exec N helpers, no supervision (the floor)",
    "horust": f"horust {HORUST_VERSION} from crates.io (default features), `--services-path DIR`, "
    "`[restart] strategy = \"always\"`, `[termination] wait = \"1s\"`; output inherited; no status client "
    "(horustctl is not published with it)",
}


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def setup(work, quick):
    missing = [pkg for pkg, path in [("runit", PEERS["runit"]), ("s6", PEERS["s6"]), ("supervisor", PEERS["supervisord"])]
               if not os.path.exists(path)]
    if missing:
        # Debian's images carry a policy-rc.d that keeps packages from
        # starting their daemons; without one, supervisor's postinst would
        # start a supervisord we did not ask for.
        guard = "/usr/sbin/policy-rc.d"
        made = not os.path.exists(guard)
        if made:
            with open(guard, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(guard, 0o755)
        try:
            sh("apt-get", "update", "-qq")
            sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, stdout=subprocess.DEVNULL,
               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        finally:
            if made:
                os.unlink(guard)
    if not os.path.exists(HORUST):
        if quick:
            print(f"horust: skipped (not built yet; a full run builds it into {HORUST_ROOT})", file=sys.stderr)
            SYSTEMS.remove("horust")
        else:
            sh("cargo", "install", "-q", "--locked", "--version", HORUST_VERSION,
               "--root", HORUST_ROOT, "horust")
    sh("bash", "scripts/release-build", "-q", cwd=ROOT)
    helper = os.path.join(work, "helper")
    sh("gcc", "-O2", "-static", "-o", helper, os.path.join(ROOT, "bench/helper.c"))
    evict([CORRAL, HORUST, "/usr/bin/runsvdir", "/usr/bin/runsv", "/usr/bin/s6-svscan", "/usr/bin/s6-supervise"])
    return helper


class Run:
    """One system as PID 1 with N services of one kind, in its own directory
    (on /dev/shm, like a container's /run on tmpfs)."""

    def __init__(self, system, helper, work, n, kind="up", stdout=subprocess.DEVNULL):
        self.system, self.helper, self.n = system, helper, n
        self.dir = tempfile.mkdtemp(prefix=f"{system}-", dir=work)
        self.fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(self.fifo)
        # Read and write end held here: helpers never block on open, and a
        # reader is there before anything starts.
        self.fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        self.env = dict(os.environ, CORRAL_SOCKET=os.path.join(self.dir, "ctl.sock"))
        self.env.pop("CORRAL_LOG", None)
        self.argv = self.configure(kind)
        # As in an image, the configuration is older than the start: runsvdir
        # waits a second before reading a directory changed within the
        # current second.
        past = time.time() - 60
        for d, dirs, files in os.walk(self.dir):
            for name in dirs + files:
                os.utime(os.path.join(d, name), (past, past), follow_symlinks=False)
        os.utime(self.dir, (past, past))
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] + self.argv,
                                     env=self.env, stdout=stdout, stderr=subprocess.DEVNULL, cwd=self.dir)
        self._pid1 = None

    def configure(self, kind):
        names = [f"s{i}" for i in range(self.n)]
        args = [kind, self.fifo] if kind != "lines" else [kind, str(LINES)]
        if self.system == "spawner":
            return [self.helper, "spawn", str(self.n), self.fifo]
        if self.system == "corral":
            sd = os.path.join(self.dir, "services.d")
            os.mkdir(sd)
            for name in names:
                with open(os.path.join(sd, f"{name}.toml"), "w") as f:
                    f.write(f"command = {[self.helper] + args!r}\nstop_timeout = \"1s\"\n".replace("'", '"'))
            return [CORRAL, "--services", sd]
        if self.system in ("runit", "s6"):
            sd = os.path.join(self.dir, "sv")
            os.mkdir(sd)
            for name in names:
                d = os.path.join(sd, name)
                os.mkdir(d)
                os.symlink(self.helper, os.path.join(d, "run"))
                with open(os.path.join(d, "args"), "w") as f:
                    f.write(" ".join(args) + "\n")
                if self.system == "s6":
                    with open(os.path.join(d, "timeout-kill"), "w") as f:
                        f.write("1000\n")
            return [PEERS["runit"], "-P", sd] if self.system == "runit" else [PEERS["s6"], sd]
        if self.system == "horust":
            sd = os.path.join(self.dir, "services")
            os.mkdir(sd)
            for name in names:
                with open(os.path.join(sd, f"{name}.toml"), "w") as f:
                    f.write(f"command = \"{' '.join([self.helper] + args)}\"\n[restart]\nstrategy = \"always\"\n"
                            "[termination]\nwait = \"1s\"\n")
            return [HORUST, "--services-path", sd, "--uds-folder-path", self.dir]
        conf = os.path.join(self.dir, "supervisord.conf")
        sock = os.path.join(self.dir, "supervisor.sock")
        with open(conf, "w") as f:
            f.write(f"[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\nloglevel=warn\n"
                    f"pidfile={self.dir}/supervisord.pid\nuser=root\n\n"
                    f"[unix_http_server]\nfile={sock}\n\n"
                    "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
                    f"[supervisorctl]\nserverurl=unix://{sock}\n\n")
            for name in names:
                f.write(f"[program:{name}]\ncommand={' '.join([self.helper] + args)}\nstartsecs=0\nautorestart=true\n"
                        "stopwaitsecs=1\nstdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n"
                        "stderr_logfile=/dev/stderr\nstderr_logfile_maxbytes=0\n\n")
        self.conf = conf
        return [PEERS["supervisord"], "-n", "-c", conf]

    def pid1(self):
        if self._pid1 is None:
            path = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
            for _ in range(5000):
                try:
                    kids = open(path).read().split()
                    if kids:
                        self._pid1 = int(kids[0])
                        break
                except OSError:
                    pass
                time.sleep(0.001)
        return self._pid1

    def read(self, count, timeout):
        """Bytes from the FIFO until `count` arrived or `timeout` passed;
        sets self.first to when the first of them came."""
        got = b""
        self.first = None
        deadline = time.perf_counter() + timeout
        while len(got) < count:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    got += os.read(self.fd, 65536)
                except BlockingIOError:
                    pass
                if got and self.first is None:
                    self.first = time.perf_counter()
        return got

    def wait_up(self, timeout=60):
        """Milliseconds from exec of PID 1 until every service wrote 'u',
        and until the first one did."""
        got = self.read(self.n, timeout)
        if got.count(b"u") < self.n:
            raise RuntimeError(f"{self.system}: only {got.count(b'u')} of {self.n} services started")
        return (time.perf_counter() - self.t0) * 1000, (self.first - self.t0) * 1000

    def tree(self):
        """PIDs of the supervision tree: PID 1 and its descendants that are
        not a helper (the services themselves are not counted)."""
        out, todo = [], [self.pid1()]
        while todo:
            p = todo.pop()
            try:
                kids = open(f"/proc/{p}/task/{p}/children").read().split()
                exe = os.readlink(f"/proc/{p}/exe")
            except OSError:
                continue
            todo += [int(k) for k in kids]
            if exe != self.helper or p == self._pid1:  # the spawner's PID 1 is a helper
                out.append(p)
        return out

    def memory_kib(self):
        """RSS, PSS and anonymous RSS (heap, stack, data: what is private to
        the tree, as opposed to mapped program text) summed over the tree."""
        rss = pss = anon = 0
        for p in self.tree():
            try:
                status = dict(line.split(":", 1) for line in open(f"/proc/{p}/status") if ":" in line)
                status = {k: v.split()[0] for k, v in status.items() if v.split()}
                rss += int(status["VmRSS"])
                anon += int(status["RssAnon"])
                pss += next(int(line.split()[1]) for line in open(f"/proc/{p}/smaps_rollup") if line.startswith("Pss:"))
            except (OSError, KeyError, StopIteration, IndexError):
                pass
        return rss, pss, anon, len(self.tree())

    def switches(self):
        total = 0
        for p in self.tree():
            try:
                for line in open(f"/proc/{p}/status"):
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def status_cmd(self, one):
        if self.system == "horust":
            return None
        if self.system == "corral":
            return [CORRAL, "ctl", "status"] + (["s0"] if one else [])
        if self.system == "runit":
            sd = os.path.join(self.dir, "sv")
            return ["sv", "status"] + ([os.path.join(sd, "s0")] if one else [os.path.join(sd, f"s{i}") for i in range(self.n)])
        if self.system == "s6":
            sd = os.path.join(self.dir, "sv")
            # s6-svstat takes one directory; "all" is one call per service.
            if one:
                return ["s6-svstat", os.path.join(sd, "s0")]
            return ["sh", "-c", f"for d in {sd}/*/; do s6-svstat \"$d\"; done"]
        return ["supervisorctl", "-c", self.conf, "status"] + (["s0"] if one else [])

    def raw_status_ms(self, one, times):
        """The same answer without a client process: corral's control
        socket (one request line, the answer until corral closes), or the
        binary supervise/status files that `sv status` and `s6-svstat`
        read. The cost of answering, without the client's exec."""
        names = ["s0"] if one else [f"s{i}" for i in range(self.n)]
        if self.system == "corral":
            request = json.dumps({"version": 1, "verb": "status", "names": ["s0"] if one else []}).encode() + b"\n"

            def once():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                    c.connect(self.env["CORRAL_SOCKET"])
                    c.sendall(request)
                    answer = b""
                    while chunk := c.recv(65536):
                        answer += chunk
                if not answer.startswith(b'{"result":"ok"'):
                    raise RuntimeError(f"corral: status over the socket answered {answer[:80]!r}")
        elif self.system in ("runit", "s6"):
            paths = [os.path.join(self.dir, "sv", name, "supervise", "status") for name in names]

            def once():
                for path in paths:
                    with open(path, "rb") as f:
                        if not f.read():
                            raise RuntimeError(f"{self.system}: {path} is empty")
        else:
            return None
        samples = []
        for _ in range(times):
            t0 = time.perf_counter()
            once()
            samples.append((time.perf_counter() - t0) * 1000)
        return statistics.median(samples)

    def status_ms(self, one, times):
        cmd = self.status_cmd(one)
        if cmd is None:
            return None
        samples = []
        for _ in range(times):
            t0 = time.perf_counter()
            r = subprocess.run(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samples.append((time.perf_counter() - t0) * 1000)
            # supervisorctl exits 3 when some program is not RUNNING; that is an answer.
            if r.returncode not in (0, 3):
                raise RuntimeError(f"{self.system}: {' '.join(cmd[:3])} exited {r.returncode}")
        return statistics.median(samples)

    def terminate(self, timeout=30):
        """SIGTERM to PID 1: milliseconds until it is gone, and how many
        services ran their SIGTERM handler before that."""
        os.kill(self.pid1(), signal.SIGTERM)
        t0 = time.perf_counter()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None, self.read(1 << 20, 0.05).count(b"t")
        ms = (time.perf_counter() - t0) * 1000
        return ms, self.read(1 << 20, 0.05).count(b"t")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.fd)
        shutil.rmtree(self.dir, ignore_errors=True)


def crash_loop(system, helper, work, window):
    """First restart delay (ms) and restarts per second of one service that
    exits 1 at once, over `window` seconds from its first run."""
    run = Run(system, helper, work, 1, kind="crash")
    try:
        data = run.read(1, 10)  # the first run, whenever the system gets to it
        data += run.read(1 << 30, window)
    finally:
        run.close()
    stamps = [int(x) for x in data.split()]
    if len(stamps) < 2:
        return None, 0.0
    first = stamps[0]
    restarts = [t for t in stamps[1:] if t - first <= window * 1e9]
    return (stamps[1] - first) / 1e6, len(restarts) / window


def log_relay(system, helper, work, count=None):
    """One service writes LINES lines of 100 bytes; seconds until PID 1's
    stdout delivered them all, and how many were lost.

    Each timed run starts right after an untimed run of the raw pipe: the
    relay follows each system's idle crash loop, and a relay started from
    idle CPUs ran at 0.85x of the next one, while the raw pipe, measured
    last, came right after another relay. (A fifth of the lines was not
    enough to warm up.)"""
    if count is None:
        log_relay("raw pipe", helper, work, count=LINES)
    count = count or LINES
    r, w = os.pipe()
    if system == "raw pipe":  # the reference: the helper writes into the pipe itself
        run = subprocess.Popen([helper, "lines", str(count)], stdout=w)
        run.close = lambda: (run.kill(), run.wait())
    else:
        run = Run(system, helper, work, 1, kind="lines", stdout=w)
    os.close(w)
    lines, first, last = 0, None, None
    deadline = time.perf_counter() + 120
    try:
        while lines < count and time.perf_counter() < deadline:
            # A pause this long ends the run (what has not come is lost).
            # Not 2 s: supervisord, which starts its program about 1.2 s
            # after its own exec, once delivered 1 line of 1,000,000 in a
            # full run (never when run alone), perhaps stalled under load.
            ready, _, _ = select.select([r], [], [], 10.0)
            if not ready:
                break
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            if first is None:
                first = time.perf_counter()
            lines += chunk.count(b"\n")
            last = time.perf_counter()
    finally:
        run.close()
        os.close(r)
    took = (last - first) if first and last and last > first else float("nan")
    return took, count - min(lines, count)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


LINES = 1_000_000


def main():
    global LINES
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 repetition, small counts (a smoke run, under 2 minutes)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--report", metavar="JSON", help="render the tables and charts again from a saved run")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        SYSTEMS[:] = saved["systems"]
        LINES = saved["lines"]
        report(saved["res"], saved["sizes"], saved["reps"], False, saved["idle"], saved["crash_window"])
        return
    if os.geteuid() != 0:
        sys.exit("bench/supervisors.py: run as root (unshare --pid needs it)")
    # A SIGTERM (timeout, CI) unwinds through the finally blocks, which kill
    # every PID 1 this bench started: nothing is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    quick = args.quick
    reps = 1 if quick else args.reps
    sizes = [10, 100] if quick else [10, 100, 500]
    idle = 1.0 if quick else 10.0
    crash_window = 2.0 if quick else 5.0
    LINES = 20_000 if quick else 1_000_000
    status_n = 3 if quick else 20
    work = tempfile.mkdtemp(prefix="corral-sup-", dir="/dev/shm")
    res = {s: {} for s in SYSTEMS + ["raw pipe"]}

    def add(system, key, value):
        res[system].setdefault(key, []).append(value)

    try:
        helper = setup(work, quick)
        t_start = time.perf_counter()
        for rep in range(reps):
            for system in SYSTEMS:  # interleaved: drift hits every system alike
                for n in sizes:
                    run = Run(system, helper, work, n)
                    try:
                        up, first = run.wait_up()
                        add(system, f"start{n}", up)
                        add(system, f"first{n}", first)
                        if n == 100:
                            time.sleep(0.5)  # let start-up settle before idle figures
                            rss, pss, anon, procs = run.memory_kib()
                            add(system, "rss", rss)
                            add(system, "pss", pss)
                            add(system, "anon", anon)
                            add(system, "procs", procs)
                            before = run.switches()
                            time.sleep(idle)
                            add(system, "switches", run.switches() - before)
                            if system != "spawner":  # it neither answers status nor stops anything
                                add(system, "status1", run.status_ms(True, status_n))
                                add(system, "status_all", run.status_ms(False, max(1, status_n // 2)))
                                add(system, "raw_status1", run.raw_status_ms(True, status_n))
                                add(system, "raw_status_all", run.raw_status_ms(False, max(1, status_n // 2)))
                                ms, termed = run.terminate()
                                add(system, "term_ms", ms)
                                add(system, "termed", termed)
                    finally:
                        run.close()
                if system == "spawner":
                    continue
                run = Run(system, helper, work, 1, kind="stubborn")
                try:
                    run.wait_up()
                    add(system, "stubborn_ms", run.terminate()[0])
                finally:
                    run.close()
                delay, rate = crash_loop(system, helper, work, crash_window)
                add(system, "crash_delay", delay)
                add(system, "crash_rate", rate)
                took, lost = log_relay(system, helper, work)
                add(system, "relay_mbs", LINES * 100 / took / 1e6 if took == took else None)
                add(system, "relay_lost", lost)
            # Reference limits of this machine, in the same repetition.
            took, lost = log_relay("raw pipe", helper, work)
            add("raw pipe", "relay_mbs", LINES * 100 / took / 1e6 if took == took else None)
            add("raw pipe", "relay_lost", lost)
            n_fe = 50 if quick else 500
            ns = int(subprocess.run([helper, "forkexec", str(n_fe)], capture_output=True, text=True, check=True).stdout)
            add("spawner", "forkexec", n_fe / (ns / 1e9))
            print(f"repetition {rep + 1}/{reps} done ({time.perf_counter() - t_start:.0f} s)", file=sys.stderr)
        if not quick:
            with open(os.path.join(ROOT, "bench/results/supervisors.json"), "w") as f:
                json.dump({"systems": SYSTEMS, "sizes": sizes, "reps": reps, "idle": idle, "crash_window": crash_window,
                           "lines": LINES, "date": str(datetime.date.today()), "res": res}, f, indent=1)
        report(res, sizes, reps, quick, idle, crash_window)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def versions():
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "runit", "s6", "supervisor"],
                         capture_output=True, text=True).stdout.strip()
    return out.replace("\n", ", ")


def targets(res):
    """The targets for corral, each judged within this run: issue 19's
    (against the spawner, runit and the raw pipe) and issue 6's that still
    stand (idle wakeups, stop). What corral did, the best peer, whether
    the target is met."""
    def m(system, key):
        return med(res[system].get(key, []))

    def best(key, low=True, among=("runit", "s6", "supervisord", "horust")):
        vals = [(m(s, key), s) for s in among if s in res and m(s, key) is not None]
        if not vals:
            return None, "-"
        return (min if low else max)(vals)

    rows = []

    def row(what, key, unit, target_text, ok, low=True, scale=1.0, among=("runit", "s6", "supervisord", "horust")):
        c = m("corral", key)
        b, who = best(key, low, among)
        ratio = f"{c / b:.2f}x" if c is not None and b else "-"
        cv = f"{c * scale:.2f} {unit}" if c is not None else "-"
        bv = f"{who} {b * scale:.2f} {unit}" if b is not None else "-"
        rows.append(f"| {what} | {cv} | {bv} | {ratio} | {target_text} | {'met' if ok(c) else 'MISSED'} |")

    def within(c, limit):
        return c is not None and limit is not None and c <= limit

    sp = lambda n: m("spawner", f"start{n}")  # noqa: E731
    for n in (100, 500):
        if sp(n):
            row(f"start {n} services", f"start{n}", "ms", f"<= 1.15x the spawner ({1.15 * sp(n):.1f} ms)",
                lambda c, n=n: within(c, 1.15 * sp(n)))
    big = max((int(k[5:]) for k in res["corral"] if k.startswith("first")), default=None)
    if big:
        runit_first = m("runit", f"first{big}")
        row(f"first of {big} services running", f"first{big}", "ms", "<= runit's",
            lambda c: within(c, runit_first))
    row("idle tree, 100 services, RSS", "rss", "MiB", "<= 1.5 MiB", lambda c: within(c, 1536), scale=1 / 1024)
    row("context switches at idle", "switches", "", "0", lambda c: c == 0)
    termed = res["corral"].get("termed", [])
    # A peer that exits without stopping its services does not count as best.
    stoppers = [s for s in ("runit", "s6", "supervisord", "horust")
                if s in res and res[s].get("termed") and min(res[s]["termed"]) == 100]
    row("SIGTERM, 100 services, until PID 1 gone (best peer: of those that stopped all)", "term_ms", "ms",
        "<= 20 ms, all 100 stopped", lambda c: within(c, 20) and termed and min(termed) == 100,
        among=stoppers)
    runit1, runit_all = m("runit", "status1"), m("runit", "status_all")
    row("status of one (whole client)", "status1", "ms", "<= 0.7x runit's", lambda c: within(c, runit1 and 0.7 * runit1))
    row("status of all 100 (whole client)", "status_all", "ms", "<= 0.35x runit's",
        lambda c: within(c, runit_all and 0.35 * runit_all))
    raw = m("raw pipe", "relay_mbs")
    lost = res["corral"].get("relay_lost", [])
    # runit, s6 and Horust hand their own stdout to the service: no relay.
    row("log relay, prefixed (best peer: of those that relay)", "relay_mbs", "MB/s",
        f">= 0.8x the raw pipe ({0.8 * raw:.0f} MB/s), 0 lost" if raw else ">= 0.8x the raw pipe, 0 lost",
        lambda c: c is not None and raw is not None and c >= 0.8 * raw and lost and max(lost) == 0, low=False,
        among=("supervisord",))
    return ["## Targets (issues 19 and 6), judged within this run", "",
            "| scenario | corral | best peer | corral / best peer | target | |",
            "| --- | --- | --- | --- | --- | --- |", *rows]


def report(res, sizes, reps, quick, idle, crash_window):
    # A relay that lost lines has no throughput: its first and last line
    # may be one read apart (supervisord once delivered 1 of 1,000,000
    # lines, which read as 7.9 TB/s). The lines lost column says why.
    for r in res.values():
        r["relay_mbs"] = [None if lost else mbs
                          for mbs, lost in zip(r.get("relay_mbs", []), r.get("relay_lost", []))]
    sup = [s for s in SYSTEMS if s != "spawner"]
    horust = f", horust {HORUST_VERSION} (crates.io)" if "horust" in SYSTEMS else ""
    head = (f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}; "
            f"{reps} interleaved repetition(s){' (--quick: smaller counts)' if quick else ''}; medians (min-max). "
            f"Peers from Debian: {versions()}{horust}. Every system is PID 1 of a fresh PID namespace "
            "(`unshare --pid --fork --mount-proc`); services are bench/helper.c; state on /dev/shm (tmpfs).")
    lines = ["# Supervisor mode: corral against runit, s6, supervisord and Horust", "", head, "",
             "## Start N services (exec of PID 1 until every service runs)", "",
             "| system | " + " | ".join(f"N = {n}" for n in sizes) + " | " +
             " | ".join(f"N = {n} vs spawner" for n in sizes) + " |",
             "| --- |" + " --- |" * (2 * len(sizes))]
    for s in SYSTEMS:
        ratios = []
        for n in sizes:
            a, b = med(res[s].get(f"start{n}", [])), med(res["spawner"].get(f"start{n}", []))
            ratios.append(f"{a / b:.2f}x" if a and b else "-")
        lines.append(f"| {s} | " + " | ".join(spread(res[s].get(f"start{n}", []), "ms") for n in sizes) + " | " +
                     " | ".join(ratios) + " |")
    lines += ["", "## First service running (exec of PID 1 until the first of N services runs)", "",
              "| system | " + " | ".join(f"first of {n}" for n in sizes) + " |",
              "| --- |" + " --- |" * len(sizes)]
    for s in SYSTEMS:
        lines.append(f"| {s} | " + " | ".join(spread(res[s].get(f"first{n}", []), "ms") for n in sizes) + " |")
    lines += ["", f"## Idle with 100 services, stop, status", "",
              f"| system | processes | RSS | PSS | of it anonymous | context switches in {idle:.0f} s idle | SIGTERM until PID 1 gone "
              "| services that got SIGTERM | one ignores SIGTERM (kill after 1 s) | status of one | status of all 100 "
              "| raw status of one | raw status of all 100 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in SYSTEMS:
        r = res[s]
        kib = lambda k: spread([v / 1024 for v in r.get(k, [])], "MiB", 2)  # noqa: E731
        termed = r.get("termed", [])
        lines.append(f"| {s} | {med(r.get('procs', [])) or '-'} | {kib('rss')} | {kib('pss')} | {kib('anon')} | "
                     f"{spread(r.get('switches', []), '', 0)} | {spread(r.get('term_ms', []), 'ms')} | "
                     f"{min(termed) if termed else '-'} of 100 | {spread(r.get('stubborn_ms', []), 'ms', 0)} | "
                     f"{spread(r.get('status1', []), 'ms', 2)} | {spread(r.get('status_all', []), 'ms', 2)} | "
                     f"{spread(r.get('raw_status1', []), 'ms', 3)} | {spread(r.get('raw_status_all', []), 'ms', 3)} |")
    lines += ["", f"## Crash loop and log relay", "",
              f"| system | first restart delay | restarts per second (over {crash_window:.0f} s) | "
              f"relay of {LINES:,} x 100-byte lines to PID 1's stdout | lines lost |",
              "| --- | --- | --- | --- | --- |"]
    for s in sup + ["raw pipe"]:
        r = res[s]
        lost = r.get("relay_lost", [])
        lines.append(f"| {s} | {spread(r.get('crash_delay', []), 'ms', 0)} | {spread(r.get('crash_rate', []), '/s', 1)} | "
                     f"{spread(r.get('relay_mbs', []), 'MB/s', 0)} | {max(lost) if lost else '-'} |")
    lines += ["", f"Reference limits of this machine in the same run: fork + exec + wait of a static helper "
              f"{spread(res['spawner'].get('forkexec', []), '/s', 0)}; the spawner row above (fork + exec without waiting); "
              "the raw pipe row (the helper writing straight into the pipe).", ""]
    lines += targets(res)
    lines += ["", "## Settings", ""] + [f"- {s}: {SETTINGS[s]}" for s in SYSTEMS]
    lines += ["", "Every binary is dropped from the page cache before the first repetition, so each is read from disk as in a container just started. "
              "Start: from Popen of `unshare ... PID1` until N 'u' bytes arrived on a FIFO (each service writes one "
              "when it runs). Memory and context switches: PID 1 and its descendants that are not services "
              "(/proc/PID/status VmRSS and RssAnon, smaps_rollup Pss); RSS minus anonymous is mapped program text, "
              "clean page cache shared with every other process running the same binary. Status: a whole client command (`svctl status`, `sv status`, "
              "`s6-svstat`, `supervisorctl status`), median; raw status: the same answer read by the bench itself, "
              "without a client process: one request on corral's control socket read until it closes, or the "
              "supervise/status files that sv and s6-svstat read (supervisord's XML-RPC is not timed raw). SIGTERM: kill(2) on PID 1 until unshare saw it exit; "
              "services count themselves in their SIGTERM handler. Crash loop: the service writes a CLOCK_MONOTONIC "
              "stamp and exits 1. Relay: from the first byte to the last newline read from PID 1's stdout pipe, each run (the raw pipe's too) right after an untimed run of the raw pipe, so none starts from idle CPUs."]
    text = "\n".join(lines)
    print(text)
    if quick:
        return
    out = os.path.join(ROOT, "bench/results")
    with open(os.path.join(out, "supervisors.md"), "w") as f:
        f.write(text + "\n")
    chart.bars(os.path.join(out, "supervisors-start.svg"), "Start 100 services (ms, lower is better)",
               [(s, med(res[s].get("start100", []))) for s in SYSTEMS])
    chart.bars(os.path.join(out, "supervisors-memory.svg"), "PSS of the supervision tree, 100 services (MiB)",
               [(s, (med(res[s].get("pss", [])) or 0) / 1024) for s in SYSTEMS])
    chart.bars(os.path.join(out, "supervisors-stop.svg"), "SIGTERM until PID 1 gone, 100 services (ms)",
               [(s, med(res[s].get("term_ms", []))) for s in SYSTEMS])
    chart.bars(os.path.join(out, "supervisors-relay.svg"), "Log relay (MB/s, higher is better)",
               [(s, med(res[s].get("relay_mbs", []))) for s in sup])
    # Seconds-long figures (supervisord, Horust) would flatten the rest.
    fast = [s for s in ("spawner", "corral", "runit", "s6") if s in SYSTEMS]
    chart.bars(os.path.join(out, "supervisors-first.svg"), "First of 500 services running (ms)",
               [(s, med(res[s].get("first500", []))) for s in fast])
    chart.bars(os.path.join(out, "supervisors-status.svg"), "svctl status / sv status / s6-svstat of one (ms)",
               [(s, med(res[s].get("status1", []))) for s in fast if s != "spawner"])


if __name__ == "__main__":
    main()
