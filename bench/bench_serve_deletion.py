#!/usr/bin/env python3
"""Deletions under serving load (standard library + `wrk`).

For configs/fashion-mnist.yaml (S=5), one id's deletion is timed from
POST /v1/forget to `applied` twice on two copies of the same run: on an idle
server, and on a server under an 8-connection single-sample predict load.
Reported for --serving-nice 10 (the default: request threads below the
retrain) and 0 (equal shares, the behaviour before): the deletion's slow-down
under load, and the throughput the server keeps during the deletion against
its idle throughput. Issue #12's targets: <= 2x and >= 50%.

Usage: python3 bench/bench_serve_deletion.py [--sisa build/sisa] [--work /tmp/sisa-bench-del] [--ids 4711,27182]
"""
import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_serve import HERE, Server, request_bodies, sh, wrk  # noqa: E402


def time_to_applied(server, ids, token):
    t0 = time.time()
    rid = server.post("/v1/forget", {"ids": ids}, token)["id"]
    while (state := server.get(f"/v1/forget/{rid}"))["state"] not in ("applied", "failed"):
        time.sleep(0.05)
    if state["state"] != "applied":
        sys.exit(f"deletion failed: {state}")
    return time.time() - t0, len(state["receipt"]["shards"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sisa", default="build/sisa")
    ap.add_argument("--work", default="/tmp/sisa-bench-del")
    ap.add_argument("--ids", default="4711,27182", help="one deletion per id, each of one id")
    ap.add_argument("--seconds", type=int, default=10, help="idle throughput measurement")
    a = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    sisa = os.path.abspath(a.sisa)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    base = f"{a.work}/base"
    sh([sisa, "train", "-q", "-c", "configs/fashion-mnist.yaml", "-r", base])
    token_file = f"{a.work}/token"
    token = "bench-deletion-token-0123456789"
    with open(token_file, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)
    one, _ = request_bodies(a.work)
    ids = [int(x) for x in a.ids.split(",")]
    rows = []
    for nice in (10, 0):
        for victim in ids:
            idle_run, load_run = f"{a.work}/n{nice}-{victim}-idle", f"{a.work}/n{nice}-{victim}-load"
            shutil.copytree(base, idle_run)
            shutil.copytree(base, load_run)
            extra = ["--serving-nice", str(nice)]
            server = Server(sisa, idle_run, token_file, extra)
            wrk(server.url + "/v1/predict", one, 8, 2)  # warm up
            idle = wrk(server.url + "/v1/predict", one, 8, a.seconds)
            t_idle, shards = time_to_applied(server, [victim], token)
            server.stop()
            server = Server(sisa, load_run, token_file, extra)
            wrk(server.url + "/v1/predict", one, 8, 2)
            load = subprocess.Popen(["wrk", "-t2", "-c8", "-d600s", "-s", os.path.join(HERE, "wrk_post.lua"),
                                     server.url + "/v1/predict"], stdout=subprocess.PIPE, text=True,
                                    env=dict(os.environ, SISA_BODY=one))
            time.sleep(1)
            t_load, _ = time_to_applied(server, [victim], token)
            if idle["errors"]:
                sys.exit(f"{idle['errors']} predict errors on the idle server")
            load.send_signal(signal.SIGINT)  # wrk reports on SIGINT: the load spans the deletion
            m = re.search(r"SISA_RESULT requests=(\d+) duration_us=(\d+) errors=(\d+) non2xx=(\d+) p50_us=(\d+) "
                          r"p99_us=(\d+)", load.communicate()[0])
            req, dur, err, non2xx, p50, p99 = map(int, m.groups())
            rps = req / (dur / 1e6)
            server.stop()
            rows.append(f"| {nice} | {victim} | {shards} | {t_idle:.2f} | {t_load:.2f} | {t_load / t_idle:.2f} | "
                        f"{idle['rps']:,.0f} | {rps:,.0f} | {rps / idle['rps']:.0%} | {p99 / 1e3:.1f} | {err + non2xx} |")
    print(f"Machine: {platform.node() or 'vm'}, {os.cpu_count()} CPUs, {platform.platform()}  ")
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ")
    print()
    print("| serving nice | id | shards retrained | applied after, idle s | under load s | slow-down | "
          "idle req/s | req/s during the deletion | kept | p99 ms under load | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
