"""``python -m chaos``: one chaos run with the faults given, its report, its exit status.

``make chaos`` runs the long run with the defaults below; ``make test-chaos`` a
short seeded one with every fault kind, inside ``make test``. The report is
printed and written to ``OUT/report.json`` beside the history; the exit status is
1 when any invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

from chaos.faults import Plan
from chaos.run import Options, Report, run
from chaos.workload import Mix


def _mix(text: str) -> Mix:
    shares: dict[str, float] = {}
    for pair in filter(None, text.split(",")):
        name, _, value = pair.partition("=")
        if name not in {f.name for f in fields(Mix)}:
            raise argparse.ArgumentTypeError(f"no share named {name!r}")
        shares[name] = float(value)
    return replace(Mix(), **shares)


def _options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    add = parser.add_argument
    add("--orders", type=int, default=400, help="orders the clients make (default 400)")
    add("--concurrency", type=int, default=8, help="clients at once (default 8)")
    add("--duration", type=float, default=300, help="seconds the stories and faults spread over")
    add("--seed", type=int, default=1)
    add(
        "--replicas",
        type=int,
        default=1,
        choices=range(1, 6),
        help="operator replicas (2+: Leases)",
    )
    add("--shards", type=int, default=1, help="operator shards (needs replicas > shards)")
    add("--participant-failure-rate", type=float, default=0.2, help="the operator's CHAOS_MODE")
    add("--participant-restarts", type=int, default=2)
    add("--operator-kills", type=int, default=10, help="SIGKILLs at random moments")
    add("--targeted-kills", type=int, default=2, help="SIGKILLs after each kind of call")
    add("--apiserver-restarts", type=int, default=2)
    add("--etcd-restarts", type=int, default=2)
    add("--cuts", type=int, default=2, help="operator-to-API-server connection cuts")
    add("--cut-seconds", type=float, nargs=2, default=(30.0, 60.0), metavar=("MIN", "MAX"))
    add(
        "--cut-mode",
        choices=("hold", "drop", "both"),
        default="both",
        help="a cut ends with the held bytes let through (hold), or with the old "
        "connections silent for ever (drop); both alternates",
    )
    add(
        "--mix",
        type=_mix,
        default=Mix(),
        metavar="SHARE=P,...",
        help=f"the workload's shares, of {', '.join(f.name for f in fields(Mix))}; "
        "e.g. cancel_early=0.3,gitops=0",
    )
    add("--settle-seconds", type=float, default=240)
    add(
        "--out",
        type=Path,
        default=Path("bench-results/chaos"),
        help="the run's folder (emptied first): report, history, state, logs",
    )
    a = parser.parse_args(argv)
    plan = Plan(
        participant_failure_rate=a.participant_failure_rate,
        participant_restarts=a.participant_restarts,
        operator_kills=a.operator_kills,
        targeted_kills=a.targeted_kills,
        apiserver_restarts=a.apiserver_restarts,
        etcd_restarts=a.etcd_restarts,
        cuts=a.cuts,
        cut_seconds=tuple(a.cut_seconds),
        cut_mode=a.cut_mode,
    )
    try:
        return Options(
            orders=a.orders,
            concurrency=a.concurrency,
            duration=a.duration,
            seed=a.seed,
            replicas=a.replicas,
            shards=a.shards,
            plan=plan,
            mix=a.mix,
            settle_seconds=a.settle_seconds,
            out=a.out,
        )
    except ValueError as e:  # a combination the run cannot make (shards without a spare)
        parser.error(str(e))


def show(report: Report) -> str:
    lines = [
        f"chaos run: {report.orders} orders in {report.duration_s} s "
        f"(seed {report.options['seed']}, {report.options['replicas']} operator replica(s), "
        f"{report.options['shards']} shard(s))",
        f"  phases: {report.phases}",
        f"  requests: {report.requests}",
        f"  answers: {report.answers} ({report.client_retries} client retries)",
        f"  faults: {report.faults}",
        f"  participant calls: {report.participant_calls} "
        f"({report.participant_retries} retries, {report.breaker_openings} breaker openings)",
        f"  exits: {report.restarts}",
        "  invariants:",
    ]
    for inv in report.invariants:
        mark = "holds" if inv["holds"] else f"BROKEN ({inv['violations']})"
        lines.append(f"    {inv['name']}: {mark} - {inv['description']}")
        lines += [f"        {example}" for example in inv["examples"]]
    lines.append("  result: " + ("PASS" if report.passed else "FAIL"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = _options(argv)
    report = asyncio.run(run(options))
    print(show(report))
    path = options.out / "report.json"
    path.write_text(json.dumps(asdict(report), indent=2))
    print(f"written to {path} (history: {options.out / 'history.jsonl'})")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
