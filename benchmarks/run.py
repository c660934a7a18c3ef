#!/usr/bin/env python3
"""Benchmark wsserver against other WebSocket servers, side by side.

One command (from the repository root):

    python3 benchmarks/run.py                 # full run, writes benchmarks/RESULTS.md
    python3 benchmarks/run.py --quick         # 1 repetition, short windows
    python3 benchmarks/run.py --quick --servers wsserver,picows --scenarios pipe-small

It installs the peers into .peers/ (git-ignored), builds the C load client and
the C echo server into benchmarks/.build/, builds and installs OUR server from
a copy of the working tree into the same venv, then for every scenario and
repetition starts a fresh server process pinned to one core and drives it with
the load client pinned to the other core. See benchmarks/README.md.

Only the standard library is used here; run it with any Python >= 3.8.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = ROOT / ".peers"
VENV = PEERS / "venv"
VPY = VENV / "bin" / "python"
NODE_DIR = PEERS / "node"
BUILD = BENCH / ".build"
RESULTS_DIR = BENCH / "results"
SERVERS_DIR = BENCH / "servers"

NODE_PEERS = ["ws@8.23.0", "bufferutil@4.1.0"]

# name -> how to start it. "peer": compared with wsserver; "python": counts
# as a Python peer (rr-small compares wsserver with the best Python peer).
SERVERS = {
    "wsserver": {"label": "wsserver", "kind": "ours"},
    "websockets": {"label": "websockets", "kind": "python"},
    "aiohttp": {"label": "aiohttp", "kind": "python"},
    "picows": {"label": "picows", "kind": "python"},
    "node-ws": {"label": "Node ws", "kind": "node"},
    "cecho": {"label": "C echo (evidence)", "kind": "evidence"},
}
PEER_NAMES = ["websockets", "aiohttp", "picows", "node-ws"]
PYTHON_PEERS = ["websockets", "aiohttp", "picows"]

HIGHER, LOWER = "higher", "lower"

# Each scenario: load client arguments and the metrics shown in the tables:
# (json key, label, better, compare_with) where compare_with is "all" peers,
# "python" peers only.
SCENARIOS = [
    {
        "name": "rr-small",
        "what": "request/response, 1 connection, 64 B binary, 1 in flight",
        "args": ["--scenario", "echo", "--conns", "1", "--inflight", "1", "--size", "64", "--busy-poll", "1"],
        "metrics": [
            ("msgs_per_s", "msgs/s", HIGHER, "python"),
            ("lat_p50_us", "latency p50 (µs)", LOWER, "python"),
            ("lat_p99_us", "latency p99 (µs)", LOWER, "python"),
        ],
    },
    {
        "name": "pipe-small",
        "what": "64 connections x 64 in flight x 64 B binary",
        "args": ["--scenario", "echo", "--conns", "64", "--inflight", "64", "--size", "64"],
        "metrics": [("msgs_per_s", "msgs/s", HIGHER, "all")],
    },
    {
        "name": "pipe-small-text",
        "what": "64 connections x 64 in flight x 64 B text (ASCII)",
        "args": ["--scenario", "echo", "--conns", "64", "--inflight", "64", "--size", "64", "--text"],
        "metrics": [("msgs_per_s", "msgs/s", HIGHER, "all")],
    },
    {
        "name": "pipe-large",
        "what": "4 connections x 4 in flight x 256 KiB binary",
        "args": ["--scenario", "echo", "--conns", "4", "--inflight", "4", "--size", str(256 * 1024)],
        "metrics": [("mb_per_s", "MB/s echoed", HIGHER, "all")],
    },
    {
        "name": "connect",
        "what": "32 in flight: connect, handshake, echo 64 B, close handshake",
        "args": ["--scenario", "connect", "--concurrency", "32"],
        "metrics": [("handshakes_per_s", "handshakes/s", HIGHER, "all")],
    },
    {
        "name": "idle",
        "what": "5,000 idle connections (handshake + one echo each): server RSS growth",
        "args": ["--scenario", "idle", "--conns", "5000", "--idle-warm", "100", "--concurrency", "64"],
        "untimed": True,
        "metrics": [("kib_per_conn", "RSS KiB per connection", LOWER, "all")],
    },
    {
        "name": "broadcast",
        "what": "500 clients on /broadcast, one sends 64 B, server sends it to all 500; one round at a time",
        "args": ["--scenario", "broadcast", "--path", "/broadcast", "--conns", "500", "--concurrency", "64",
                 "--max-rounds", "20000"],
        "metrics": [
            ("deliveries_per_s", "deliveries/s", HIGHER, "all"),
            ("fanout_p50_us", "fan-out p50 (µs)", LOWER, "all"),
        ],
    },
]
SCENARIO_NAMES = [s["name"] for s in SCENARIOS]


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd, **kw):
    log("+ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


# --------------------------------------------------------------------------
# setup: peers, C programs, our server
# --------------------------------------------------------------------------

def install_python_peers() -> None:
    req = BENCH / "requirements-peers.txt"
    stamp = VENV / ".bench-requirements"
    if stamp.exists() and stamp.read_text() == req.read_text() and VPY.exists():
        return
    if not VPY.exists():
        run([sys.executable, "-m", "venv", VENV])
        run([VPY, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([VPY, "-m", "pip", "install", "-q", "-r", req])
    stamp.write_text(req.read_text())


def install_node_peers() -> None:
    stamp = NODE_DIR / ".bench-packages"
    want = " ".join(NODE_PEERS)
    if stamp.exists() and stamp.read_text() == want:
        return
    if not shutil.which("npm"):
        raise SystemExit("npm not found: Node.js 18+ with npm is needed for the Node ws peer")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", NODE_DIR, *NODE_PEERS])
    stamp.write_text(want)


def build_c() -> None:
    BUILD.mkdir(parents=True, exist_ok=True)
    for name in ("loadclient", "cecho"):
        src, out = BENCH / f"{name}.c", BUILD / name
        hdr = BENCH / "wscommon.h"
        if out.exists() and out.stat().st_mtime > max(src.stat().st_mtime, hdr.stat().st_mtime):
            continue
        run(["gcc", "-O2", "-Wall", "-o", out, src])


def install_wsserver(mode: str) -> dict:
    """Build + install OUR server from a copy of the working tree into the venv.

    The copy keeps build artefacts out of the repository. Returns a dict with
    how wsserver is run (env) and whether its C accelerator loaded.
    """
    info = {"available": False, "env": {}, "note": ""}
    if mode == "src":
        env = {"PYTHONPATH": str(ROOT / "src")}
    else:
        copy = BUILD / "wsserver-src"
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir(parents=True)
        for f in ("pyproject.toml", "setup.py", "setup.cfg", "README.md", "MANIFEST.in", "LICENSE"):
            if (ROOT / f).exists():
                shutil.copy2(ROOT / f, copy / f)
        shutil.copytree(ROOT / "src", copy / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "*.pyc"))
        try:
            log(f"+ building and installing wsserver from a copy of the working tree ({copy.relative_to(ROOT)})")
            subprocess.run([str(VPY), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                            "--force-reinstall", str(copy)], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            info["note"] = "pip install of the working tree failed: " + (exc.stderr or "").strip()[-500:]
            return info
        env = {}
    probe = ("import wsserver, importlib.util as u; wsserver.Server; wsserver.run; "
             "print(getattr(wsserver, '__version__', '?')); "
             "print(bool(u.find_spec('wsserver.protocol._speedups')))")
    p = subprocess.run([str(VPY), "-c", probe], capture_output=True, text=True, cwd=str(BUILD),
                       env={**os.environ, **env})
    if p.returncode != 0:
        info["note"] = "import failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
        return info
    version, speedups = p.stdout.split()
    info.update(available=True, env=env, version=version, speedups=speedups == "True")
    return info


def server_cmd(name: str) -> list:
    if name == "cecho":
        return [BUILD / "cecho"]
    if name == "node-ws":
        return ["node", SERVERS_DIR / "ws_server.js"]
    script = {"wsserver": "wsserver_server.py", "websockets": "websockets_server.py",
              "aiohttp": "aiohttp_server.py", "picows": "picows_server.py"}[name]
    return [VPY, SERVERS_DIR / script]


def versions(ws_info: dict) -> dict:
    v = {}
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        "for p in ['websockets', 'aiohttp', 'picows', 'uvloop', 'httptools', 'aiofastnet']:\n"
        "    try:\n"
        "        out[p] = m.version(p)\n"
        "    except Exception:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    p = subprocess.run([str(VPY), "-c", code], capture_output=True, text=True)
    if p.returncode == 0:
        v.update(json.loads(p.stdout))
    env = {**os.environ, "NODE_PATH": str(NODE_DIR / "node_modules")}
    for pkg in ("ws", "bufferutil"):
        p = subprocess.run(["node", "-p", f"require('{pkg}/package.json').version"], capture_output=True,
                           text=True, env=env)
        v[f"node {pkg}"] = p.stdout.strip() or "?"
    v["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    v["gcc"] = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    if ws_info.get("available"):
        v["wsserver"] = ws_info.get("version", "?")
    return v


def git_head() -> str:
    """Commit of the working tree, read from .git without running git."""
    try:
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            f = ROOT / ".git" / ref
            if f.exists():
                return f.read_text().strip()[:12]
            packed = ROOT / ".git" / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0][:12]
            return "?"
        return head[:12]
    except OSError:
        return "?"


def machine() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release()}


# --------------------------------------------------------------------------
# running one measurement
# --------------------------------------------------------------------------

def cpu_busy_jiffies() -> int:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts[:8]]  # user nice system idle iowait irq softirq steal
    return sum(vals) - vals[3] - vals[4]


def proc_cpu_jiffies(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return 0


def listening(port: int) -> bool:
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == "0A":
                        return True
        except OSError:
            pass
    return False


_port = [random.randint(21000, 29000)]


def next_port() -> int:
    for _ in range(1000):
        _port[0] = 21000 + (_port[0] - 21000 + 1) % 9000
        if not listening(_port[0]):
            return _port[0]
    raise RuntimeError("no free port")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(server: str, scenario: dict, rep: int, opts, ws_env: dict) -> dict:
    port = next_port()
    logdir = RESULTS_DIR / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    logfile = logdir / f"{server}-{scenario['name']}-{rep}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if server == "node-ws":
        env["NODE_PATH"] = str(NODE_DIR / "node_modules")
    if server == "wsserver":
        env.update(ws_env)
    cmd = [*opts.prefix, "taskset", "-c", str(opts.server_cpu), *server_cmd(server),
           "--host", "127.0.0.1", "--port", str(port)]
    res = {"server": server, "scenario": scenario["name"], "rep": rep}
    with open(logfile, "w") as lf:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=lf, stderr=subprocess.STDOUT, env=env,
                                cwd=str(BENCH), start_new_session=True)
        try:
            t0 = time.monotonic()
            while not listening(port):
                if proc.poll() is not None:
                    res["error"] = f"server exited with {proc.returncode} before listening (see {logfile})"
                    return res
                if time.monotonic() - t0 > 30:
                    res["error"] = "server not listening after 30 s"
                    return res
                time.sleep(0.02)
            time.sleep(0.1)
            timed = not scenario.get("untimed")
            settle = opts.settle if scenario["name"] == "idle" else opts.bc_settle
            client = [*opts.prefix, "taskset", "-c", str(opts.client_cpu), BUILD / "loadclient", "--port", str(port),
                      "--server-pid", str(proc.pid), *scenario["args"],
                      "--warmup", str(opts.warmup), "--duration", str(opts.duration), "--settle", str(settle)]
            hard = opts.warmup + opts.duration + 2 * settle + (90 if not timed else 40)
            client += ["--timeout", str(hard)]
            busy0, srv0 = cpu_busy_jiffies(), proc_cpu_jiffies(proc.pid)
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            w0 = time.monotonic()
            try:
                p = subprocess.run([str(c) for c in client], capture_output=True, text=True, timeout=hard + 15)
            except subprocess.TimeoutExpired:
                res["error"] = "load client timed out"
                return res
            wall = time.monotonic() - w0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            busy1, srv1 = cpu_busy_jiffies(), proc_cpu_jiffies(proc.pid)
            hz = os.sysconf("SC_CLK_TCK")
            cl = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
            other = (busy1 - busy0) / hz - (srv1 - srv0) / hz - cl
            res["other_cpu_pct"] = round(max(0.0, 100 * other / wall), 1) if wall > 0 else None
            line = (p.stdout.strip().splitlines() or [""])[-1]
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                res["error"] = f"load client exit {p.returncode}: {p.stderr.strip()[:300]}"
                return res
            data.pop("scenario", None)
            err = data.pop("error", "")
            res.update(data)
            if not data.get("ok") or p.returncode != 0:
                res["error"] = err or f"load client exit {p.returncode}"
            if proc.poll() is not None:
                res.setdefault("error", f"server died (exit {proc.returncode})")
            return res
        finally:
            stop(proc)


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def fmt(v: float | None) -> str:
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def summarize(results: list, server: str, scen: str, key: str):
    vals = [r[key] for r in results if r["server"] == server and r["scenario"] == scen
            and "error" not in r and r.get(key) is not None]
    errs = [r for r in results if r["server"] == server and r["scenario"] == scen and "error" in r]
    if not vals:
        return None, errs
    return (statistics.median(vals), min(vals), max(vals), len(vals)), errs


def cell(summary, errs) -> str:
    if summary is None:
        return "ERR" if errs else "–"
    med, lo, hi, n = summary
    s = fmt(med) if n == 1 else f"{fmt(med)} ({fmt(lo)}–{fmt(hi)})"
    if errs:
        s += f" [{len(errs)} failed]"
    return s


def best_of(results, names, scen, key, better):
    best = None
    for n in names:
        s, _ = summarize(results, n, scen, key)
        if s is None:
            continue
        if best is None or (s[0] > best[1] if better == HIGHER else s[0] < best[1]):
            best = (n, s[0])
    return best


def report(results, servers, scenarios, opts, meta) -> str:
    shown = [s for s in servers if s != "cecho"]
    L = []
    L.append("# wsserver benchmark results")
    L.append("")
    L.append(f"- Date: {meta['date']} (total run time {meta['elapsed_min']:.1f} min)")
    L.append(f"- Command: `{meta['command']}`")
    m = meta["machine"]
    L.append(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, Linux {m['kernel']}; "
             f"server pinned to CPU {opts.server_cpu} (`taskset -c {opts.server_cpu}`), "
             f"load client pinned to CPU {opts.client_cpu}; both run with "
             + {"fifo": "real-time priority (`chrt -f 10`)", "nice": "`nice -n -10`", "none": "normal scheduling"}[opts.sched])
    v = meta["versions"]
    vs = [f"Python {v.get('python', '?')}", f"uvloop {v.get('uvloop', '?')}",
          f"websockets {v.get('websockets', '?')}", f"aiohttp {v.get('aiohttp', '?')}",
          f"picows {v.get('picows', '?')}" + (f" (with aiofastnet {v['aiofastnet']})" if "aiofastnet" in v else ""),
          f"Node {v.get('node', '?')} + ws {v.get('node ws', '?')} + bufferutil {v.get('node bufferutil', '?')}",
          f"gcc {v.get('gcc', '?')}"]
    L.append("- Peers: " + ", ".join(vs))
    ws = meta["wsserver"]
    if ws.get("available"):
        L.append(f"- wsserver {ws.get('version', '?')} (working tree at commit {meta['git']}, "
                 f"C accelerator {'loaded' if ws.get('speedups') else 'NOT loaded'}, "
                 f"{'installed from a copy of the working tree' if opts.wsserver == 'install' else 'run from src/'})")
    else:
        L.append(f"- wsserver: not measured ({ws.get('note') or 'not selected'})")
    L.append(f"- Method: fresh server process per repetition; {opts.reps} repetition(s) per server and scenario, "
             f"servers interleaved; timed scenarios: {opts.warmup:g} s warm-up then {opts.duration:g} s measured; "
             f"values are median (min–max) over the repetitions.")
    oth = [r["other_cpu_pct"] for r in results if r.get("other_cpu_pct") is not None]
    if oth:
        L.append(f"- Background CPU use by other processes during the runs (both cores, % of one core): "
                 f"median {statistics.median(oth):.0f} %, max {max(oth):.0f} %"
                 + ((" — the machine was shared with other work"
                     + ("; server and client ran at real-time priority, so the others mostly got the time they "
                        "left idle." if opts.sched == "fifo" else "; treat the numbers with care."))
                    if statistics.median(oth) > 15 else "."))
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("Ratio = wsserver ÷ best peer (the best peer is named). For *higher is better* metrics a ratio "
             "above 1 means wsserver is faster; for *lower is better* metrics a ratio below 1 means wsserver is "
             "better. rr-small compares with the best Python peer only.")
    L.append("")
    hdr = ["scenario", "metric"] + [SERVERS[s]["label"] for s in shown] + ["wsserver ÷ best peer"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for sc in scenarios:
        for key, label, better, cmp_with in sc["metrics"]:
            row = [sc["name"], f"{label} ({better} is better)"]
            for s in shown:
                row.append(cell(*summarize(results, s, sc["name"], key)))
            ratio = "–"
            ours, _ = summarize(results, "wsserver", sc["name"], key)
            pool = PYTHON_PEERS if cmp_with == "python" else PEER_NAMES
            best = best_of(results, [p for p in pool if p in shown], sc["name"], key, better)
            if ours and best and best[1]:
                ratio = f"**{ours[0] / best[1]:.2f}** vs {SERVERS[best[0]]['label']}"
                if sc["name"] == "idle" and "node-ws" in shown and best[0] != "node-ws":
                    nws, _ = summarize(results, "node-ws", sc["name"], key)
                    if nws and nws[0]:
                        ratio += f"; {ours[0] / nws[0]:.2f} vs Node ws"
            row.append(ratio)
            L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Scenarios:")
    L.append("")
    for sc in scenarios:
        L.append(f"- **{sc['name']}**: {sc['what']}.")
    L.append("")

    # evidence
    L.append("## Load client evidence")
    L.append("")
    L.append("The same load client against `benchmarks/cecho.c`, a trivial single-threaded epoll echo/broadcast "
             "server in C, on the same cores. If the client could only generate the load the peers reach, "
             "the C server could not go far beyond them. CPU columns: median CPU use of the server process "
             "and of the load client during the measured window (100 % = one core). rr-small's client spins "
             "on `epoll_wait` (busy-poll, to lower its own wake-up latency), so its client CPU is 100 % by design.")
    L.append("")
    if "cecho" in servers:
        L.append("| scenario | metric | C echo server | best measured server (not C) | C ÷ best |")
        L.append("|---|---|---|---|---|")
        for sc in scenarios:
            if sc.get("untimed"):
                continue  # idle measures server memory, not load generation
            key, label, better, _ = sc["metrics"][0]
            c, cerr = summarize(results, "cecho", sc["name"], key)
            best = best_of(results, shown, sc["name"], key, better)
            bl = f"{fmt(best[1])} ({SERVERS[best[0]]['label']})" if best else "–"
            ratio = f"{c[0] / best[1]:.1f}×" if c and best and best[1] else "–"
            L.append(f"| {sc['name']} | {label} | {cell(c, cerr)} | {bl} | {ratio} |")
        L.append("")
        L.append("Reading it: in the pipelined scenarios and in connect the C server goes well beyond every "
                 "real server with the same client, so the client is not what limits them. Two scenarios "
                 "have a ceiling that is not the server's:")
        L.append("")
        L.append("- rr-small: one message in flight measures the kernel's loopback round trip and the vCPU "
                 "wake-up of the server; the C server is barely faster than the Python servers, and a "
                 "server that stays busy slightly longer after replying can even show a lower p50 (the "
                 "next request finds it awake). Differences of a few µs are noise here.")
        L.append("- broadcast: every delivery costs one `send` in the server and one `recv` in the client "
                 "(one round at a time leaves nothing to batch). The C server and the client both sit near "
                 "100 % of their core at the C server's figure, which is therefore the ceiling of this "
                 "scenario on this machine; servers close to it are compressed against it.")
        L.append("")
    L.append("CPU use during the measured window, server % / client % (median):")
    L.append("")
    hdr = ["scenario"] + [SERVERS[s]["label"] for s in servers]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for sc in scenarios:
        row = [sc["name"]]
        for s in servers:
            sv, _ = summarize(results, s, sc["name"], "server_cpu_pct")
            cl, _ = summarize(results, s, sc["name"], "client_cpu_pct")
            row.append(f"{sv[0]:.0f} / {cl[0]:.0f}" if sv and cl else "–")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    fails = [r for r in results if "error" in r]
    if fails:
        L.append("## Failed repetitions")
        L.append("")
        for r in fails:
            L.append(f"- {r['server']} / {r['scenario']} rep {r['rep']}: {r['error']}")
        L.append("")
    L.append("Raw results (every repetition, JSON): `" + str(meta["raw"].relative_to(ROOT)) + "` "
             "(git-ignored). How to run and what each scenario measures: `benchmarks/README.md`.")
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def report_only(raw: Path, opts) -> int:
    data = json.loads(raw.read_text())
    meta, results = data["meta"], data["results"]
    saved = meta.get("opts", {})
    defaults = {"reps": 3, "warmup": 1.0, "duration": 4.0, "settle": 2.0, "sched": "fifo", "wsserver": "install",
                "server_cpu": 0, "client_cpu": 1, "quick": False}
    for k, v in defaults.items():
        setattr(opts, k, saved.get(k, v))
    meta["raw"] = raw.resolve()
    meta.setdefault("elapsed_min", 0.0)
    present = {r["server"] for r in results}
    servers = [s for s in SERVERS if s in present]
    scen = {r["scenario"] for r in results}
    scenarios = [s for s in SCENARIOS if s["name"] in scen]
    out = Path(opts.output) if opts.output else (
        RESULTS_DIR / "RESULTS-quick.md" if opts.quick else BENCH / "RESULTS.md")
    md = report(results, servers, scenarios, opts, meta)
    out.write_text(md)
    log(md)
    log(f"written: {out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repetition, short windows (for iteration)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma list from: " + ",".join(SERVERS))
    ap.add_argument("--scenarios", default=",".join(SCENARIO_NAMES), help="comma list from: " + ",".join(SCENARIO_NAMES))
    ap.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds (default 1, quick 0.5)")
    ap.add_argument("--duration", type=float, help="measured seconds (default 4, quick 1.5)")
    ap.add_argument("--settle", type=float, help="idle: settle seconds before each RSS reading (default 2, quick 1)")
    ap.add_argument("--bc-settle", type=float, default=0.5, help="broadcast: pause after connecting (default 0.5)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--wsserver", choices=["install", "src"], default="install",
                    help="install: build+install a copy of the working tree into .peers/venv (default); "
                         "src: run it from src/ with PYTHONPATH (uses whatever is built in place)")
    ap.add_argument("--sched", choices=["fifo", "nice", "none"], default="fifo",
                    help="scheduling of server and client: fifo = SCHED_FIFO priority 10 via chrt (default; keeps "
                         "other processes on a shared machine from disturbing the measurement), nice = nice -10, "
                         "none = normal")
    ap.add_argument("--no-install", action="store_true", help="do not install/check peers")
    ap.add_argument("--output", help="Markdown output (default benchmarks/RESULTS.md; quick: benchmarks/results/RESULTS-quick.md)")
    ap.add_argument("--report-from", metavar="RAW_JSON",
                    help="only rewrite the Markdown report from a raw-*.json file of an earlier run")
    opts = ap.parse_args()
    if opts.report_from:
        return report_only(Path(opts.report_from), opts)
    if opts.reps is None:
        opts.reps = 1 if opts.quick else 3
    if opts.warmup is None:
        opts.warmup = 0.5 if opts.quick else 1.0
    if opts.duration is None:
        opts.duration = 1.5 if opts.quick else 4.0
    if opts.settle is None:
        opts.settle = 1.0 if opts.quick else 2.0
    servers = [s.strip() for s in opts.servers.split(",") if s.strip()]
    for s in servers:
        if s not in SERVERS:
            ap.error(f"unknown server {s!r}")
    servers = [s for s in SERVERS if s in servers]  # canonical order
    scen_names = [s.strip() for s in opts.scenarios.split(",") if s.strip()]
    for s in scen_names:
        if s not in SCENARIO_NAMES:
            ap.error(f"unknown scenario {s!r}")
    scenarios = [s for s in SCENARIOS if s["name"] in scen_names]
    output = Path(opts.output) if opts.output else (
        RESULTS_DIR / "RESULTS-quick.md" if opts.quick else BENCH / "RESULTS.md")

    for tool in ("taskset", "gcc", "node"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    if os.cpu_count() and max(opts.server_cpu, opts.client_cpu) >= os.cpu_count():
        raise SystemExit("not enough CPUs for --server-cpu/--client-cpu")

    # file descriptors for 5,000+ connections (inherited by servers and client)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, max(hard, want)), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 12000 and "idle" in scen_names:
        log("warning: RLIMIT_NOFILE < 12000; the idle scenario may fail (raise `ulimit -n`)")

    opts.prefix = {"fifo": ["chrt", "-f", "10"], "nice": ["nice", "-n", "-10"], "none": []}[opts.sched]
    if opts.prefix and subprocess.run([*opts.prefix, "true"], capture_output=True).returncode != 0:
        log(f"warning: cannot use --sched {opts.sched} here (needs root or CAP_SYS_NICE); using normal scheduling")
        opts.sched, opts.prefix = "none", []

    started = time.monotonic()
    if not opts.no_install:
        install_python_peers()
        install_node_peers()
    build_c()
    ws_info = {"available": False, "note": "not selected"}
    if "wsserver" in servers:
        ws_info = install_wsserver(opts.wsserver)
        if not ws_info["available"]:
            log(f"wsserver is not measured: {ws_info['note']}")
            servers.remove("wsserver")
        else:
            log(f"wsserver {ws_info['version']} ready (C accelerator: {ws_info['speedups']})")

    meta = {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(["python3 benchmarks/run.py", *sys.argv[1:]]),
        "machine": machine(),
        "versions": versions(ws_info),
        "wsserver": {k: v for k, v in ws_info.items() if k != "env"},
        "git": git_head(),
        "opts": {k: getattr(opts, k) for k in ("reps", "warmup", "duration", "settle", "sched", "wsserver",
                                                 "server_cpu", "client_cpu", "quick")},
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"raw-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}{'-quick' if opts.quick else ''}.json"
    meta["raw"] = raw

    # quiet-machine check
    b0, t0 = cpu_busy_jiffies(), time.monotonic()
    time.sleep(1.0)
    idle_busy = 100 * (cpu_busy_jiffies() - b0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
    log(f"machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores; CPU busy before start: {idle_busy:.0f} %")
    if idle_busy > 10:
        log("warning: the machine is not idle; results will be noisy")

    if opts.sched == "fifo":
        # keep this orchestrator (mostly asleep) from waiting behind other work between runs
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(5))
        except (OSError, AttributeError):
            pass

    results = []
    total = len(scenarios) * opts.reps * len(servers)
    i = 0
    for sc in scenarios:
        for rep in range(1, opts.reps + 1):
            order = servers[(rep - 1) % len(servers):] + servers[:(rep - 1) % len(servers)]
            for s in order:
                i += 1
                r = measure(s, sc, rep, opts, ws_info.get("env", {}))
                results.append(r)
                key = sc["metrics"][0][0]
                if "error" in r:
                    msg = "ERROR " + r["error"]
                else:
                    msg = f"{sc['metrics'][0][1]} {fmt(r.get(key))}"
                    if len(sc["metrics"]) > 1:
                        msg += "".join(f", {lab} {fmt(r.get(k))}" for k, lab, _, _ in sc["metrics"][1:])
                    msg += (f"  [server {r.get('server_cpu_pct', 0):.0f}% client {r.get('client_cpu_pct', 0):.0f}%"
                            f" other {r.get('other_cpu_pct') or 0:.0f}%]")
                log(f"[{i}/{total}] {sc['name']} rep {rep} {s}: {msg}")
                raw.write_text(json.dumps({"meta": {**meta, "raw": str(raw)}, "results": results}, indent=1))

    meta["elapsed_min"] = (time.monotonic() - started) / 60
    md = report(results, servers, scenarios, opts, meta)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(md)
    raw.write_text(json.dumps({"meta": {**meta, "raw": str(raw)}, "results": results}, indent=1))
    log("")
    log(md)
    log(f"written: {output}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
