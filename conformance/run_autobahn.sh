#!/usr/bin/env bash
# Run the Autobahn|TestSuite fuzzing client against wsserver and check the report.
#
# Usage: conformance/run_autobahn.sh [options] [-- extra server flags...]
# See conformance/README.md or --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: conformance/run_autobahn.sh [options] [-- extra flags for the server]

Installs Autobahn|TestSuite (Python 2.7) into .autobahn/site if needed, starts
`python -m wsserver --host 127.0.0.1 --port PORT [extra flags]` from src/,
runs `wstest -m fuzzingclient` against it, stops the server, and checks the
report with conformance/check_report.py (non-zero exit on any failing case).

Options:
  --cases LIST          comma-separated case patterns (default: 1.*,2.*,...,10.*)
  --exclude-cases LIST  comma-separated case patterns to skip (default: none)
  --url URL             test an already running server at URL (ws://127.0.0.1:PORT)
                        instead of starting one; extra server flags are then ignored
  --port PORT           port for the server we start (default: a free one)
  --timeout SECONDS     wall-clock limit for wstest (default: 900)
  --outdir DIR          report directory (default: reports/autobahn)
  --install-only        only make sure the test suite is installed, then exit
  -h, --help            show this help

Environment (each option above wins over its variable):
  AUTOBAHN_URL, AUTOBAHN_CASES, AUTOBAHN_EXCLUDE_CASES, AUTOBAHN_PORT,
  AUTOBAHN_TIMEOUT, AUTOBAHN_OUTDIR
  AUTOBAHN_STARTUP_TIMEOUT  seconds to wait for the server's port (default: 20)
  AUTOBAHN_PYTHON27         path of a Python 2.7 interpreter to use
  PYTHON                    Python 3 used for the server and the checker
                            (default: .venv/bin/python if present, else python3)
EOF
}

die() {
    echo "run_autobahn: error: $*" >&2
    exit 2
}

log() {
    echo "run_autobahn: $*" >&2
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF_DIR="$ROOT/conformance"
REQS="$CONF_DIR/requirements-py27.txt"
AB_DIR="$ROOT/.autobahn"
SITE="$AB_DIR/site"

DEFAULT_CASES="1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*"
CASES="${AUTOBAHN_CASES:-$DEFAULT_CASES}"
EXCLUDE_CASES="${AUTOBAHN_EXCLUDE_CASES:-}"
URL="${AUTOBAHN_URL:-}"
PORT="${AUTOBAHN_PORT:-}"
WSTEST_TIMEOUT="${AUTOBAHN_TIMEOUT:-900}"
STARTUP_TIMEOUT="${AUTOBAHN_STARTUP_TIMEOUT:-20}"
OUTDIR="${AUTOBAHN_OUTDIR:-$ROOT/reports/autobahn}"
if [[ -n "${PYTHON:-}" ]]; then
    PY3="$PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
    PY3="$ROOT/.venv/bin/python"
else
    PY3=python3
fi
INSTALL_ONLY=0
SERVER_ARGS=()

need_value() {
    [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --cases) need_value "$@"; CASES="$2"; shift 2 ;;
        --cases=*) CASES="${1#*=}"; shift ;;
        --exclude-cases) need_value "$@"; EXCLUDE_CASES="$2"; shift 2 ;;
        --exclude-cases=*) EXCLUDE_CASES="${1#*=}"; shift ;;
        --url) need_value "$@"; URL="$2"; shift 2 ;;
        --url=*) URL="${1#*=}"; shift ;;
        --port) need_value "$@"; PORT="$2"; shift 2 ;;
        --port=*) PORT="${1#*=}"; shift ;;
        --timeout) need_value "$@"; WSTEST_TIMEOUT="$2"; shift 2 ;;
        --timeout=*) WSTEST_TIMEOUT="${1#*=}"; shift ;;
        --outdir) need_value "$@"; OUTDIR="$2"; shift 2 ;;
        --outdir=*) OUTDIR="${1#*=}"; shift ;;
        --install-only) INSTALL_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; SERVER_ARGS=("$@"); break ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ "$WSTEST_TIMEOUT" =~ ^[0-9]+$ && "$WSTEST_TIMEOUT" -gt 0 ]] || die "--timeout must be a positive integer"
[[ "$STARTUP_TIMEOUT" =~ ^[0-9]+$ && "$STARTUP_TIMEOUT" -gt 0 ]] || die "AUTOBAHN_STARTUP_TIMEOUT must be a positive integer"
[[ -z "$PORT" || "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number"
[[ -n "$CASES" ]] || die "--cases must not be empty"
if [[ -n "$URL" && ${#SERVER_ARGS[@]} -gt 0 ]]; then
    log "warning: --url given, ignoring server flags: ${SERVER_ARGS[*]}"
fi
case "$OUTDIR" in
    /*) ;;
    *) OUTDIR="$PWD/$OUTDIR" ;;
esac

# --------------------------------------------------------------------------
# Python 2.7 + Autobahn|TestSuite
# --------------------------------------------------------------------------

is_py27() {
    [[ -n "$1" && -x "$1" ]] &&
        "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (2, 7) else 1)' >/dev/null 2>&1
}

find_python27() {
    local cand root
    local -a cands=()
    [[ -n "${AUTOBAHN_PYTHON27:-}" ]] && cands+=("$AUTOBAHN_PYTHON27")
    if command -v pyenv >/dev/null 2>&1; then
        root="$(pyenv root 2>/dev/null || true)"
        [[ -n "$root" ]] && cands+=("$root/versions/2.7.18/bin/python")
        cands+=("$(PYENV_VERSION=2.7.18 pyenv which python 2>/dev/null || true)")
        cands+=("$(pyenv which python2.7 2>/dev/null || true)")
    fi
    cands+=("${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python")
    cands+=("$(command -v python2.7 2>/dev/null || true)")
    for cand in "${cands[@]}"; do
        if is_py27 "$cand"; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}

# True if the test suite in $1 imports and runs.
suite_works() {
    PYTHONPATH="$1" PYTHONDONTWRITEBYTECODE=1 "$PY27" -c '
import zope.interface, twisted, OpenSSL, autobahn, autobahntestsuite
import autobahntestsuite.wstest, autobahntestsuite.fuzzing
' >/dev/null 2>&1
}

# Install the pinned requirements (minus lines matching $2, if given) into $1.
pip_install() {
    local target="$1" skip="${2:-}" reqs="$REQS" pip_log="$AB_DIR/pip-install.log"
    if [[ -n "$skip" ]]; then
        reqs="$AB_DIR/requirements-filtered.txt"
        grep -v -e "$skip" "$REQS" >"$reqs"
    fi
    rm -rf "$target"
    if ! "$PY27" -m pip install --disable-pip-version-check --no-input --no-deps \
        --target "$target" -r "$reqs" >"$pip_log" 2>&1; then
        log "pip install failed; last lines of $pip_log:"
        grep -v "is ignored: it is neither a file nor a directory" "$pip_log" | tail -n 25 >&2
        return 1
    fi
    # pip --target does not create the namespace package's __init__.py, and
    # Python 2 has no implicit namespace packages.
    if [[ -d "$target/zope" && ! -f "$target/zope/__init__.py" ]]; then
        echo "__path__ = __import__('pkgutil').extend_path(__path__, __name__)" >"$target/zope/__init__.py"
    fi
}

ensure_suite() {
    local want stamp="$SITE/.requirements.sha256" tmp
    want="$(sha256sum "$REQS" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && suite_works "$SITE"; then
        return 0
    fi
    mkdir -p "$AB_DIR"
    if ! "$PY27" -m pip --version >/dev/null 2>&1; then
        log "Python 2.7 has no pip; bootstrapping it with ensurepip"
        "$PY27" -m ensurepip --user >/dev/null 2>&1 || die "$PY27 has no pip and ensurepip failed"
    fi
    log "installing Autobahn|TestSuite into $SITE (takes a minute or so)"
    tmp="$AB_DIR/site.partial"
    if ! pip_install "$tmp" || ! suite_works "$tmp"; then
        log "retrying without the optional C accelerators (the 9.* cases will be slower)"
        pip_install "$tmp" "# *accelerator" || die "could not install Autobahn|TestSuite"
        suite_works "$tmp" || die "Autobahn|TestSuite installed but does not import; see $AB_DIR/pip-install.log"
    fi
    rm -rf "$SITE"
    mv "$tmp" "$SITE"
    echo "$want" >"$stamp"
    log "installed: $(PYTHONPATH="$SITE" "$PY27" -m autobahntestsuite.wstest --autobahnversion 2>/dev/null | tr '\n' ' ')"
}

PY27="$(find_python27)" || die "no Python 2.7 found (looked for pyenv 2.7.18, python2.7; set AUTOBAHN_PYTHON27)"
ensure_suite
if [[ "$INSTALL_ONLY" -eq 1 ]]; then
    log "test suite ready in $SITE"
    exit 0
fi

command -v "$PY3" >/dev/null 2>&1 || die "Python 3 interpreter '$PY3' not found (set PYTHON)"

# --------------------------------------------------------------------------
# Server under test
# --------------------------------------------------------------------------

SERVER_PID=""
SERVER_LOG="$OUTDIR/server.log"

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    local pid="$SERVER_PID" i
    SERVER_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        # The server runs in its own process group (setsid), so this also
        # reaches any worker processes it started.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "server did not stop on SIGTERM within 5 s; killing it"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

WSTEST_PID=""

cleanup() {
    if [[ -n "$WSTEST_PID" ]]; then
        # `timeout` passes the signal on to wstest.
        kill -TERM "$WSTEST_PID" 2>/dev/null || true
        wait "$WSTEST_PID" 2>/dev/null || true
        WSTEST_PID=""
    fi
    stop_server
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$PY3" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
'
}

port_open() {
    "$PY3" -c '
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
' "$1" 2>/dev/null
}

mkdir -p "$OUTDIR"
# Remove the previous run's results so a stale index.json can never pass.
rm -f "$OUTDIR"/index.json "$OUTDIR"/index.html "$OUTDIR"/*_case_*.json "$OUTDIR"/*_case_*.html \
    "$OUTDIR"/fuzzingclient.json "$OUTDIR"/wstest.log "$OUTDIR"/server.log

if [[ -z "$URL" ]]; then
    [[ -n "$PORT" ]] || PORT="$(free_port)"
    port_open "$PORT" && die "port $PORT is already in use"
    URL="ws://127.0.0.1:$PORT"
    log "starting: python -m wsserver --host 127.0.0.1 --port $PORT${SERVER_ARGS[*]:+ ${SERVER_ARGS[*]}} (log: $SERVER_LOG)"
    (
        cd "$ROOT"
        export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
        exec setsid "$PY3" -m wsserver --host 127.0.0.1 --port "$PORT" "${SERVER_ARGS[@]}"
    ) </dev/null >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    until port_open "$PORT"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server exited before accepting connections; its output:"
            tail -n 40 "$SERVER_LOG" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "server did not accept connections on port $PORT within ${STARTUP_TIMEOUT}s; its output:"
            tail -n 40 "$SERVER_LOG" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    log "server is up (pid $SERVER_PID)"
else
    log "testing the running server at $URL"
fi

# --------------------------------------------------------------------------
# Fuzzing client
# --------------------------------------------------------------------------

SPEC="$OUTDIR/fuzzingclient.json"
WSTEST_LOG="$OUTDIR/wstest.log"
"$PY3" - "$SPEC" "$URL" "$OUTDIR" "$CASES" "$EXCLUDE_CASES" <<'EOF'
import json
import sys

spec_path, url, outdir, cases, exclude = sys.argv[1:6]


def patterns(text):
    return [p.strip() for p in text.split(",") if p.strip()]


spec = {
    "outdir": outdir,
    "servers": [{"agent": "wsserver", "url": url}],
    "cases": patterns(cases),
    "exclude-cases": patterns(exclude),
    "exclude-agent-cases": {},
}
with open(spec_path, "w", encoding="utf-8") as f:
    json.dump(spec, f, indent=2)
    f.write("\n")
EOF

log "running wstest -m fuzzingclient (cases: $CASES${EXCLUDE_CASES:+; excluding: $EXCLUDE_CASES}; limit ${WSTEST_TIMEOUT}s)"
start=$SECONDS
wstest_rc=0
# Run in the background and `wait`, so that INT/TERM are handled at once (bash
# defers traps while a foreground child runs).
(
    cd "$OUTDIR"
    PYTHONPATH="$SITE" PYTHONUNBUFFERED=1 exec timeout --kill-after=10 "$WSTEST_TIMEOUT" \
        "$PY27" -m autobahntestsuite.wstest -m fuzzingclient -s "$SPEC"
) </dev/null >"$WSTEST_LOG" 2>&1 &
WSTEST_PID=$!
wait "$WSTEST_PID" || wstest_rc=$?
WSTEST_PID=""
elapsed=$((SECONDS - start))

if [[ "$wstest_rc" -eq 124 || "$wstest_rc" -eq 137 ]]; then
    log "wstest did not finish within ${WSTEST_TIMEOUT}s; last lines of $WSTEST_LOG:"
    tail -n 10 "$WSTEST_LOG" >&2 || true
    exit 1
elif [[ "$wstest_rc" -ne 0 ]]; then
    log "wstest exited with status $wstest_rc; last lines of $WSTEST_LOG:"
    tail -n 30 "$WSTEST_LOG" >&2 || true
    exit 1
fi
log "wstest finished in ${elapsed}s (log: $WSTEST_LOG)"

if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "warning: the server exited during the run; last lines of $SERVER_LOG:"
    tail -n 20 "$SERVER_LOG" >&2 || true
fi
stop_server

# wstest stops early (and still writes a report) if it cannot connect, e.g.
# because the server crashed: compare against the number of cases it planned.
expected="$(sed -n 's/^Ok, will run \([0-9][0-9]*\) test cases.*/\1/p' "$WSTEST_LOG" | head -n 1)"
[[ -n "$expected" ]] || { log "could not read the planned case count from $WSTEST_LOG"; tail -n 30 "$WSTEST_LOG" >&2; exit 1; }
if grep -q "^Connection to .* failed" "$WSTEST_LOG"; then
    log "wstest could not connect: $(grep -m1 "^Connection to .* failed" "$WSTEST_LOG")"
fi

exec "$PY3" "$CONF_DIR/check_report.py" --expected "$expected" "$OUTDIR/index.json"
