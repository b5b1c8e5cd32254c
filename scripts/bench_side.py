#!/usr/bin/env python3
"""Shared by bench_vs_sklearn.py and bench_vs_xgboost.py: the Rust half and the reference as
request servers, interleaved timing, the summary statistics and the Markdown tables.

Method: every case is run at least `--repeats` times on each side (more for short cases, see
`Case.calibrate`), ours and the reference alternating (the first of each pair alternates
too, so neither side always runs on a warm or cold cache).
Every run reports wall seconds and CPU seconds: the reference's calling thread
(`time.thread_time`) and the Rust bench process (read here, with `clock_gettime` on that
process's CPU clock, at the marks the bench prints between its phases while it waits for our
acknowledgement; see `Ours.run`). With one thread that is the work done, much less sensitive
than wall time to other processes on the cores; both clocks count to the nanosecond. A ratio is
ours / reference (< 1: ours is faster), shown for the best and for the median of the runs; the
saved runs also keep every run's times, and `compare` adds the median of the per-pair ratios.
With one thread both sides are pinned to the same CPU (`pin_blas_threads`) and Python's garbage
collector is off while the reference is timed (`clocked`). The reference runs in a worker
process of its own (`Reference`), and a case's runs are spread over several fresh processes of
each side and over the bench's whole time, in rounds (`run_rounds`), so that a best of the runs
is a best over processes and over the host's slow and fast stretches too.

Also a command: `python3 scripts/bench_side.py compare A.json B.json` prints, for two runs
saved with `--json-out`, every ratio of both and their relative difference (the
reproducibility check: two runs should agree within 10 %), and
`python3 scripts/bench_side.py table RUN.json ...` prints the fit and predict tables of one or
more saved runs (e.g. the sizes of one run and a larger size run apart) with each run's load,
and `python3 scripts/bench_side.py processes RUN.json` the best time of each process a case's
runs were spread over.
"""

import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PHASES = ("fit", "predict")
RATIOS = ("cpu best", "cpu median", "wall best", "wall median")


# The CPU this process and the Rust bench are pinned to with `--threads 1` (None: not pinned).
PINNED_CPU = None


def pin_blas_threads(argv):
    """With `--threads 1`, numpy's BLAS and OpenMP get one thread as well (set before numpy is
    imported), so the reference's work is all on the calling thread. The driver is also pinned
    to one CPU (the last it may use, or `BENCH_CPU`), and the Rust bench, started later,
    inherits it: both sides then run on the same core, one at a time (the driver waits while
    the bench works), are never migrated mid-run, and leave the other cores to the rest of the
    machine (interrupts, the shell)."""
    global PINNED_CPU
    if "--threads" in argv and argv[argv.index("--threads") + 1:][:1] == ["1"]:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"
        if hasattr(os, "sched_setaffinity"):
            allowed = sorted(os.sched_getaffinity(0))
            cpu = int(os.environ.get("BENCH_CPU", allowed[-1]))
            os.sched_setaffinity(0, {cpu})
            PINNED_CPU = cpu


def build_bench(bench):
    """Builds `cargo bench --bench BENCH` (release, `--locked`) without running it and returns
    the path of its executable, from cargo's JSON messages."""
    out = subprocess.run(["cargo", "bench", "--locked", "--no-run", "--quiet", "--bench", bench,
                          "--message-format=json"], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact" and msg.get("executable")
                and msg.get("target", {}).get("name") == bench):
            return msg["executable"]
    raise RuntimeError(f"cargo built no executable for the bench {bench!r}")


class Served:
    """A side's process that answers requests on stdin, one line each: started from `cmd`,
    restarted fresh (`run_rounds`), closed by closing its stdin."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def restart(self):
        self.close()
        self.start()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Ours(Served):
    """The Rust bench in `--serve` mode: one request line in, one JSON line out."""

    def __init__(self, bench, bench_bin=None):
        # The bench binary itself, never `cargo bench` around it: the CPU clock read below is
        # the clock of the process we start, and cargo's stays near 0 while its child works.
        cmd = [bench_bin or build_bench(bench), "--serve"]
        print("starting: " + " ".join(cmd), file=sys.stderr)
        super().__init__(cmd)

    def cpu(self):
        """The Rust bench process's CPU seconds (all its threads), or None off Linux. Linux
        gives every process a CPU clock, id ((~pid) << 3) | 2 (CPUCLOCK_SCHED), readable by
        any process that may see it; unlike /proc's schedstat totals, which move only at
        scheduler ticks, it includes the running slice."""
        try:
            return time.clock_gettime(((~self.proc.pid) << 3) | 2)
        except (OSError, AttributeError):
            return None

    def run(self, *words):
        """One request: the bench's answer, with `PHASE_cpu_s` for every phase it marked
        after its first mark ("start"): our CPU clock at that mark less at the previous one.
        The bench waits for the acknowledgement of each mark without using CPU, so the reading
        falls between its phases."""
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        cpu, last = {}, None
        while True:
            line = self.proc.stdout.readline()
            now = self.cpu()
            if not line:
                raise RuntimeError(f"the Rust bench exited ({self.proc.wait()})")
            out = json.loads(line)
            if list(out) != ["phase"]:
                break
            if last is not None and now is not None:
                cpu[f"{out['phase']}_cpu_s"] = now - last
            last = now
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        out["pid"] = self.proc.pid
        if "error" not in out:
            # A phase run REPS times (`PHASE_reps`) is reported per call, as its wall time is.
            out.update({key: value / out.get(key.replace("_cpu_s", "_reps"), 1)
                        for key, value in cpu.items()})
        return out


class Reference(Served):
    """The reference side in a process of its own: `SCRIPT --worker ARGS` answers one JSON
    request line with one JSON line (`serve_worker`), the run dict of the reference's run
    function. The worker inherits the driver's CPU pinning, its one-thread BLAS settings and
    address randomisation off. A process of its own is what lets a case's runs be spread over
    several fresh processes (`restart`): runs in one process once kept a speed for that
    process's life (scripts/README.md, runs P and Q; what several processes showed: runs R
    and S)."""

    def __init__(self, script, argv):
        super().__init__([sys.executable, script, "--worker", *argv])

    def run(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the reference worker exited ({self.proc.wait()})")
        return json.loads(line)


def serve_worker(handler):
    """The worker's loop (`Reference`): one JSON request per stdin line, `handler(request)`'s
    dict (or {"error": ...}) as one JSON line on stdout, until stdin closes."""
    for line in sys.stdin:
        try:
            out = handler(json.loads(line))
        except Exception as e:  # reported as the run's error; the driver stops that case
            out = {"error": f"{type(e).__name__}: {e}"}
        out["pid"] = os.getpid()
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


# The worker's current case (`load_case`): its directory and its four arrays.
_CASE = {}


def load_case(case_dir):
    """(x_train, y_train, x_test, y_test) from a case directory's train.csv and test.csv (the
    last column is the target; written with 17 significant digits, so read back exactly), each
    C-contiguous as the driver's own arrays were. A worker runs one case at a time, so the last
    case read is kept and read again only when the directory changes."""
    import numpy as np

    if _CASE.get("dir") != case_dir:
        out = []
        for name in ("train.csv", "test.csv"):
            a = np.loadtxt(os.path.join(case_dir, name), delimiter=",", skiprows=1, ndmin=2)
            out += [np.ascontiguousarray(a[:, :-1]), np.ascontiguousarray(a[:, -1])]
        _CASE.clear()
        _CASE.update(dir=case_dir, data=tuple(out))
    return _CASE["data"]


def clocked(fn):
    """(fn(), wall seconds, calling thread's CPU seconds). Python's garbage collector is off
    while `fn` runs, as `timeit` does, so a collection of the driver's own objects does not
    land in the reference's time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = fn()
        return out, time.perf_counter() - t0, time.thread_time() - c0
    finally:
        if was_enabled:
            gc.enable()


def fit_predict(fit_once, predict_once, reps=None):
    """One run of a reference: `fit_once()` (returns a fitted model) `reps["fit"]` times, then
    `predict_once(model)` `reps["predict"]` times (default once each). Returns the last model,
    its predictions and the run's timings per call (wall and calling-thread CPU) with the reps."""
    reps = reps or {phase: 1 for phase in PHASES}

    def fit():
        for _ in range(reps["fit"]):
            model = fit_once()
        return model

    model, fit_s, fit_cpu = clocked(fit)

    def predict():
        for _ in range(reps["predict"]):
            pred = predict_once(model)
        return pred

    pred, predict_s, predict_cpu = clocked(predict)
    return model, pred, {
        "fit_s": fit_s / reps["fit"], "fit_cpu_s": fit_cpu / reps["fit"],
        "predict_s": predict_s / reps["predict"],
        "predict_cpu_s": predict_cpu / reps["predict"],
        "fit_reps": reps["fit"], "predict_reps": reps["predict"]}


def timed(fn):
    """`fn()`'s run dict with "at": the wall-clock time (Unix seconds) the run started, so that
    a saved run's cases can be lined up in time (`processes`)."""
    at = time.time()
    out = fn()
    out["at"] = at
    return out


def interleave(repeats, reference, ours, start=0):
    """Runs `reference()` and `ours()` `repeats` times each, alternating which goes first (the
    reference first in even runs, counted from `start`).
    Returns both lists of run dicts (a run with "error" stops that case)."""
    ref_runs, our_runs = [], []
    for r in range(start, start + repeats):
        pair = [(reference, ref_runs), (ours, our_runs)]
        for fn, runs in (pair if r % 2 == 0 else pair[::-1]):
            out = timed(fn)
            runs.append(out)
            if "error" in out:
                return ref_runs, our_runs
    return ref_runs, our_runs


def reps_for(run, min_run_s):
    """{"fit": n, "predict": n}: calls per phase so that a run of each phase takes at least
    `min_run_s` CPU seconds (wall seconds where the CPU clock was not read), judged from the
    single-call `run`."""
    out = {}
    for phase in PHASES:
        t = run.get(phase + "_cpu_s") or run.get(phase + "_s") or 0.0
        out[phase] = 1 if t >= min_run_s else min(100_000, math.ceil(min_run_s / max(t, 1e-7)))
    return out


def add_run_args(ap):
    """The options of how many runs a case gets, shared by both side-by-side scripts."""
    ap.add_argument("--repeats", type=int, default=7,
                    help="runs per side and case, at least (see --budget)")
    ap.add_argument("--min-run", type=float, default=0.1,
                    help="CPU seconds a run of a phase takes at least: shorter phases are "
                         "repeated within the run and timed per call")
    ap.add_argument("--budget", type=float, default=6.0,
                    help="CPU seconds of runs per side and case to aim for: a case whose run "
                         "is short gets more than --repeats runs, up to --max-repeats")
    ap.add_argument("--max-repeats", type=int, default=41)
    ap.add_argument("--processes", type=int, default=6,
                    help="fresh processes per side a case's runs are spread over, at most "
                         "(each gets at least 3 runs; 1: one process for the whole bench)")


def run_args_meta(args):
    return {"repeats": args.repeats, "min_run_s": args.min_run, "budget_s": args.budget,
            "max_repeats": args.max_repeats, "processes": args.processes}


def runs_for(repeats, budget_s, max_repeats, run_s):
    """How many runs a case gets: `repeats`, or more where a run takes `run_s` CPU seconds and
    `budget_s` allows, at most `max_repeats`. The best of many short runs is what reproduces
    on a shared machine whose speed moves within seconds (scripts/README.md, "Why more runs")."""
    if run_s <= 0:
        return max(repeats, max_repeats)
    return max(repeats, min(max_repeats, math.ceil(budget_s / run_s)))


def run_seconds(run, reps):
    """CPU seconds (wall where the CPU clock was not read) of one run of every phase with
    `reps` calls, judged from the single-call `run`."""
    return sum((run.get(p + "_cpu_s") or run.get(p + "_s") or 0.0) * reps[p] for p in PHASES)


# A case whose runs are shorter than this (CPU seconds, the longer side) gets a discarded
# warm-up pair of runs in every fresh process: its first calls there pay for lazy imports,
# caches and page faults that the runs after them do not. Longer runs (the forest fits, up to
# minutes) are timed from the first: a warm-up would cost as much again.
WARM_UP_BELOW_S = 1.0

# A fresh pair of processes gets at least this many of a short case's runs (a long case's, one:
# it pays for no warm-up).
RUNS_PER_PROCESS = 3


def process_chunks(repeats, processes, short=True):
    """How many runs each of the fresh processes of a case does: `repeats` runs over
    `processes` processes at most, each with at least RUNS_PER_PROCESS (1 if not `short`; one
    process if fewer runs), in order, the first chunks one run longer where they do not
    divide."""
    count = max(1, min(processes, repeats // (RUNS_PER_PROCESS if short else 1)))
    base, extra = divmod(repeats, count)
    return [base + (i < extra) for i in range(count)]


class Case:
    """One case of a side-by-side bench: `reference(reps)` and `ours(reps)` each do one run
    (every phase `reps[phase]` times, timed per call) and return its dict; `run_rounds` fills
    `ref_runs` and `our_runs`. `ref_reps` and `our_reps` (calls per phase in a run), `run_s`
    (CPU seconds of the longer side's run) and `chunks` (runs per fresh process pair) are set
    by the case's first chunk (`calibrate`)."""

    def __init__(self, name, rows, reference, ours):
        self.name, self.rows = name, rows
        self.reference, self.ours = reference, ours
        self.ref_runs, self.our_runs = [], []
        self.chunks, self.stopped = [], False

    def result(self):
        """(name, rows, reference summary, our summary): a row of `tables` and `save`."""
        return self.name, self.rows, summarize(self.ref_runs), summarize(self.our_runs)

    def interleaved(self, start, count):
        """`count` interleaved runs (`interleave`, alternation counted from `start`) with the
        calibrated reps; a run with "error" stops the case."""
        more_ref, more_ours = interleave(count, lambda: self.reference(self.ref_reps),
                                         lambda: self.ours(self.our_reps), start=start)
        self.ref_runs += more_ref
        self.our_runs += more_ours
        self.stopped = any("error" in r for r in more_ref + more_ours)

    def calibrate(self, args, processes):
        """The case's first pair of single-call runs sets each side's reps (`reps_for`, at least
        `args.min_run` a run), the number of runs (`runs_for`, from the longer side's run and
        `args.budget`) and their chunks over up to `processes` process pairs. The pair is kept
        as the first run if the reps are all 1 and a run is long (no warm-up due); else it was
        the process's warm-up. So a phase of 50 µs is timed over thousands of calls in each of
        up to `args.max_repeats` runs, and one of seconds once a run in `args.repeats` runs."""
        once = {phase: 1 for phase in PHASES}
        first_ref, first_ours = timed(lambda: self.reference(once)), timed(lambda: self.ours(once))
        if "error" in first_ref or "error" in first_ours:
            self.ref_runs, self.our_runs, self.stopped = [first_ref], [first_ours], True
            return
        self.ref_reps = reps_for(first_ref, args.min_run)
        self.our_reps = reps_for(first_ours, args.min_run)
        self.run_s = max(run_seconds(first_ref, self.ref_reps),
                         run_seconds(first_ours, self.our_reps))
        short = self.run_s < WARM_UP_BELOW_S
        repeats = runs_for(args.repeats, args.budget, args.max_repeats, self.run_s)
        self.chunks = process_chunks(repeats, processes, short)
        if self.ref_reps == once and self.our_reps == once and not short:
            self.ref_runs, self.our_runs = [first_ref], [first_ours]

    def run_chunk(self, i):
        """The case's `i`th chunk of runs in the fresh process pair just started, after a
        discarded warm-up pair where a run is short (the first chunk's warm-up was
        `calibrate`'s pair)."""
        done = len(self.ref_runs)
        if i > 0 and self.run_s < WARM_UP_BELOW_S:
            warm_ref = timed(lambda: self.reference(self.ref_reps))
            warm_ours = timed(lambda: self.ours(self.our_reps))
            if "error" in warm_ref or "error" in warm_ours:
                # The case stops here; only a failed warm-up run is kept (for its error).
                self.ref_runs += [w for w in [warm_ref] if "error" in w]
                self.our_runs += [w for w in [warm_ours] if "error" in w]
                self.stopped = True
                return
        # The first chunk counts a kept calibration pair among its runs.
        self.interleaved(done, self.chunks[i] - (done if i == 0 else 0))


def run_rounds(args, cases, restart=None):
    """Runs every case of `cases` (`Case`) in rounds: round i runs the ith chunk of runs of
    every case that has one, each chunk in a fresh pair of processes (`restart`, which starts
    both sides anew), the first round calibrating each case first (`Case.calibrate`). A case's
    runs are so spread over the whole bench, up to `args.processes` rounds of it, not over one
    stretch of it: a slowdown of the host that lasts minutes (runs R and S in
    scripts/README.md) then falls on one or two of a case's chunks, not on all of them, and the
    best of the runs is a best over processes and over the bench's whole time. Without
    `restart` one process pair runs everything, the cases in order."""
    processes = args.processes if restart else 1
    for round_no in range(max(processes, 1)):
        for case in cases:
            if case.stopped or (round_no > 0 and round_no >= len(case.chunks)):
                continue
            if restart:
                restart()
            if round_no == 0:
                case.calibrate(args, processes)
                if case.stopped:
                    continue
            case.run_chunk(round_no)
            if round_no + 1 == len(case.chunks) or case.stopped:
                print(f"{case.name} {case.rows}: done after {len(case.our_runs)} runs",
                      file=sys.stderr)
    return cases


def summarize(runs):
    """Best and median of every timing over the runs, and the last run's other fields."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": next((r["error"] for r in runs if "error" in r), "no runs")}
    out = dict(good[-1])
    for phase in PHASES:
        for clock, suffix in (("wall", "_s"), ("cpu", "_cpu_s")):
            # A run whose CPU clock could not be read (null) counts for the wall clock only.
            values = [r[phase + suffix] for r in good
                      if isinstance(r.get(phase + suffix), (int, float))
                      and not math.isnan(r[phase + suffix])]
            out[f"{phase} {clock} best"] = min(values) if values else None
            out[f"{phase} {clock} median"] = statistics.median(values) if values else None
            out[f"{phase} {clock} runs"] = values
    out["runs"] = len(good)
    # The process of every run (a case's runs are spread over several, see `run_rounds`) and
    # when it started, in the order of the runs.
    out["pids"] = [r.get("pid") for r in good]
    out["at"] = [r.get("at") for r in good]
    return out


def ratios(ref, ours):
    """ours / reference for every phase and statistic (None when either is missing or 0), and,
    for runs saved with their per-run times, "cpu pair median": the median over the interleaved
    pairs of ours / reference in the same pair, which cancels a drift of the machine's speed
    that lasts longer than a pair."""
    out = {}
    for phase in PHASES:
        for stat in RATIOS:
            key = f"{phase} {stat}"
            a, b = ref.get(key), ours.get(key)
            out[key] = b / a if a and b and a > 0 and b > 0 else None
        a, b = ref.get(f"{phase} cpu runs"), ours.get(f"{phase} cpu runs")
        if a and b and len(a) == len(b) and min(a) > 0 and min(b) > 0:
            out[f"{phase} cpu pair median"] = statistics.median(y / x for x, y in zip(a, b))
    return out


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "–"


def markdown(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def tables(results, ref_name, extra=()):
    """The fit and predict tables. `results`: list of (case, rows, ref summary, our summary);
    `extra`: (header, fn(ref, ours) -> cell) columns appended to the fit table."""
    out = []
    for phase in PHASES:
        headers = ["case", "train rows", f"{ref_name} CPU s", "ours CPU s"] + \
                  [f"ratio {s}" for s in RATIOS]
        if phase == "fit":
            headers += [h for h, _ in extra]
        rows = []
        for case, n, ref, ours in results:
            if "error" in ref or "error" in ours:
                rows.append([case, n, ref.get("error", ""), ours.get("error", "")] +
                            [""] * (len(headers) - 4))
                continue
            rat = ratios(ref, ours)
            row = [case, n, fmt(ref[f"{phase} cpu best"], ".3g"),
                   fmt(ours[f"{phase} cpu best"], ".3g")]
            row += [fmt(rat[f"{phase} {s}"], ".2f") for s in RATIOS]
            if phase == "fit":
                row += [fn(ref, ours) for _, fn in extra]
            rows.append(row)
        out.append(f"**{phase}** (CPU seconds: best of the runs; ratio = ours / {ref_name})\n\n"
                   + markdown(headers, rows))
    return "\n\n".join(out)


def rmse_tables(results, ref_name, spec, extra=()):
    """tables() with the reference's RMSE and ours (format `spec`) as the first extra columns."""
    return tables(results, ref_name, extra=[
        (f"RMSE {ref_name}", lambda a, b: fmt(a.get("rmse"), spec)),
        ("RMSE ours", lambda a, b: fmt(b.get("rmse"), spec)),
        *extra,
    ])


def save(path, meta, results):
    with open(path, "w") as f:
        json.dump({"meta": meta, "results": [
            {"case": c, "rows": n, "reference": a, "ours": b} for c, n, a, b in results]}, f)


CPU_STATS = ("cpu best", "cpu median", "cpu pair median")


def compare(path_a, path_b, names=("A", "B")):
    """The CPU ratios (best, median, pair median) of two saved runs side by side with their
    relative difference, bold above 10 % (the tables of scripts/README.md), how many stayed
    within 10 %, and which side's own times moved (`own_times`). Exit status 1 if any CPU
    ratio differs by more than 10 %. Wall ratios are left out: they carry the machine's load."""
    with open(path_a) as f:
        a = json.load(f)
    with open(path_b) as f:
        b = json.load(f)
    headers = ["case", "train rows", "phase"]
    for stat in CPU_STATS:
        label = stat.replace("cpu ", "")
        headers += [f"{names[0]} {label}", f"{names[1]} {label}", "difference"]
    rows, within, total, worst = [], {stat: 0 for stat in CPU_STATS}, 0, 0.0
    for ra, rb in zip(a["results"], b["results"]):
        x, y = ratios(ra["reference"], ra["ours"]), ratios(rb["reference"], rb["ours"])
        for phase in PHASES:
            row = [ra["case"], ra["rows"], phase]
            for stat in CPU_STATS:
                u, v = x.get(f"{phase} {stat}"), y.get(f"{phase} {stat}")
                if u is None or v is None:
                    row += ["–"] * 3
                    continue
                diff = abs(v - u) / u
                worst = max(worst, diff)
                within[stat] += diff <= 0.10
                cell = f"{100 * diff:.1f} %"
                row += [f"{u:.2f}", f"{v:.2f}", cell if diff <= 0.10 else f"**{cell}**"]
            rows.append(row)
        total += len(PHASES)
    print(markdown(headers, rows))
    counts = ", ".join(f"{stat}: {n}/{total}" for stat, n in within.items())
    print(f"\nwithin 10 %: {sum(within.values())} of {total * len(CPU_STATS)}; {counts}; "
          f"largest difference {100 * worst:.1f} %")
    print("\nWhich side moved: each side's best CPU seconds in both runs\n")
    print(own_times(a["results"], b["results"], names))
    return 0 if worst <= 0.10 else 1


def own_times(results_a, results_b, names=("A", "B")):
    """Per case and phase, the reference's and our best CPU seconds in both runs and their
    relative differences, and how many of each side's stayed within 10 %: a ratio that moved
    between two runs moved because one side (or both) did."""
    rows, within = [], {"reference": 0, "ours": 0}
    for ra, rb in zip(results_a, results_b):
        for phase in PHASES:
            row = [ra["case"], ra["rows"], phase]
            for side in within:
                x, y = ra[side].get(f"{phase} cpu best"), rb[side].get(f"{phase} cpu best")
                if not x or not y:
                    row += ["–"] * 3
                    continue
                diff = (y - x) / x
                within[side] += abs(diff) <= 0.10
                row += [f"{x:.4g}", f"{y:.4g}", f"{100 * diff:+.1f} %"]
            rows.append(row)
    headers = ["case", "train rows", "phase"]
    for who in ("ref", "ours"):
        headers += [f"{who} {names[0]} s", f"{who} {names[1]} s", f"{who} change"]
    table = markdown(headers, rows)
    return (f"{table}\n\nbest CPU seconds within 10 % between the runs: reference "
            f"{within['reference']} of {len(rows)}, ours {within['ours']} of {len(rows)}")


def table(paths):
    """The tables of the saved runs `paths`, in order, and a line per run on how it ran."""
    results, ref_name = [], "ref"
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        meta = run["meta"]
        ref_name = "xgb" if meta["reference"].lower().startswith("xgboost") else "sklearn"
        print(f"{os.path.basename(path)}: {meta['reference']}, {meta['threads']} thread(s), "
              f"{meta['repeats']}-{meta.get('max_repeats', meta['repeats'])} interleaved runs "
              f"per side, load average before "
              f"{meta['load_before']}, after {meta['load_after']}")
        results += [(r["case"], r["rows"], r["reference"], r["ours"]) for r in run["results"]]
    spec = ".4e" if ref_name == "xgb" else ".4f"
    print()
    print(rmse_tables(results, ref_name, spec))
    return 0


def processes(path):
    """Per case, phase and side of a saved run: how many processes its runs were spread over
    and the best CPU seconds of each process in the order they ran, each with the minute of the
    bench its first run started (runs saved with their start times, `timed`), and how much
    slower than the fastest process the slowest was. A wide spread is a speed a process keeps
    for its life, or a slow stretch of the host: the minutes tell them apart, since every case
    in a slow stretch is slow at the same minutes."""
    with open(path) as f:
        run = json.load(f)
    starts = [t for r in run["results"] for side in ("reference", "ours")
              for t in r[side].get("at") or [] if t is not None]
    t0 = min(starts) if starts else None
    rows = []
    for r in run["results"]:
        for phase in PHASES:
            for side in ("reference", "ours"):
                times = r[side].get(f"{phase} cpu runs") or []
                pids = r[side].get("pids") or []
                ats = r[side].get("at") or [None] * len(pids)
                if not times or not (len(times) == len(pids) == len(ats)):
                    continue
                best, first = {}, {}
                for pid, t, at in zip(pids, times, ats):
                    best[pid] = min(t, best.get(pid, t))
                    first.setdefault(pid, at)
                cells = [f"{best[pid]:.4g}" + (f" @{(first[pid] - t0) / 60:.1f}"
                                              if first[pid] is not None and t0 else "")
                         for pid in best]
                bests = sorted(best.values())
                rows.append([r["case"], r["rows"], phase, side, len(times), len(bests),
                             " ".join(cells), f"{100 * (bests[-1] / bests[0] - 1):.1f} %"])
    print(markdown(["case", "train rows", "phase", "side", "runs", "processes",
                    "best CPU s of each process @ minute", "slowest ÷ fastest − 1"], rows))
    return 0


if __name__ == "__main__":
    if len(sys.argv) in (4, 6) and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3], sys.argv[4:] or ("A", "B")))
    if len(sys.argv) >= 3 and sys.argv[1] == "table":
        sys.exit(table(sys.argv[2:]))
    if len(sys.argv) == 3 and sys.argv[1] == "processes":
        sys.exit(processes(sys.argv[2]))
    sys.exit("usage: python3 scripts/bench_side.py compare A.json B.json [NAME_A NAME_B] | "
             "table RUN.json ... | processes RUN.json")
