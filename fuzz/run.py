"""Run the fuzz targets of ``targets.py`` for a bounded time.

    python fuzz/run.py --seconds 40          # split between the targets
    python fuzz/run.py --engine random       # without atheris

With atheris installed (``pip install atheris``) each target runs under
libFuzzer, coverage-guided, in a child process; without it a seeded random
mutator runs the same targets. A crash is saved under ``--artifacts`` and the
run exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run_atheris(target: str, seconds: int, artifacts: Path) -> None:
    import atheris

    with atheris.instrument_imports(include=["wsserver"]):
        import targets  # noqa: F401  (imports wsserver.protocol instrumented)
    from targets import TARGETS, seeds

    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    for index, seed in enumerate(seeds(target)):
        (corpus / f"seed{index}").write_bytes(seed)
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        "-rss_limit_mb=1024",
        "-max_len=4096",
        "-timeout=10",
        f"-artifact_prefix={artifacts}/{target}-",
        str(corpus),
    ]
    atheris.Setup(argv, TARGETS[target])
    atheris.Fuzz()


def _mutate(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.randrange(6)
        position = rng.randint(0, len(buffer))
        if choice == 0 and buffer:
            buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
        elif choice == 1:
            buffer[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 2 and buffer:
            del buffer[position : position + rng.randint(1, 16)]
        elif choice == 3 and buffer:
            buffer[rng.randrange(len(buffer))] = rng.choice((0, 0x7E, 0x7F, 0x80, 0xFF, 0x0D, 0x0A))
        elif choice == 4:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            buffer[position:position] = other[start : start + rng.randint(1, 64)]
        else:
            buffer = buffer[: rng.randint(0, len(buffer))]
    return bytes(buffer[:4096])


def _run_random(target: str, seconds: int, artifacts: Path) -> None:
    from targets import TARGETS, seeds

    function = TARGETS[target]
    pool = seeds(target)
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "0")) or None)
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        data = _mutate(rng.choice(pool), rng, pool)
        try:
            function(data)
        except BaseException:
            artifacts.mkdir(parents=True, exist_ok=True)
            crash = artifacts / f"{target}-crash-{runs}"
            crash.write_bytes(data)
            print(f"{target}: crash on input saved to {crash}", file=sys.stderr)
            raise
        runs += 1
        if runs % 64 == 0 and len(pool) < 512:
            pool.append(data)
    print(f"Done {runs} runs in {seconds} second(s)", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=40, help="total time, split between the targets")
    parser.add_argument("--engine", choices=["auto", "atheris", "random"], default="auto")
    parser.add_argument("--targets", default="frames,handshake")
    parser.add_argument("--artifacts", type=Path, default=Path("reports/fuzz"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") else "random"
    sys.path.insert(0, str(HERE))
    if args.child:
        (_run_atheris if engine == "atheris" else _run_random)(args.child, args.seconds, args.artifacts)
        return 0
    names = args.targets.split(",")
    share = max(1, args.seconds // len(names))
    failed = []
    for name in names:
        started = time.monotonic()
        command = [sys.executable, __file__, "--child", name, "--seconds", str(share),
                   "--engine", engine, "--artifacts", str(args.artifacts)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=share + 120)
        summary = [line for line in result.stderr.splitlines() if line.startswith("Done ")]
        took = time.monotonic() - started
        if result.returncode != 0:
            failed.append(name)
            print(f"fuzz {name} ({engine}): FAILED (exit {result.returncode}) after {took:.0f} s")
            print("\n".join(result.stderr.splitlines()[-60:]))
        else:
            print(f"fuzz {name} ({engine}): ok, {summary[-1] if summary else 'done'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
