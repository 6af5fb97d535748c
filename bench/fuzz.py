"""Fuzz the MTB decoder and the whole engine at scale (issue 6, item 3): >= 100,000 inputs.

A fast generator (``random``, seeded; no hypothesis) makes random bytes and text, byte-level
mutations (bit flips, magic bytes, truncations, splices, inserts, deletes, repeats),
structure-aware CBOR edits (values replaced by same- or other-type values, keys dropped or
added, duplicate keys, layers wrapped/unwrapped, definite/indefinite re-encoding), hostile
specials (deep nesting, huge lengths, tags, bombs) and every transport form, from a corpus of
MTBs *forged* with an attacker's key under the trusted issuer's kid, plus a share of mutations
of *genuine* MTBs. Each input goes through ``Engine.validate_sync`` on a real SQLite cache.

Checked for every input (any breach counts as a crash or a violation, exit status 1):
  * no exception escapes validate_sync;
  * forged input: result 1 or 5 (issue: within {1, 4, 5, 6});
  * genuine mutations: result 0 only with the genuine signed header and payload bytes;
  * the outbox grows by exactly one event per decoded ticket (one for an unreadable scan), and
    every event passes the server's TicketEvent model (what the upload would send).

Prints inputs fuzzed, crashes, violations, the result-code histogram, inputs/s.

    .venv/bin/python bench/fuzz.py [--n 100000] [--seconds 900] [--seed 1]
    .venv/bin/python bench/fuzz.py --atheris 50000   # then a coverage-guided atheris run, if installed
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import struct
import sys
import tempfile
import time
import traceback
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=timezone.utc)
PID, KID, KDK = 1234, "1234:k1", b"K" * 32
FORGED_CODES = {1, 5}
TRANSPORTS = ["raw", "raw", "raw", "zlib", "base64url", "zlib+base64url"]
MAGIC = [0x00, 0x01, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1F, 0x3B, 0x40, 0x5B, 0x5F, 0x60, 0x7B, 0x7F, 0x80, 0x9B,
         0x9F, 0xA0, 0xBB, 0xBF, 0xC0, 0xC1, 0xC2, 0xD8, 0xD9, 0xF4, 0xF5, 0xF6, 0xF7, 0xF9, 0xFB, 0xFF, 0x78, 0x2D]
INTERESTING_TEXT = ["ES256", "HS256", "none", "RS256", "es256", "", "1234", "1234:k1", "5678:k1", "kdk-1",
                    "kdk-9", "phone-1", "phone-2", "20260302T083000Z", "20260302T083015.25Z", "2026-03-02T08:30:00Z",
                    "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "20261332T000000Z", "\u00b2",
                    "\u0661\u0662", "9" * 5000, "x" * 300, "did", "1", "A", "B", "bus", "trav-1", "T1", "\x00",
                    "'; DROP TABLE outbox; --", "\u202e", "\U0001F68C"]
INTERESTING_INT = [0, 1, -1, 23, 24, 255, 256, 65535, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 1, 2 ** 63, 2 ** 64 - 1,
                   -(2 ** 63), -(2 ** 64), PID, 5678, 1772440200]
KEYS = ["alg", "iid", "kid", "miv", "nbf", "exp", "dsp", "dsi", "did", "t", "tpk", "app", "c_md", "c_tc", "tid",
        "p_cid", "vf", "vu", "zon", "sa", "mot", "trv", "cat", "act", "v", "p", "1234", "5678", "x"]


# --- corpus -----------------------------------------------------------------------------------

def make_corpus(key: Any) -> list[bytes]:
    from mtb import keys, signer
    from mtb.signer import TicketSpec

    def spec(tid: str, **kw: Any) -> TicketSpec:
        return TicketSpec(tid, NOW - timedelta(hours=1), NOW + timedelta(hours=1), **kw)

    dk = keys.derive_device_key(KDK, "phone-1")
    out = []
    for indefinite in (False, True):
        one = signer.mint(key, pid=PID, kid=KID, tickets=[spec("T1", zones=["A"], traveller_id="trav-1",
                                                                 product_id="P1", category="adult")],
                          indefinite=indefinite)
        bundle = signer.mint(key, pid=PID, kid=KID, tickets=[spec("B1"), spec("B2", modes=["bus"]),
                                                             spec("B3", stop_areas=["SA1"], active=False)],
                             nbf=NOW - timedelta(hours=2), exp=NOW + timedelta(days=3), indefinite=indefinite)
        bound = signer.mint(key, pid=PID, kid=KID, tickets=[spec("D1")], bind_device="phone-1", dsp=PID,
                            indefinite=indefinite, extra_header={"tpk": {"kty": "EC", "kid": "card-1"}})
        phoned = signer.device_sign(bound, did="phone-1", kid="kdk-1", device_key=dk, at=NOW, indefinite=indefinite,
                                    extra_header={"app": "wallet 1.2"})
        out += [one, bundle, bound, phoned]
    return out


# --- structure-aware mutation -----------------------------------------------------------------

class Emb:
    """A byte string that holds CBOR (the layers of an MTB)."""

    __slots__ = ("value", "indefinite")

    def __init__(self, value: Any, indefinite: bool = False):
        self.value, self.indefinite = value, indefinite


def explode(value: Any, cbor: Any) -> Any:
    if isinstance(value, bytes):
        try:
            inner = cbor.loads_strict(value)
        except cbor.CborError:
            return value
        if isinstance(inner, (dict, list, str)):
            return Emb(explode(inner, cbor), value[:1] in (b"\xbf", b"\x9f"))
        return value
    if isinstance(value, dict):
        return {k: explode(v, cbor) for k, v in value.items()}
    if isinstance(value, list):
        return [explode(v, cbor) for v in value]
    return value


def implode(value: Any, cbor: Any, indefinite: bool | None) -> Any:
    if isinstance(value, Emb):
        return cbor.dumps(implode(value.value, cbor, indefinite),
                          indefinite=value.indefinite if indefinite is None else indefinite)
    if isinstance(value, dict):
        return {k: implode(v, cbor, indefinite) for k, v in value.items()}
    if isinstance(value, list):
        return [implode(v, cbor, indefinite) for v in value]
    return value


def inner_of(value: Any) -> Any:
    return value.value if isinstance(value, Emb) else value


def all_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    inner = inner_of(value)
    if isinstance(inner, dict):
        for k, v in inner.items():
            out += all_paths(v, prefix + (k,))
    elif isinstance(inner, list):
        for i, v in enumerate(inner):
            out += all_paths(v, prefix + (i,))
    return out


def get(tree: Any, path: tuple) -> Any:
    for step in path:
        tree = inner_of(tree)[step]
    return tree


def put(tree: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    inner_of(get(tree, path[:-1]))[path[-1]] = new
    return tree


class Gen:
    def __init__(self, rng: random.Random, forged: list[bytes], genuine: list[bytes]):
        import mtb
        from mtb import cbor
        self.rng, self.forged, self.genuine, self.cbor, self.mtb = rng, forged, genuine, cbor, mtb
        # zlib bombs are slow to make: made once (64 KiB + 1, 1 MB, 20 MB of zeros behind a map head)
        self.bombs = [zlib.compress(b"\xa2" + b"\x00" * size, 9) for size in (65_536, 1_000_000, 20_000_000)]
        self.bombs.append(mtb.b64url_encode(self.bombs[-1]))

    # values
    def scalar(self) -> Any:
        r = self.rng
        kind = r.randrange(9)
        if kind == 0:
            return None
        if kind == 1:
            return r.random() < 0.5
        if kind == 2:
            return r.choice(INTERESTING_INT)
        if kind == 3:
            return r.randint(-(2 ** 64), 2 ** 64 - 1)
        if kind == 4:
            return r.choice([0.0, -0.0, 1.5, float("nan"), float("inf"), -float("inf"), 1e308])
        if kind == 5:
            return r.choice(INTERESTING_TEXT)
        if kind == 6:
            return "".join(chr(r.choice([r.randrange(32, 127), r.randrange(0x80, 0x800)])) for _ in range(r.randrange(12)))
        if kind == 7:
            return r.randbytes(r.choice([0, 1, 16, 32, 63, 64, 65, r.randrange(100)]))
        return r.choice(KEYS)

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        kind = r.randrange(10)
        if depth < 3 and kind == 0:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        if depth < 3 and kind == 1:
            return {r.choice(KEYS): self.value(depth + 1) for _ in range(r.randrange(4))}
        return self.scalar()

    def same_type(self, old: Any) -> Any:
        r = self.rng
        if isinstance(old, bool):
            return not old
        if isinstance(old, int):
            return r.choice([r.choice(INTERESTING_INT), old + r.choice([-1, 1]), r.randint(-(2 ** 64), 2 ** 64 - 1)])
        if isinstance(old, str):
            return r.choice([r.choice(INTERESTING_TEXT), old[:-1], old + r.choice(["0", "Z", "x"]),
                             old.upper(), old[::-1]])
        if isinstance(old, bytes):
            if not old:
                return r.randbytes(64)
            b = bytearray(old)
            b[r.randrange(len(b))] ^= 1 << r.randrange(8)
            return bytes(b)
        if isinstance(old, list):
            return [self.scalar() if isinstance(x, (str, int)) else x for x in old] if r.random() < 0.5 else old[::-1]
        return self.value()

    # inputs
    def structured(self, base: bytes) -> bytes:
        r, cbor = self.rng, self.cbor
        tree = explode(base, cbor)
        for _ in range(r.choice([1, 1, 1, 2, 3])):
            places = all_paths(tree)
            deep = [p for p in places if len(p) >= 3]
            path = r.choice(deep if deep and r.random() < 0.8 else places)
            target = inner_of(get(tree, path))
            op = r.choice(["same", "same", "same", "other", "drop", "add", "emb", "key"])
            if op == "same":
                tree = put(tree, path, self.same_type(target))
            elif op == "drop" and isinstance(target, (dict, list)) and target:
                key = r.choice(list(target.keys())) if isinstance(target, dict) else r.randrange(len(target))
                del target[key]
            elif op == "add" and isinstance(target, dict):
                target[r.choice(KEYS)] = self.value()
            elif op == "add" and isinstance(target, list):
                target.insert(r.randrange(len(target) + 1), r.choice(target) if target and r.random() < 0.5
                              else self.value())
            elif op == "key" and isinstance(target, dict) and target:  # rename a key (maybe to a non-text one)
                old = r.choice(list(target.keys()))
                target[r.choice(KEYS + [1, b"alg", ""])] = target.pop(old)
            elif op == "emb":
                value = get(tree, path)
                tree = put(tree, path, value.value if isinstance(value, Emb) else Emb(value))
            else:
                tree = put(tree, path, self.value())
        try:
            raw = implode(tree, cbor, r.choice([None, None, True, False]))
            out = raw if isinstance(raw, bytes) else cbor.dumps(raw)
        except Exception:  # a tree cbor2 cannot encode (e.g. an Emb as a map key): use the base
            out = base
        if r.random() < 0.05:
            out = self.duplicate_key(out)
        return out

    def duplicate_key(self, data: bytes) -> bytes:
        """Repeat the first key/value pair of a definite map with a higher count in its head."""
        if data and 0xA1 <= data[0] <= 0xB6:
            try:
                first = self.cbor.loads_strict(data)
                k, v = next(iter(first.items()))
                return bytes([data[0] + 1]) + data[1:] + self.cbor.dumps(k) + self.cbor.dumps(self.same_type(v))
            except Exception:
                return data
        return data

    def bytewise(self, base: bytes) -> bytes:
        r = self.rng
        data = bytearray(base)
        for _ in range(r.choice([1, 1, 2, 3, 5, 8])):
            if not data:
                break
            at = r.randrange(len(data))
            op = r.randrange(9)
            if op in (0, 1):
                data[at] ^= 1 << r.randrange(8)
            elif op == 2:
                data[at] = r.choice(MAGIC)
            elif op == 3:
                del data[at:]
            elif op == 4:
                other = r.choice(self.forged)
                data = data[:at] + other[r.randrange(len(other)):]
            elif op == 5:
                data[at:at] = r.randbytes(r.randrange(1, 9))
            elif op == 6:
                del data[at:at + r.randrange(1, 17)]
            elif op == 7:
                chunk = data[at:at + r.randrange(1, 33)]
                data[at:at] = chunk * r.randrange(1, 4)
            else:
                data[at:at] = struct.pack(">BQ", r.choice([0x1B, 0x3B, 0x5B, 0x7B, 0x9B, 0xBB]), r.choice(
                    [0, 2 ** 63, 2 ** 64 - 1, r.randrange(2 ** 64)]))
        return bytes(data)

    def special(self) -> bytes | str:
        r = self.rng
        n = r.choice([17, 100, 1000, 30_000, 60_000])
        return r.choice([
            lambda: self.mtb.container(bytes([r.choice([0x81, 0x9F, 0xD8])]) * n + b"\x00"),
            lambda: r.choice(self.bombs),
            lambda: b"\xa2" + r.randbytes(r.choice([100, 98_000, 200_000])),
            lambda: self.mtb.b64url_encode(r.choice(self.forged)) + r.choice(["", "=", "==", "\n", " ", "!", "\x00"]),
            lambda: r.choice(self.forged) + r.randbytes(r.randrange(1, 4)),
            lambda: r.choice(self.forged)[:-r.randrange(1, 40)],
            lambda: bytes([0xC0 + r.randrange(24)]) + r.choice(self.forged),
            lambda: "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                            for _ in range(r.randrange(1, 400))),
        ])()

    def next(self) -> tuple[str, bytes | str, bool]:
        """(generator, input, forged?)"""
        r = self.rng
        roll = r.random()
        genuine = roll >= 0.9
        corpus = self.genuine if genuine else self.forged
        if roll < 0.05:
            kind, data = "random", r.randbytes(r.choice([0, 1, 2, 8, 64, 300, 2000]))
            if data and r.random() < 0.5:
                data = bytes([r.choice([0xA2, 0xBF, 0x78])]) + data
        elif roll < 0.10:
            kind, data = "special", self.special()
        elif roll < 0.45 or (genuine and roll < 0.95):
            kind, data = "bytes", self.bytewise(r.choice(corpus))
        else:
            kind, data = "cbor", self.structured(r.choice(corpus))
        if isinstance(data, bytes) and kind in ("bytes", "cbor"):
            form = r.choice(TRANSPORTS)
            if form != "raw":
                data = self.mtb.wrap_transport(data, form)
        return ("genuine-" if genuine else "") + kind, data, not genuine


# --- the run ----------------------------------------------------------------------------------

class Fuzzer:
    def __init__(self, workdir: Path, seed: int, save_dir: Path):
        import mtb
        from mtb import keys
        from agent.cache import Cache
        from mtb.scan_context import Context, Geo, Validator
        from agent.engine import Engine, unreadable_id
        from server.models import TicketEvent

        self.mtb, self.TicketEvent, self.unreadable_id = mtb, TicketEvent, unreadable_id
        real_key = keys.generate_es256_key()
        self.forged = make_corpus(keys.generate_es256_key())
        self.genuine = make_corpus(real_key)
        self.originals = {(d.issuer.header_bytes, d.issuer.payload_bytes) for d in map(mtb.decode, self.genuine)}
        self.cache = Cache(workdir / "device.db", durability="normal")
        self.cache.import_metadata(keys.participant_metadata(PID, [keys.public_jwk(real_key, KID)]))
        self.cache.add_kdk("kdk-1", KDK)
        self.cache.deny("traveller", "trav-1", NOW + timedelta(days=1))
        self.engine = Engine(self.cache)
        self.ctx = Context(time=NOW, validator=Validator("fuzz-1", "vehicle"), zone="A", stop_area="SA1",
                           mode_of_transport="bus", geo=Geo(59.33, 18.06), operator_pid=PID)
        self.gen = Gen(random.Random(seed), self.forged, self.genuine)
        self.save_dir = save_dir
        self.count = 0
        self.crashes: list[str] = []
        self.violations: list[str] = []
        self.codes: collections.Counter[int] = collections.Counter()
        self.by_kind: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        self.decoded = 0
        self.events = 0

    def _last_seq(self) -> int:
        """The outbox only grows here (nothing is acknowledged), so its highest seq counts the
        events; count(*) would scan a table that grows by 100k rows."""
        return self.cache.conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]

    def _save(self, what: str, data: bytes | str, detail: str) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        path = self.save_dir / f"{what}-{len(self.crashes) + len(self.violations):04d}.bin"
        path.write_bytes(raw)
        path.with_suffix(".txt").write_text(detail)

    def one(self, kind: str, data: bytes | str, forged: bool) -> None:
        self.count += 1
        before = self._last_seq()
        try:
            decision = self.engine.validate_sync(data, self.ctx)
        except Exception:
            detail = traceback.format_exc()
            self.crashes.append(detail.strip().splitlines()[-1])
            self._save("crash", data, detail)
            return
        code = decision.event_result
        self.codes[code] += 1
        self.by_kind[kind][code] += 1
        problems = []
        try:
            decoded = self.mtb.decode(data)
            self.decoded += 1
            ids = [t.ticket_id for t in decoded.tickets]
        except self.mtb.MtbFormatError:
            decoded, ids = None, []
        expected = [i if len(i) <= 200 else self.unreadable_id(i) for i in ids] or None
        got = [e["ticketId"] for e in decision.events]
        if expected is None and not (len(got) == 1 and got[0].startswith("unreadable:")):
            problems.append(f"unreadable scan gave events {got[:3]}")
        elif expected is not None and got != expected:
            problems.append(f"events {got[:3]} != tickets {expected[:3]}")
        added = self._last_seq() - before
        self.events += added
        if added != len(decision.events):
            problems.append(f"outbox grew by {added}, decision has {len(decision.events)} events")
        for event in decision.events:
            try:
                self.TicketEvent.model_validate(event)
            except Exception as exc:  # noqa: BLE001 - any refusal is the finding
                problems.append(f"server would refuse event: {str(exc).splitlines()[:2]}")
                break
        if forged and code not in FORGED_CODES:
            problems.append(f"forged input got {code}: {decision.event_reason}")
        if not forged and code == 0 and decoded is not None and \
                (decoded.issuer.header_bytes, decoded.issuer.payload_bytes) not in self.originals:
            problems.append("accepted with signed bytes that are not the genuine ones")
        if problems:
            self.violations.append(f"{kind}: {problems[0]}")
            self._save("violation", data, "\n".join(problems))

    def run(self, n: int, seconds: float, progress: bool) -> float:
        started = time.perf_counter()
        deadline = started + seconds
        for _ in range(n):
            kind, data, forged = self.gen.next()
            self.one(kind, data, forged)
            if self.count % 10_000 == 0:
                if progress:
                    rate = self.count / (time.perf_counter() - started)
                    print(f"  {self.count:>8,} inputs  {rate:,.0f}/s  crashes {len(self.crashes)}  "
                          f"violations {len(self.violations)}", flush=True)
                if time.perf_counter() > deadline:
                    print(f"  time bound of {seconds:.0f} s reached", flush=True)
                    break
        return time.perf_counter() - started

    def report(self, elapsed: float, title: str) -> None:
        print(f"\n== {title} ==")
        print(f"inputs fuzzed:      {self.count:,}")
        print(f"crashes:            {len(self.crashes)}")
        print(f"violations:         {len(self.violations)}")
        print(f"decoded as an MTB:  {self.decoded:,} ({self.decoded / max(self.count, 1):.1%})")
        print(f"outbox events:      {self.events:,}")
        print(f"elapsed:            {elapsed:.1f} s")
        print(f"inputs/s:           {self.count / max(elapsed, 1e-9):,.0f}")
        print("result codes:       " + "  ".join(f"{c}: {n:,}" for c, n in sorted(self.codes.items())))
        for kind in sorted(self.by_kind):
            print(f"  {kind:<16}" + "  ".join(f"{c}: {n:,}" for c, n in sorted(self.by_kind[kind].items())))
        for title_, items in (("crashes", self.crashes), ("violations", self.violations)):
            if items:
                print(f"first {title_} (inputs saved under {self.save_dir}):")
                for line in collections.Counter(items).most_common(10):
                    print(f"  {line[1]} x {line[0][:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="inputs to generate (default 100000)")
    parser.add_argument("--seconds", type=float, default=900, help="time bound for each phase (default 900)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--save", type=Path, default=None, help="where crashing inputs go (default: a temp dir)")
    parser.add_argument("--atheris", type=int, default=0, metavar="RUNS",
                        help="afterwards, RUNS coverage-guided atheris inputs (if atheris is installed)")
    parser.add_argument("--atheris-child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    if args.atheris_child is not None:
        return atheris_child(args.atheris, args.atheris_child, seed)

    with tempfile.TemporaryDirectory(prefix="mtb-fuzz-") as tmp:
        save_dir = args.save or Path(tmp) / "findings"
        fuzzer = Fuzzer(Path(tmp), seed, save_dir)
        print(f"fuzzing {args.n:,} inputs (seed {seed}, time bound {args.seconds:.0f} s) through Engine.validate_sync")
        elapsed = fuzzer.run(args.n, args.seconds, not args.quiet)
        fuzzer.report(elapsed, f"generator (seed {seed})")
        failed = bool(fuzzer.crashes or fuzzer.violations)
        if failed and args.save is None:
            keep = Path(tempfile.mkdtemp(prefix="mtb-fuzz-findings-"))
            for f in save_dir.iterdir():
                (keep / f.name).write_bytes(f.read_bytes())
            print(f"findings copied to {keep}")
        if args.atheris:
            failed |= run_atheris(args.atheris, args.seconds, seed, Path(tmp))
    return 1 if failed else 0


def run_atheris(runs: int, seconds: float, seed: int, tmp: Path) -> bool:
    """The coverage-guided phase in a child process (libFuzzer ends its process when done);
    returns True on a finding."""
    import importlib.util
    import re
    import subprocess

    if importlib.util.find_spec("atheris") is None:
        print("\natheris is not installed: coverage-guided phase skipped (pip install atheris)")
        return False
    stats = tmp / "atheris-stats.json"
    print(f"\natheris: {runs:,} coverage-guided runs, seeded with the forged corpus", flush=True)
    started = time.perf_counter()
    try:
        child = subprocess.run([sys.executable, __file__, "--atheris", str(runs), "--atheris-child", str(stats),
                                "--seed", str(seed)], capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        print(f"atheris: time bound of {seconds:.0f} s reached; no summary")
        return False
    elapsed = time.perf_counter() - started
    done = re.findall(r"Done (\d+) runs", child.stderr)
    summary = json.loads(stats.read_text()) if stats.exists() else {}
    executed = int(done[-1]) if done else summary.get("count", 0)
    print("\n== atheris ==")
    print(f"inputs fuzzed:      {executed:,}")
    print(f"crashes:            {summary.get('crashes', '?') if child.returncode == 0 else 'see below'}")
    print(f"violations:         {summary.get('violations', '?')}")
    print(f"elapsed:            {elapsed:.1f} s (inputs/s {executed / max(elapsed, 1e-9):,.0f}, incl. start-up)")
    cov = re.findall(r"DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)", child.stderr)
    if cov:
        print(f"coverage:           {cov[-1][0]} edges, {cov[-1][1]} features, corpus {cov[-1][2]} inputs")
    codes = summary.get("codes", {})
    print(f"result codes:       " + "  ".join(f"{c}: {n:,}" for c, n in sorted(codes.items())) +
          f"  (snapshot of {summary.get('count', 0):,})")
    if summary.get("first"):
        print(f"first finding:      {summary['first'][0][:300]}")
    if child.returncode != 0:
        print(f"atheris exited with {child.returncode}; the end of its log:")
        print("\n".join(child.stderr.splitlines()[-8:]))
        keep = Path(tempfile.mkdtemp(prefix="mtb-fuzz-atheris-"))
        for f in (tmp / "atheris").glob("crash-*"):
            (keep / f.name).write_bytes(f.read_bytes())
        print(f"crash inputs copied to {keep}")
        return True
    return bool(summary.get("crashes") or summary.get("violations"))


def atheris_child(runs: int, stats: Path, seed: int) -> int:
    import atheris  # type: ignore[import-not-found]

    with atheris.instrument_imports():
        import mtb.cbor, mtb.codec, agent.engine, mtb.checks, mtb.verifier, mtb.timeutil  # noqa: F401,E401
    workdir = stats.parent / "atheris"
    workdir.mkdir(exist_ok=True)
    fuzzer = Fuzzer(workdir, seed, workdir / "findings")
    corpus_dir = workdir / "corpus"
    corpus_dir.mkdir(exist_ok=True)
    for i, raw in enumerate(fuzzer.forged):
        (corpus_dir / f"seed-{i}").write_bytes(raw)

    def snapshot() -> None:
        stats.write_text(json.dumps({"count": fuzzer.count, "crashes": len(fuzzer.crashes),
                                     "violations": len(fuzzer.violations),
                                     "first": (fuzzer.crashes + fuzzer.violations)[:1],
                                     "codes": {str(c): n for c, n in fuzzer.codes.items()}}))

    def one_input(data: bytes) -> None:
        fuzzer.one("atheris", data, True)
        if fuzzer.count % 250 == 0:
            snapshot()
        if fuzzer.crashes or fuzzer.violations:
            snapshot()
            raise RuntimeError((fuzzer.crashes + fuzzer.violations)[0])

    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=4096", f"-artifact_prefix={workdir}/",
                   f"-seed={seed % 2 ** 31}", str(corpus_dir)], one_input)
    atheris.Fuzz()  # ends the process
    return 0


if __name__ == "__main__":
    sys.exit(main())
