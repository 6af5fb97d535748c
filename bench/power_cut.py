"""Power cut, at length: a validator process SIGKILLed at random moments on a stream of scans,
then its cache checked and synced to the bundled server (a subprocess on 127.0.0.1).

Prints: kills survived, decisions reported, events in the outbox, events lost (must be 0),
duplicates (must be 0), integrity, passback figures; then uploaders SIGKILLed mid-sync
(--upload-kills), a last sync, and the server's count per localEventId (each must be 1).
Exits 1 when anything is lost, doubled or inconsistent.

    .venv/bin/python bench/power_cut.py [--kills 1000] [--spawn fork|exec] [--lifetime-ms 10 150]

``--spawn fork`` forks each child from a zygote that has imported the agent (cheap, so the kills
land in the scan loop); ``--spawn exec`` starts a fresh interpreter per kill (the literal form;
its start-up cost is printed). The machinery and the checks are tests/e2e/scan_stream.py's.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.conftest import ServerProcess  # noqa: E402
from tests.e2e.scan_stream import PowerCut, check_cache, make_pool, sync_and_check  # noqa: E402
from tests.server.conftest import PASSWORD, make_data_dir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--spawn", choices=["fork", "exec"], default="fork")
    parser.add_argument("--lifetime-ms", type=float, nargs=2, default=(10.0, 150.0), metavar=("LO", "HI"))
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--no-sync", action="store_true", help="skip the upload to the server")
    parser.add_argument("--upload-kills", type=int, default=20, help="uploaders SIGKILLed mid-sync first (more, up to 40, until one is cut between "
                             "the server's store and the acknowledgement)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        device = Path(tmp) / "device"
        device.mkdir()
        pool = make_pool(device, seed=args.seed)
        cut = PowerCut(device, pool, spawn=args.spawn, lifetime_ms=tuple(args.lifetime_ms), seed=args.seed)
        figures = cut.run(args.kills)
        report = check_cache(device / "device.db", pool, figures)
        problems = list(report["problems"])
        starts = sorted(figures.start_seconds)
        print(f"spawn                     {args.spawn} (child start-up median "
              f"{statistics.median(starts) * 1000:.1f} ms, p99 {starts[int(0.99 * (len(starts) - 1))] * 1000:.1f} ms)")
        print(f"child lifetime            {args.lifetime_ms[0]:.0f}-{args.lifetime_ms[1]:.0f} ms after start-up")
        print(f"kills survived            {figures.kills} of {figures.rounds} rounds in {figures.seconds:.1f} s "
              f"({figures.kills_before_first_decision} before the child's first decision)")
        print(f"decisions reported        {figures.decisions} ({len(figures.reported)} events)")
        print(f"events in outbox          {report['outbox']} (usage rows {report['usage']}; "
              f"{report['committed_unreported']} committed but cut before being reported)")
        print(f"passback                  {report['accepted']} accepted, {report['passback_refusals']} refused "
              f"(result 8) over {report['tickets']} ticket ids")
        print(f"events lost               {report['lost']}")
        print(f"duplicates                {report['duplicates']}")
        print(f"integrity_check           {report['integrity']}")
        if not args.no_sync:
            data = make_data_dir(Path(tmp) / "server", rate_limit={"requests": 100_000, "window_seconds": 60,
                                                                   "block_seconds": 1, "roles": {}})
            server = ServerProcess(data).start()
            try:
                if args.upload_kills:
                    before = len(figures.other_exits)
                    cut.cut_uploads(args.upload_kills, server.origin + "/api/v1", "val1", PASSWORD,
                                    data / "server.sqlite3", batch_size=250, until_resent=1,
                                    max_rounds=max(40, 2 * args.upload_kills))
                    problems += figures.other_exits[before:]
                    print(f"uploaders cut mid-sync    {figures.upload_kills} of {figures.upload_rounds} rounds; "
                          f"{len(figures.resent)} events stored by the server but cut before the device's "
                          f"acknowledgement (sent again)")
                sync = sync_and_check(device / "device.db", report["lids"], server.origin + "/api/v1",
                                      data / "server.sqlite3", "val1", PASSWORD, batch_size=1000,
                                      complete=not args.upload_kills)
            finally:
                server.stop()
            problems += sync["problems"]
            print(f"server after sync         {sync['server_events']} events, {sync['server_missing']} missing, "
                  f"{sync['server_duplicates']} stored twice; outbox left {sync['outbox_left']}; "
                  f"integrity_check {sync['integrity']}")
        for problem in problems:
            print("PROBLEM", problem)
        print("RESULT", "FAIL" if problems else "OK")
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
