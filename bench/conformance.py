"""A longer external conformance run than the one in ``make test``: schemathesis against a
fresh bundled server on 127.0.0.1 (its own data directory, an admin token, no limit to trip),
every phase including the stateful one, the five response checks. Prints the figures and the
failures, if any; exit status 0 only when there were none.

    .venv/bin/python bench/conformance.py [--examples 100] [--scenarios 300] [--steps 20] [--seed N]
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.app import app_from_data_dir  # noqa: E402
from server.thread import ServerThread  # noqa: E402
from tests.server import conformance  # noqa: E402
from tests.server.conftest import PASSWORD, Deployment, make_data_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per operation and phase")
    parser.add_argument("--scenarios", type=int, default=300, help="stateful scenarios")
    parser.add_argument("--steps", type=int, default=20, help="calls per stateful scenario, at most")
    parser.add_argument("--seed", type=int, default=None, help="default: a new one each run (printed)")
    parser.add_argument("--workers", type=int, default=1,
                        help="more than 1 can trip a CPython 3.11 ast error inside hypothesis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        data = make_data_dir(Path(tmp) / "data", **conformance.SERVER_CONFIG)
        (data / "stops.txt").write_text(conformance.STOPS)
        server = ServerThread(app_from_data_dir(data)).start()
        try:
            d = Deployment(data, server)
            outcome = conformance.run(d.base, d.token("admin"), admin="admin", password=PASSWORD,
                                      workdir=Path(tmp) / "st", examples=args.examples, max_steps=args.steps,
                                      scenarios=args.scenarios, seed=args.seed, timeout_s=3600,
                                      workers=args.workers)
        finally:
            server.stop()
    report = outcome.report
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", outcome.output)
    print(f"schemathesis {report.get('schemathesis_version')} seed {report.get('seed')}: "
          f"{report.get('test_cases', {}).get('generated', 0)} test cases in {report.get('running_time', 0):.0f} s, "
          f"{len(report.get('failures', []))} failures, {len(report.get('errors', []))} errors; phases "
          + ", ".join(f"{name} {phase['status']}" for name, phase in report.get("phases", {}).items())
          + (f"; links {links.group(1)} of {links.group(2)} followed" if links else ""))
    if outcome.returncode != 0:
        print(outcome.output[-20000:])
    return outcome.returncode


if __name__ == "__main__":
    raise SystemExit(main())
