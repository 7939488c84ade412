"""``make profile``: where korder's processes spend their CPU under a sustained load.

Starts the same system as ``make bench`` (:func:`bench.suite.korder_system`), offers
orders at a fixed rate (direct creates, as the bench's sustained load, or through the
façade with ``--facade``) and samples the operator and the façade with py-spy while
they work. py-spy reads the stacks from outside the process, so the profiled code
runs unchanged and its own timing is barely disturbed (a tracing profiler such as
pyinstrument would run inside and slow the hot path it measures).

From the raw stacks it prints, per process:

- the functions with the most *own* samples (where the CPU actually goes), and the
  same summed by the library the innermost frame is in;
- the share of samples *under* each library or package of ours (a frame of the
  package anywhere in the stack), which is what "the top costs" means for a
  decision: JSON parsing, pydantic validation, Kopf's machinery, the HTTP clients.

The raw stacks stay in ``bench-results/profile/`` for a flame graph
(``py-spy`` writes the collapsed format that flamegraph.pl and speedscope read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import apiserver, suite

OUT = apiserver.RESULTS / "profile"
#: A frame as py-spy's raw format writes it: ``function (path/to/file.py:line)``.
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")
#: The groups a sample is counted under when any frame of its stack is in one. Order
#: matters only for the printout.
GROUPS: dict[str, tuple[str, ...]] = {
    "korder.domain (the saga, the models)": ("korder/domain/",),
    "korder.operator + korder.kube": ("korder/operator/", "korder/kube/"),
    "korder.participant_clients": ("korder/participant_clients/",),
    "korder.api": ("korder/api/",),
    "pydantic (validation, dumps)": ("pydantic/", "pydantic_core/"),
    "kopf": ("kopf/",),
    "lightkube": ("lightkube/",),
    # lightkube's httpx2 has its own httpcore2; anyio is both clients' I/O layer.
    "HTTP clients (httpx, httpcore, h11, anyio)": (
        *("httpx/", "httpcore/", "h11/", "h2/", "httpx2/", "httpcore2/", "anyio/"),
    ),
    "aiohttp": ("aiohttp/",),
    "json (stdlib)": ("json/",),
    "logging": ("logging/", "pythonjsonlogger/"),
    "prometheus_client": ("prometheus_client/",),
    "asyncio (the event loop itself)": ("asyncio/", "uvloop/"),
    "ssl": ("ssl.py",),
}


def parse(raw: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """py-spy's raw output: one line a stack, ``frame;frame;... count``, root first."""
    stacks = []
    for line in raw.read_text().splitlines():
        path, _, count = line.rpartition(" ")
        if not path or not count.isdigit():
            continue
        frames = []
        for frame in path.split(";"):
            m = FRAME.match(frame)
            frames.append((m["function"], m["file"]) if m else (frame, ""))
        stacks.append((frames, int(count)))
    return stacks


def report(name: str, raw: Path, top: int) -> str:
    stacks = parse(raw)
    total = sum(n for _, n in stacks) or 1
    own: Counter[str] = Counter()
    own_by_group: Counter[str] = Counter()
    under: Counter[str] = Counter()
    for frames, n in stacks:
        function, file = frames[-1]
        own[f"{function} ({short(file)})"] += n
        leaf = next((g for g, markers in GROUPS.items() if any(m in file for m in markers)), None)
        own_by_group[leaf or short(file)] += n
        files = [f for _, f in frames]
        for group, markers in GROUPS.items():
            if any(m in f for f in files for m in markers):
                under[group] += n
    lines = [f"## {name}: {total} samples", "", "own samples:"]
    lines += [f"  {n * 100 / total:5.1f} %  {where}" for where, n in own.most_common(top)]
    lines += ["", "own samples by library (the innermost frame's):"]
    lines += [f"  {n * 100 / total:5.1f} %  {g}" for g, n in own_by_group.most_common(top)]
    lines += ["", "samples with a frame in:"]
    lines += [f"  {n * 100 / total:5.1f} %  {group}" for group, n in under.most_common()]
    return "\n".join(lines)


def short(file: str) -> str:
    """The path from the package on: ``.../site-packages/kopf/x.py`` -> ``kopf/x.py``."""
    for marker in ("site-packages/", "/korder/korder/", "python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.rsplit("/", 2)[-1] if "/" in file else file


async def through_facade(sut: suite.System, rate: float, seconds: float) -> int:
    """Orders POSTed to the façade at ``rate`` per second; how many were accepted."""
    spec = json.dumps(suite.order_spec()).encode()
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    started = loop.time()
    accepted = 0
    async with suite.facade_session() as f:

        async def one(i: int) -> None:
            nonlocal accepted
            await asyncio.sleep(max(0.0, started + i / rate - loop.time()))
            async with f.post(f"{sut.facade}/orders", data=spec, headers=suite.JSON) as r:
                await r.read()
                accepted += r.status == 201

        await asyncio.gather(*(one(i) for i in range(total)), return_exceptions=True)
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--rate", type=float, default=20.0, help="orders/s offered")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the load")
    parser.add_argument("--facade", action="store_true", help="create through the façade")
    parser.add_argument("--top", type=int, default=15, help="functions to list")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with suite.korder_system() as sut:
        sut.start_operator()
        recorders = {
            name: subprocess.Popen(
                [
                    *(spy, "record", "--pid", str(sut.pid(name)), "--rate", "200"),
                    *("--format", "raw", "--duration", str(int(args.seconds))),
                    *("--output", str(OUT / f"{name}.txt"), "--nonblocking"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in ("operator", "facade")
        }
        if args.facade:
            accepted = asyncio.run(through_facade(sut, args.rate, args.seconds))
            print(f"{accepted} orders accepted by the façade")
        else:
            try:
                result = asyncio.run(suite.offered(sut, args.rate, args.seconds, "profile"))
                print(f"sustained load: {result}")
            except ValueError:  # none settled in time: the stacks still tell where it went
                print("sustained load: no order settled in time (the machine is overloaded?)")
        for proc in recorders.values():
            proc.wait(timeout=args.seconds + 60)
    text = "\n\n".join(
        report(name, OUT / f"{name}.txt", args.top)
        for name in recorders
        if (OUT / f"{name}.txt").exists()
    )
    (OUT / "report.txt").write_text(text + "\n")
    print(text)
    print(f"\nraw stacks and this report in {OUT}")


if __name__ == "__main__":
    main()
