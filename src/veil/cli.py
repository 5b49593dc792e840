"""The ``veil`` command."""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from veil import __version__


def _bench_crypto(args: argparse.Namespace) -> int:
    from veil.bench import crypto

    console = Console(stderr=True)
    script = None
    if args.peer:  # look before measuring anything
        try:
            script = crypto.find_peer_script(args.peer_script)
        except FileNotFoundError as error:
            print(f"veil bench crypto: {error}", file=sys.stderr)
            return 2
    if not args.json:
        console.print(f"[bold]veil bench crypto[/] — medians of {args.runs} runs")
    measured = crypto.run(args.runs)
    result: dict[str, object] = dict(measured)
    peer = ratio = None
    if script is not None:
        peer = crypto.run_peer(script, args.runs)
        ratio = crypto.ratios(measured, peer)
        result["peer"], result["ratio"] = peer, ratio
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table("operation", "veil", *(("recrypt", "recrypt / veil") if peer else ()))

    def row(name: str, veil: str, recrypt: str = "", times: str = "") -> None:
        table.add_row(name, veil, *((recrypt, times) if peer else ()))

    for name in crypto.PRE_OPERATIONS:
        row(
            name,
            f"{result[name]:.3f} ms",
            f"{peer[name]:.3f} ms" if peer and name in peer else "",
            f"{ratio[name]:.1f}x" if ratio and name in ratio else "",
        )
    for level in range(3):
        row(f"ciphertext level {level}", f"{result[f'bytes_l{level}']} B")
    sframe, aes = measured["sframe_roundtrip_us"], measured["aesgcm_roundtrip_us"]
    row("SFrame round trip, 1,200 B (suite 5)", f"{sframe:.2f} µs")
    row("bare AES-256-GCM round trip, 1,200 B", f"{aes:.2f} µs")
    Console().print(table)
    Console().print(f"SFrame / bare AES-GCM: {sframe / aes:.2f}x")
    return 0


def _bench_keyserver(args: argparse.Namespace) -> int:
    from veil.bench import keyserver

    result = keyserver.run(
        workers=args.workers,
        concurrency=args.concurrency or 2 * args.workers,
        duration=args.duration,
        members=args.members,
        database_url=args.database_url,
        transform_workers=args.transform_workers,
    )
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table("measure", "value")
    table.add_row("server processes", str(result["workers"]))
    table.add_row("transform processes each", str(result["transform_workers"]))
    table.add_row("concurrent devices", str(result["concurrency"]))
    table.add_row("requests", str(result["requests"]))
    table.add_row("transforms / s", f"{result['transforms_per_s']:.1f}")
    table.add_row("transforms / s per process", f"{result['transforms_per_s_per_process']:.1f}")
    table.add_row("median request", f"{result['p50_ms']:.2f} ms")
    table.add_row("p99 request", f"{result['p99_ms']:.2f} ms")
    table.add_row("bare crypto per request", f"{result['crypto_only_ms']:.2f} ms")
    table.add_row("median / bare crypto", f"{result['p50_ms'] / result['crypto_only_ms']:.2f}x")
    Console().print(table)
    return 0


def _bench_meeting(args: argparse.Namespace) -> int:
    from veil.bench import meeting

    try:
        result = meeting.run(
            args.participants, rounds=args.rounds, database_url=args.database_url,
            replicas=args.replicas, transform_workers=args.transform_workers,
        )  # fmt: skip
    except ValueError as error:
        print(f"veil bench meeting: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    veil, pairwise = result["veil"], result["pairwise"]
    table = Table(
        f"N = {result['participants']}", "Veil", "pairwise",
        title=f"veil bench meeting — one rekey, medians of {args.rounds} "
        f"({result['replicas']} replica(s), {result['database']})",
    )  # fmt: skip
    rows = [
        ("host CPU", "host_cpu_ms", "{:.2f} ms"),
        ("until every device has its answer", "delivered_all_ms", "{:.0f} ms"),
        ("+ median device's decrypt", "decrypt_ms", "{:.2f} ms"),
        ("= rekey to all", "rekey_to_all_ms", "{:.0f} ms"),
        ("bytes per device", "bytes_per_device", "{} B"),
        ("deliveries per second", "deliveries_per_s", "{:.0f}"),
    ]
    for label, name, form in rows:
        table.add_row(label, form.format(veil[name]), form.format(pairwise[name]))
    hits = ", ".join("-" if h is None else str(h) for h in veil["prepared_hits"])
    table.add_row("prepared transforms used, by round", hits, "")
    console = Console()
    console.print(table)
    setup = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["setup_s"].items())
    console.print(f"setup: {setup}; total {result['total_s']:.0f} s")
    return 0


def _bench_web(args: argparse.Namespace) -> int:
    from veil.bench import web

    if args.sframe:
        return _bench_web_sframe(args)
    try:
        result = web.run(args.runs)
    except web.Unavailable as missing:
        print(f"veil bench web: cannot run here: {missing}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    chromium, node = result["chromium"], result["node"]
    table = Table(
        "operation", "Chromium", "Node",
        title=f"veil bench web — the browser SDK, medians of {args.runs} runs",
    )  # fmt: skip
    rows = [
        ("PRE encrypt", "encrypt_ms", "{:.1f} ms"),
        ("level-2 decrypt", "decrypt_l2_ms", "{:.1f} ms"),
        ("transform-key generation", "transform_key_ms", "{:.1f} ms"),
        ("escrow unlock (split trust)", "escrow_unlock_ms", "{:.0f} ms"),
    ]
    for label, name, form in rows:
        table.add_row(label, form.format(chromium[name]), form.format(node[name]))
    # web/tools/sframe-bench.ts: SFrame seal + open as the media worker does them, against
    # AES-256-GCM encrypt + decrypt of the same bytes with additional data as long.
    for in_chromium, in_node in zip(chromium["sframe"], node["sframe"], strict=True):
        case = f"{in_chromium['codec']}, {in_chromium['size']:,} B"
        for label, name in (("SFrame seal + open", "sframe_us"), ("bare AES-GCM", "aes_gcm_us")):
            table.add_row(
                f"{label}, {case}", f"{in_chromium[name]:.1f} µs", f"{in_node[name]:.1f} µs"
            )
        ratios = (f"{in_chromium['ratio']:.2f}x", f"{in_node['ratio']:.2f}x")
        table.add_row(f"SFrame / bare AES-GCM, {case}", *ratios)
    installed = result["key_post_to_installed_ms"]
    table.add_row("key post to installed key (3 people)", f"{installed:.0f} ms", "-")
    console = Console()
    console.print(table)
    console.print(f"Chromium {chromium['chromium']}, Node {node['node']}")
    return 0


def _bench_web_sframe(args: argparse.Namespace) -> int:
    from veil.bench import web

    try:
        result = web.sframe(args.runs, args.repeats)
    except web.Unavailable as missing:
        print(f"veil bench web: cannot run here: {missing}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    table = Table(
        "frame", "SFrame seal + open", "AES-GCM encrypt + decrypt", "ratio by repeat", "median",
        title=f"veil bench web --sframe — in a Chromium worker, medians of {args.runs} batches, "
        f"{args.repeats} repeat(s)",
    )  # fmt: skip
    for case in result["cases"]:
        table.add_row(
            f"{case['codec']}, {case['size']:,} B",
            f"{case['sframe_us']:.1f} µs",
            f"{case['aes_gcm_us']:.1f} µs",
            " ".join(f"{r:.2f}" for r in case["ratios"]),
            f"{case['ratio']:.2f}x",
        )
    console = Console()
    console.print(table)
    console.print(
        "AES-GCM: the same bytes SFrame encrypts, additional data as long as SFrame's "
        f"(web/tools/sframe-bench.ts); target {result['target']}x; Chromium {result['chromium']}"
    )
    return 0


def _bench_churn(args: argparse.Namespace) -> int:
    from veil.bench import churn

    config = churn.ChurnConfig(
        participants=args.participants, duration=args.duration, period=args.period,
        debounce=args.debounce, fps=args.fps, workers=args.workers, tail=args.tail,
        transform_workers=args.transform_workers,
    )  # fmt: skip
    result = churn.run(config)
    if args.json:
        print(json.dumps(result))
        return 0
    joins, leaves, frames = result["joins"], result["leaves"], result["frames"]

    def seconds(stats: dict[str, float | None]) -> str:
        if stats["median"] is None:
            return "-"
        return f"median {stats['median']:.2f} s, max {stats['max']:.2f} s"

    table = Table(
        "measure", "value",
        title=f"veil bench churn — {config.participants} participants, a leave and a join "
        f"every {config.period:g} s for {config.duration:g} s, debounce {config.debounce:g} s",
    )  # fmt: skip
    initial = result["initial_joins"]
    table.add_row("initial joins", f"{initial['succeeded']} / {initial['attempted']}")
    table.add_row("joins during the churn", f"{joins['succeeded']} / {joins['attempted']}")
    table.add_row("join time", seconds(joins["seconds"]))
    table.add_row(
        "leaves measured", f"{leaves['measured']} / {leaves['count']} "
        f"({leaves['unfinished']} unfinished)",
    )  # fmt: skip
    table.add_row("leave -> every participant locked the leaver out", seconds(leaves["to_all_s"]))
    table.add_row("  leave() returned", seconds(leaves["leave_returned_s"]))
    table.add_row("  leave -> the starter (manager) saw it", seconds(leaves["seen_by_starter_s"]))
    table.add_row("  leave -> new key first installed", seconds(leaves["until_key_s"]))
    table.add_row("  new key -> installed by all", seconds(leaves["key_to_all_s"]))
    table.add_row("epochs; devices that posted keys (1: no take-over)",
                  f"{result['epochs']}; {result['managers']}")  # fmt: skip
    table.add_row("frames decrypted by leavers after leaving",
                  str(result["leavers_decrypted_after_leave"]))  # fmt: skip
    table.add_row(
        f"frames between the {frames['stayers']} stayers (window)",
        f"{frames['decrypted']} of {frames['expected_deliveries']} decrypted, "
        f"{frames['lost']} lost",
    )
    table.add_row("frame latency", f"p50 {frames['latency_ms_p50']} ms, "
                  f"p99 {frames['latency_ms_p99']} ms")  # fmt: skip
    cpu = result["cpu"] or {}
    table.add_row("cores busy: machine, this benchmark, other work",
                  f"{cpu.get('machine_cores')}, {cpu.get('benchmark_cores')}, "
                  f"{cpu.get('other_cores')}")  # fmt: skip
    console = Console()
    console.print(table)
    for what in ("join", "leave"):
        for error in result[f"{what}s"]["errors"]:
            console.print(f"{what} failed: {error}", markup=False)
    for kind, seen in result["meeting_failures"].items():
        example = seen["examples"][0]
        console.print(f"MeetingFailure {kind} x{seen['count']}, e.g. {example}", markup=False)
    for name, passed in result["targets"].items():
        console.print(f"{name}: " + ("[green]yes[/]" if passed else "[red]NO[/]"))
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from veil.keyserver.maintenance import AuditUnreadable, verify_audit

    url = args.database_url or os.environ.get("VEIL_DATABASE_URL")
    if not url:  # the all-in-one mode's database, where veil serve keeps it by default
        folder = Path(os.environ.get("VEIL_DATA_DIR") or "./veil-data")
        database = folder / "keyserver.sqlite3"
        if not database.is_file():
            print(
                f"veil: no key service database at {database}: give --database-url, or "
                "set VEIL_DATABASE_URL or VEIL_DATA_DIR",
                file=sys.stderr,
            )
            return 2
        url = f"sqlite:///{database.resolve()}"
    try:
        report = verify_audit(url)
    except AuditUnreadable as error:
        print(f"veil audit verify: {error}", file=sys.stderr)
        return 2
    if report.ok:
        print(f"audit chain intact: {report.entries} entries")
        return 0
    print(
        f"audit chain BROKEN at entry {report.first_broken}: {report.reason} "
        f"({report.entries} entries verified before it)"
    )
    return 1


def _demo_browser(args: argparse.Namespace) -> int:
    from veil.bench import web
    from veil.webrtc import e2ee
    from veil.webrtc.netns import Unavailable

    def say(line: str) -> None:
        if not args.json:  # --json prints the one object only
            print(line, flush=True)

    try:
        e2ee.require()
        say("building the browser SDK ...")
        folder = web.built()
        say("a meeting of three Chromium pages and a Python device, media through Janus:")
        result = e2ee.run(folder, Path(args.screenshots), log=say)
    except (Unavailable, web.Unavailable) as missing:
        print(f"veil demo --browser: cannot run here: {missing}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0 if result["ok"] else 1
    console = Console()
    summary = Table(title="checks")
    summary.add_column("check")
    summary.add_column("result")
    for name, passed in result["checks"].items():
        summary.add_row(name, "[green]pass[/]" if passed else "[red]FAIL[/]")
    console.print(summary)
    m = result["measurements"]
    rates = Table(title="each page's decoding of each other page (frames/s)")
    for column in ("receiver<-sender", "decoded", "sent", "audio samples/s decoded"):
        rates.add_column(column)
    for pair, rate in m.get("frames_per_s", {}).items():
        rates.add_row(
            pair,
            str(rate["decoded_fps"]),
            str(rate["sent_fps"]),
            str(rate["audio_decoded_samples_per_s"]),
        )
    console.print(rates)
    console.print(f"decrypt failures outside the rekey: {m.get('decrypt_failures_steady')}")
    console.print(
        f"rekey: key post to the first frame of the new epoch, ms: {m.get('rekey_gap_ms')}; "
        f"longest time between two frames shown around it, ms: "
        f"{m.get('rekey_longest_frame_gap_ms')}"
    )
    for b in m.get("sframe_vs_aes_gcm_us_per_frame", []):
        console.print(
            f"{b['codec']} {b['size']:,} B in a worker: SFrame seal + open {b['sframe_us']} µs "
            f"vs AES-GCM encrypt + decrypt {b['aes_gcm_us']} µs per frame (median of the "
            f"runs' ratios {b['ratio']}x)"
        )
    for shot in result["details"].get("screenshots", []):
        console.print(f"screenshot of a page's remote video: {shot}")
    console.print("[green]ok[/]" if result["ok"] else "[red]FAILED[/]")
    return 0 if result["ok"] else 1


def _demo(args: argparse.Namespace) -> int:
    import asyncio

    if args.browser:
        return _demo_browser(args)

    from rich.live import Live

    from veil.client.meeting import MeetingTimers
    from veil.demo import LEGEND, run_demo, table

    timers = MeetingTimers(
        debounce=args.debounce,
        rekey_interval=300.0,
        join_retries=tuple(args.join_retry for _ in range(3)),
        epoch_grace=2.0,
    )

    if args.json:
        result = asyncio.run(
            run_demo(participants=args.participants, phase_seconds=args.phase, timers=timers)
        )
        print(json.dumps(result.to_json()))
        return 0 if result.ok else 1
    console = Console()
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        result = asyncio.run(
            run_demo(
                participants=args.participants,
                phase_seconds=args.phase,
                timers=timers,
                on_update=lambda people, stage: live.update(table(people, stage)),
            )
        )
    if not console.is_terminal:
        console.print()  # Live leaves a pipe's last line open
    console.print(f"[dim]{LEGEND}[/]")
    summary = Table(title="checks")
    summary.add_column("check")
    summary.add_column("result")
    for name, passed in result.checks.items():
        summary.add_row(name, "[green]pass[/]" if passed else "[red]FAIL[/]")
    console.print(summary)
    console.print(
        f"{result.participants} participants, {result.rekeys} rekey(s), "
        f"{result.frames_sent} frames sent, {result.frames_decrypted} frame deliveries "
        f"decrypted, {result.seconds} s — " + ("[green]ok[/]" if result.ok else "[red]FAILED[/]")
    )
    return 0 if result.ok else 1


def _serve(args: argparse.Namespace) -> int:
    from veil.serve import ConfigurationError, ServeOptions, serve

    roles = [r for r in ("keyserver", "conference", "idp") if getattr(args, r)]
    if len(roles) > 1:
        print("veil serve: choose at most one of --keyserver, --conference, --idp", file=sys.stderr)
        return 2
    options = ServeOptions(
        role=roles[0] if roles else "all",
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        database_url=args.database_url,
        fanout_url=args.fanout_url,
        jwks_url=args.jwks_url,
        issuer_url=args.jwt_issuer_url,
        user_id_claim=args.jwt_user_id_claim,
        keyserver_url=args.keyserver_url,
        workers=args.workers,
        transform_workers=args.transform_workers,
    )
    try:
        serve(options)
    except ConfigurationError as error:
        print(f"veil serve: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        print(f"veil serve: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="veil",
        description="Veil: end-to-end encryption for video conferencing on transform cryptography.",
    )
    parser.add_argument("--version", action="version", version=f"veil {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="run an end-to-end encrypted meeting of real clients on loopback, with checks",
        description="Starts the dev IdP, the key service (SQLite in a temporary folder) and "
        "the conference service in this process on loopback, then runs a meeting of N SDK "
        "clients: media, chat, an uninvited imposter, a leave, a rekey, the end. Exit "
        "status 0 only if every check passed. Meeting timers are shortened for the demo "
        "(the library's defaults: 10 s debounce, 5 min ratchet, 1/5/10/10 s "
        "join retries).",
    )
    demo.add_argument(
        "--participants", type=int, default=6, help="devices in the meeting (default 6, min 3)"
    )
    demo.add_argument(
        "--phase", type=float, default=3.0, help="seconds of media per epoch (default 3)"
    )
    demo.add_argument(
        "--debounce", type=float, default=1.0, help="rekey debounce after a leave (default 1 s)"
    )
    demo.add_argument(
        "--join-retry", type=float, default=0.5, help="seconds between join retries (default 0.5)"
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.add_argument(
        "--browser",
        action="store_true",
        help="instead: three Chromium pages and a Python device, audio and video end-to-end "
        "encrypted through Janus, in a network namespace of its own (root, janus, chromium, "
        "iproute2)",
    )
    demo.add_argument(
        "--screenshots",
        default="veil-demo-screenshots",
        help="with --browser: where each page's screenshot goes (default ./veil-demo-screenshots)",
    )
    demo.set_defaults(handler=_demo)

    srv = commands.add_parser(
        "serve",
        help="run the services: all in one process, or one of them alone",
        description="Without a role flag: the dev IdP, the key service and the conference "
        "service in one process (key service on --port, default 8470; conference on port+1; "
        "dev IdP on port+2), SQLite files in --data-dir unless --database-url. With "
        "--keyserver or --conference: that service alone with --workers uvicorn processes, "
        "configured by flags and VEIL_* variables (replicas share --database-url and, for "
        "conference replicas, --fanout-url).",
    )
    role = srv.add_mutually_exclusive_group()
    role.add_argument("--keyserver", action="store_true", help="only the key service")
    role.add_argument("--conference", action="store_true", help="only the conference service")
    role.add_argument("--idp", action="store_true", help="only the dev IdP (not for production)")
    srv.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    srv.add_argument("--port", type=int, help="port (defaults: key service 8470, conference "
                     "8471, IdP 8472; 0 for any free ports, printed at start)")  # fmt: skip
    srv.add_argument("--data-dir", help="SQLite files and the key service secret (default: "
                     "$VEIL_DATA_DIR, else ./veil-data); without a role flag it holds both "
                     "escrow shares and is made private (0700, files 0600)")  # fmt: skip
    srv.add_argument("--database-url", metavar="URL", help="sqlite:///... or postgresql://...")
    srv.add_argument("--fanout-url", metavar="URL", help="redis://... or nats://... so "
                     "conference replicas share rooms (default: in memory)")  # fmt: skip
    srv.add_argument("--jwt-issuer-url", metavar="URL", help="your IdP's issuer: its keys "
                     "are found by OIDC discovery (key service and conference alone)")  # fmt: skip
    srv.add_argument("--jwks-url", metavar="URL", help="or your IdP's JWKS, with "
                     "VEIL_JWT_ISSUER (key service and conference alone)")  # fmt: skip
    srv.add_argument("--jwt-user-id-claim", metavar="CLAIM", help="the token claim naming "
                     "the user (default sub)")  # fmt: skip
    srv.add_argument("--keyserver-url", metavar="URL", help="the key service (conference alone)")
    srv.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    srv.add_argument("--transform-workers", type=int, help="transform processes per key "
                     "service process (default: cores - 1)")  # fmt: skip
    srv.set_defaults(handler=_serve)

    bench = commands.add_parser("bench", help="measure Veil on this machine")
    targets = bench.add_subparsers(dest="target", required=True)
    crypto = targets.add_parser(
        "crypto",
        help="PRE operations, SFrame and AES-GCM medians (optionally beside recrypt)",
        description="Median milliseconds of the PRE operations and microseconds of an SFrame "
        "round trip of a 1,200-byte frame beside a bare AES-256-GCM round trip.",
    )
    crypto.add_argument(
        "--runs", type=int, default=100, help="timed runs per operation (default 100)"
    )
    crypto.add_argument("--json", action="store_true", help="print one JSON object")
    crypto.add_argument(
        "--peer", action="store_true", help="also time IronCore's recrypt (needs node and npm)"
    )
    crypto.add_argument(
        "--peer-script",
        metavar="PATH",
        help="recrypt.sh to run (default ../shared/peers/recrypt.sh)",
    )
    crypto.set_defaults(handler=_bench_crypto)

    ks = targets.add_parser(
        "keyserver",
        help="group -> user -> device transforms through the real HTTP key service",
        description="Starts the key service (uvicorn worker processes on loopback, SQLite in "
        "a temporary folder unless --database-url), registers devices in one group, and "
        "drives signed transform requests from concurrent devices.",
    )
    ks.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    ks.add_argument(
        "--concurrency", type=int, default=0, help="requests in flight (default 2 x workers)"
    )
    ks.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    ks.add_argument("--members", type=int, default=8, help="devices in the group (default 8)")
    ks.add_argument(
        "--transform-workers",
        type=int,
        default=1,
        help="transform processes per server process (default 1; 0 runs them in the "
        "request's thread)",
    )
    ks.add_argument("--database-url", metavar="URL", help="e.g. postgresql://127.0.0.1/test")
    ks.add_argument("--json", action="store_true", help="print one JSON object")
    ks.set_defaults(handler=_bench_keyserver)

    mt = targets.add_parser(
        "meeting",
        help="a rekey at N devices: Veil against pairwise X25519 delivery",
        description="Runs the services (veil serve), a host (this process, a real SDK "
        "Meeting) and N - 1 devices (another process of real clients); for Veil's "
        "transform-based rekey and for the host wrapping the key to every device, "
        "measures host CPU, the time until every device has its answer, the median "
        "device's decrypt time (on a sample of 50), their sum, bytes per device, "
        "deliveries a second, and the key service's prepared transforms used. Progress "
        "and setup times go to stderr.",
    )
    mt.add_argument("--participants", type=int, default=10, help="devices, host included "
                    "(default 10)")  # fmt: skip
    mt.add_argument("--rounds", type=int, default=3, help="rekeys of each kind (default 3)")
    mt.add_argument("--database-url", metavar="URL", help="the services' database "
                    "(default: SQLite in a temporary folder): postgresql://HOST/DB")  # fmt: skip
    mt.add_argument("--replicas", type=int, default=1, help="key services and conference "
                    "services, each its own veil serve process (default 1; more needs a "
                    "PostgreSQL --database-url, and Redis on 127.0.0.1:6379)")  # fmt: skip
    mt.add_argument("--transform-workers", type=int, default=1, help="transform processes "
                    "per key service (default 1)")  # fmt: skip
    mt.add_argument("--json", action="store_true", help="print one JSON object")
    mt.set_defaults(handler=_bench_meeting)

    ch = targets.add_parser(
        "churn",
        help="a meeting under churn: a leave and a join every few seconds, media flowing",
        description="Runs the services (veil serve) and N real SDK clients in worker "
        "processes, all sending and receiving audio-sized frames through the relay. For "
        "--duration seconds, every --period seconds the longest-present of the churning "
        "half leaves and a new participant joins. Reports joins that succeeded, the time "
        "from each leave until every participant present holds a key the leaver cannot get "
        "(median, max, and its legs), frames decrypted by leavers after leaving, and frames "
        "lost between the participants present throughout (frames sent during the churn "
        "window). Targets: every join, max <= 5 s with a 1 s debounce, 0 frames.",
    )
    ch.add_argument("--participants", type=int, default=50, help="participants at any time, "
                    "the starter included (default 50; half of them stay throughout)")  # fmt: skip
    ch.add_argument("--duration", type=float, default=90.0, help="seconds of churn (default 90)")
    ch.add_argument("--period", type=float, default=3.0, help="seconds between a leave+join "
                    "(default 3)")  # fmt: skip
    ch.add_argument("--debounce", type=float, default=1.0, help="the manager's rekey debounce "
                    "after a leave (default 1 s)")  # fmt: skip
    ch.add_argument("--fps", type=float, default=10.0, help="audio frames a second each "
                    "participant sends (default 10)")  # fmt: skip
    ch.add_argument("--workers", type=int, default=2, help="client processes the participants "
                    "are spread over (default 2)")  # fmt: skip
    ch.add_argument("--tail", type=float, default=8.0, help="seconds the meeting runs on after "
                    "the churn (default 8)")  # fmt: skip
    ch.add_argument("--transform-workers", type=int, default=1, help="the key service's "
                    "transform processes (default 1)")  # fmt: skip
    ch.add_argument("--json", action="store_true", help="print one JSON object")
    ch.set_defaults(handler=_bench_churn)

    wb = targets.add_parser(
        "web",
        help="the browser SDK's crypto in headless Chromium and in Node",
        description="Builds the browser SDK (web/, or $VEIL_WEB_DIR) and times, in headless "
        "Chromium (Playwright, /usr/bin/chromium) and in Node, the medians of PRE encrypt, "
        "level-2 decrypt, transform-key generation and escrow unlock, and SFrame seal + open of "
        "a 100-byte audio and a 1,200-byte video frame (in a worker in Chromium) beside bare "
        "WebCrypto AES-256-GCM encrypt + decrypt of the same bytes and AAD length; then, in a "
        "meeting of a Python host and two Chromium pages on its own veil serve, the time from a "
        "key post to the key installed in a page, over --runs rekeys. Exits 2, saying "
        "what is missing, where Node, the SDK's packages, Playwright or Chromium are.",
    )
    wb.add_argument("--runs", type=int, default=9, help="timed runs per operation (default 9)")
    wb.add_argument("--sframe", action="store_true", help="only SFrame against bare AES-GCM, "
                    "in Chromium workers, for a 100 B, a 1,200 B and a 10,000 B frame")  # fmt: skip
    wb.add_argument("--repeats", type=int, default=5, help="with --sframe: fresh workers per "
                    "frame size, each measuring --runs batches (default 5)")  # fmt: skip
    wb.add_argument("--json", action="store_true", help="print one JSON object")
    wb.set_defaults(handler=_bench_web)

    audit = commands.add_parser("audit", help="key service audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="check the whole hash chain; name the first broken entry (exit 1 if broken)",
        description="Checks the key service's audit log, entry by entry. Exit status: 0 "
        "the chain is intact; 1 it is broken (the first broken entry is named); 2 the log "
        "could not be read (no such database, no audit table, no connection).",
    )
    verify.add_argument(
        "--database-url",
        metavar="URL",
        help="key service database (default $VEIL_DATABASE_URL, else the keyserver.sqlite3 "
        "of veil serve's data directory: $VEIL_DATA_DIR or ./veil-data)",
    )
    verify.set_defaults(handler=_audit_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "runs", 1) < 1:
        print("veil: --runs must be at least 1", file=sys.stderr)
        return 2
    least = 3 if args.command == "demo" else 2
    if getattr(args, "participants", least) < least:
        print(f"veil: --participants must be at least {least}", file=sys.stderr)
        return 2
    handler = args.handler
    try:
        return int(handler(args))
    except ModuleNotFoundError as missing:
        if missing.name is None or missing.name.partition(".")[0] not in _SERVER_MODULES:
            raise
        print(
            f"veil {args.command}: needs the server extra (no module {missing.name!r}): "
            "pip install 'veil[server]'",
            file=sys.stderr,
        )
        return 2


_SERVER_MODULES = frozenset(
    {"fastapi", "uvicorn", "starlette", "sqlalchemy", "alembic", "jwt", "psycopg", "redis",
     "nats", "prometheus_client", "pydantic", "pydantic_core", "cachetools"}
)  # fmt: skip
"""What ``pip install -e .`` (the SDK alone) leaves out: ``veil[server]`` brings them
(every module of that extra, whichever a command imports first; tests/test_packaging.py)."""


if __name__ == "__main__":
    sys.exit(main())
