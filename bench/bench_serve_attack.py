#!/usr/bin/env python3
"""`sisa serve` against `sisa serve`: this build's server and another build's
(for example the last commit before a change), on the same machine, the same
run and in the same process of measurement.

For configs/fashion-mnist.yaml (MLP 784-256-10) with S=5, for each server:
  * single-sample POST /v1/predict at 1, 8 and 64 connections (wrk): requests/s, p50, p99;
  * batched requests (64 inputs each) at 8 connections: predictions/s;
  * under attack: 64 slowloris clients (a request started, then one header
    byte every 2 s, reconnecting when cut off) and a header flood (short
    header fields as fast as the socket takes them, 72 MB in all) from other
    loopback addresses, while a healthy client (wrk, 1 connection) keeps
    asking: its requests/s, p50, p99, errors (a request unanswered for 5 s
    counts as one), the server's RSS growth, and whether it survived.
Prints Markdown for docs/benchmarks.md.

Usage: python3 bench/bench_serve_attack.py [--sisa build/sisa] [--other /path/to/old/sisa]
       [--other-lib DIR (LD_LIBRARY_PATH for it)] [--seconds 10]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

from bench_serve import request_bodies, wrk


def rss_mib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def watch_peak_rss(pid, stop, peak, period):
    """Keeps peak[0] at the largest RSS of `pid` (MiB), sampled every `period` s until `stop` is set."""
    while not stop.is_set():
        v = rss_mib(pid)
        if v:
            peak[0] = max(peak[0], v)
        stop.wait(period)


def connect(source, port):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def slowloris(port, n, stop):
    """n connections that each send one header byte every 2 s; cut ones are reopened."""
    socks = [None] * n
    while not stop.is_set():
        for i in range(n):
            try:
                if socks[i] is None:
                    socks[i] = connect("127.0.0.2", port)
                    socks[i].sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                socks[i].sendall(b"a")
            except OSError:
                if socks[i]:
                    socks[i].close()
                socks[i] = None
        stop.wait(2)
    for s in socks:
        if s:
            s.close()


def header_flood(port, budget, stop):
    """Endless short header fields, connection after connection, until `budget` bytes are sent."""
    chunk = b"X-a: b\r\n" * 8192
    sent = 0
    while not stop.is_set() and sent < budget:
        try:
            s = connect("127.0.0.3", port)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(366):  # 3 million fields per connection
                if stop.is_set() or sent >= budget:
                    break
                s.sendall(chunk)
                sent += len(chunk)
            s.close()
        except OSError:
            pass
    return sent


class Server:
    def __init__(self, sisa, lib, run_dir):
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        if lib:
            env["LD_LIBRARY_PATH"] = lib
        self.p = subprocess.Popen([sisa, "serve", "--json", "-q", "--port", "0", "-r", run_dir],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.port = json.loads(self.p.stdout.readline())["port"]
        self.url = f"http://127.0.0.1:{self.port}/v1/predict"

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        self.p.terminate()
        try:
            return self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def measure(name, sisa, lib, run, one, batch, seconds):
    rows = []
    server = Server(sisa, lib, run)
    wrk(server.url, one, 8, 2, timeout=5)  # warm up
    for c in (1, 8, 64):
        r = wrk(server.url, one, c, seconds, timeout=5)
        rows.append(f"| {name} | single | {c} | {r['rps']:,.0f} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    r = wrk(server.url, batch, 8, seconds, timeout=5)
    rows.append(f"| {name} | batch of 64 | 8 | {r['rps']:,.0f} | {r['rps'] * 64:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")

    before = rss_mib(server.p.pid)
    stop = threading.Event()
    peak = [before]

    flood_sent = [0]
    threads = [threading.Thread(target=slowloris, args=(server.port, 64, stop)),
               threading.Thread(target=lambda: flood_sent.__setitem__(0, header_flood(server.port, 72 << 20, stop))),
               threading.Thread(target=watch_peak_rss, args=(server.p.pid, stop, peak, 0.2))]
    for t in threads:
        t.start()
    time.sleep(3)  # the attackers are in place
    r = wrk(server.url, one, 1, seconds, timeout=5)
    stop.set()
    for t in threads:
        t.join()
    survived = server.alive()
    rows.append(f"| {name} | single, **under attack** (64 slowloris + header flood, {flood_sent[0] >> 20} MB sent) | 1 "
                f"| {r['rps']:,.0f} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    server.stop()
    attack = (f"{name}: RSS {before:.0f} MB before the attack, peak {peak[0]:.0f} MB during it "
              f"(+{peak[0] - before:.0f} MB); {'survived' if survived else 'DIED'}.")
    return rows, attack


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--other", help="another build's sisa binary to compare with")
    ap.add_argument("--other-lib", help="LD_LIBRARY_PATH for --other (where its libsisa.so is)")
    ap.add_argument("--work", default="/tmp/sisa-bench-serve-attack")
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    sisa = os.path.abspath(a.sisa)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    one, batch = request_bodies(a.work)
    run = f"{a.work}/s5"
    # Trained by the other build if there is one: an older server may not read a newer manifest
    # format, while this build reads older ones. The models are the same bits either way.
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if a.other_lib:
        env["LD_LIBRARY_PATH"] = a.other_lib
    subprocess.run([os.path.abspath(a.other) if a.other else sisa, "train", "-q", "-c", "configs/fashion-mnist.yaml",
                    "-r", run], check=True, env=env)
    servers = [("this build", sisa, None)]
    if a.other:
        servers.append(("other build", os.path.abspath(a.other), a.other_lib))
    out = [f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} vCPU; configs/fashion-mnist.yaml "
           f"(MLP 784-256-10, S=5, E=20); wrk on the same machine, {a.seconds} s per measurement; one "
           "Fashion-MNIST test image per request (raw pixels as JSON, ~2.3 KB); each server with its defaults.", "",
           "| server | load | connections | requests/s | predictions/s | p50 ms | p99 ms | errors |",
           "|---|---|---|---|---|---|---|---|"]
    notes = []
    for name, binary, lib in servers:
        r, note = measure(name, binary, lib, run, one, batch, a.seconds)
        out += r
        notes.append(note)
    out += [""] + notes + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
