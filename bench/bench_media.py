"""Benchmark a published image served by `clubjapon-ops web` (waitress) on 127.0.0.1 (not a test).

    .venv/bin/python bench/bench_media.py                 # 10 s, 4 clients
    .venv/bin/python bench/bench_media.py --seconds 20 --clients 8
    .venv/bin/python bench/bench_media.py --smoke         # seconds: does it still work?

Copies config/ and templates/ into a temporary project, makes a photo-like JPEG with Pillow
(2,400 px wide, about 2 MB), publishes it through `preview --check` (as marketing's check
does: resized to 1,200 px and recompressed), starts `clubjapon-ops web` on a free loopback
port, and has client processes GET the published copy over kept-alive connections for a
bounded time. Prints requests per second and the bytes served. Client processes share the
machine with the server: the figure is a lower bound of what waitress does alone.
"""

from __future__ import annotations

import argparse
import http.client
import io
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLUG = "2025-11-04-lille"
SECTION = ("  - type: image\n    file: photo.jpg\n"
           "    alt: { fr: Table ronde, en: Round table, ja: 座談会 }\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _photo(width: int, height: int) -> bytes:
    from PIL import Image

    noise = Image.effect_noise((width, height), 60).convert("RGB")
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    Image.blend(noise, gradient, 0.5).save(out, "JPEG", quality=92)
    return out.getvalue()


def _cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used so far (Linux's /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_until_up(port: int, server: subprocess.Popen[str]) -> None:
    """Wait for `web` to answer its health check, at most 30 s."""
    started = time.perf_counter()
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("HEAD", "/healthz")
            conn.getresponse().read()
            return
        except OSError:
            if server.poll() is not None or time.perf_counter() - started > 30:
                raise SystemExit("web did not start") from None
            time.sleep(0.1)
        finally:
            conn.close()


def _client(port: int, path: str, until: float, limit: int, counts: multiprocessing.Queue) -> None:
    """GET ``path`` over one kept-alive connection until ``until`` or ``limit`` requests."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    done = served = 0
    while done < limit and time.perf_counter() < until:
        conn.request("GET", path, headers={"Host": "127.0.0.1"})
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise SystemExit(f"GET {path} answered {answer.status}")
        done += 1
        served += len(body)
    conn.close()
    counts.put((done, served))


def main() -> None:
    """Build the project, publish the photo, serve it, and measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--width", type=int, default=2400,
                        help="the photo's width in px (height 2/3 of it); over 1,200 it is "
                             "published resized to 1,200")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads (web --threads)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.clients, args.width = 0.5, 1, 600
    limit = 50 if args.smoke else 10_000_000

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "config", root / "config")
        shutil.copytree(REPO / "templates", root / "templates")
        (root / "config" / "editions" / "media").mkdir(exist_ok=True)
        (root / "config" / "editions" / "media" / "photo.jpg").write_bytes(
            _photo(args.width, args.width * 2 // 3))
        edition = root / "config" / "editions" / f"{SLUG}.yaml"
        edition.write_text(edition.read_text(encoding="utf-8").replace(
            "\nsections:\n", "\nsections:\n" + SECTION, 1), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBJAPON_")}
        env.update({"CLUBJAPON_HOME": str(root), "CLUBJAPON_SECRET": "bench-" + "0" * 32,
                    "CLUBJAPON_PUBLIC_URL": "https://club-japon.example.org"})
        command = [sys.executable, "-m", "clubjapon_ops"]
        subprocess.run([*command, "preview", SLUG, "--check"], env=env, check=False,
                       capture_output=True, timeout=120)
        names = [p.name for p in (root / "var" / "media").glob("*.jpg")]
        if len(names) != 1:
            raise SystemExit(f"the photo was not published: {names}")
        size = (root / "var" / "media" / names[0]).stat().st_size
        port = _free_port()
        server = subprocess.Popen(
            [*command, "web", "--port", str(port), "--threads", str(args.threads)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_until_up(port, server)
            path = f"/media/{names[0]}"
            counts: multiprocessing.Queue = multiprocessing.Queue()
            cpu_before = _cpu_seconds(server.pid)
            began = time.perf_counter()
            until = began + args.seconds
            clients = [multiprocessing.Process(target=_client,
                                               args=(port, path, until, limit, counts))
                       for _ in range(args.clients)]
            for client in clients:
                client.start()
            results = [counts.get(timeout=args.seconds + 60) for _ in clients]
            elapsed = time.perf_counter() - began
            cpu_after = _cpu_seconds(server.pid)
            for client in clients:
                client.join(timeout=10)
        finally:
            server.terminate()
            server.wait(timeout=10)
    requests = sum(done for done, _ in results)
    served = sum(bytes_ for _, bytes_ in results)
    print(f"GET {re.sub('[0-9a-f]{64}', '<sha256>', path)} ({size / 1024:.0f} KB) from "
          f"`clubjapon-ops web` (waitress, {args.threads} threads), {args.clients} kept-alive "
          f"client process(es), {elapsed:.1f} s on {os.cpu_count()} core(s): "
          f"{requests / elapsed:,.0f} requests/s, {served / elapsed / 1024 / 1024:,.0f} MB/s")
    if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
        # On a shared machine the clients and other work take cores from the server: its
        # own CPU time per request is the figure that does not depend on them.
        print(f"the server used {cpu_after - cpu_before:.2f} CPU-s: "
              f"{requests / (cpu_after - cpu_before):,.0f} requests per CPU-second "
              f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
