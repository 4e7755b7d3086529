"""Measures what bench/delay-proxy.py really adds, with a TCP echo server of
its own behind it: for each RTT given, the median time of a connect plus
one echo (two round trips, as the proxy holds the connection's start for
one) and of each further echo (one), over 10 connections of 6 echoes.

    delay-proxy-check.py RTT_MS...

Prints one line per RTT. Standard library only.
"""

import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path


def main():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def serve():
        while True:
            conn, _ = srv.accept()

            def echo(conn=conn):
                while data := conn.recv(65536):
                    conn.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    proxy = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("delay-proxy.py")), str(srv.getsockname()[1])]
        + sys.argv[1:], stdout=subprocess.PIPE, text=True)
    ports = {}
    for line in proxy.stdout:
        if line.strip() == "ready":
            break
        rtt, port = line.split()
        ports[rtt] = int(port)
    try:
        for rtt, port in ports.items():
            first, each = [], []
            for _ in range(10):
                t0 = time.perf_counter()
                s = socket.create_connection(("127.0.0.1", port))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(b"x")
                s.recv(16)
                first.append(time.perf_counter() - t0)
                for _ in range(5):
                    t0 = time.perf_counter()
                    s.sendall(b"y")
                    s.recv(16)
                    each.append(time.perf_counter() - t0)
                s.close()
            print(f"{rtt} ms: connect and first echo {statistics.median(first) * 1e3:.2f} ms "
                  f"(2 RTT: {2 * float(rtt):g}), each further echo {statistics.median(each) * 1e3:.2f} ms "
                  f"(1 RTT: {float(rtt):g})")
    finally:
        proxy.kill()


if __name__ == "__main__":
    main()
