#!/usr/bin/env python3
"""A lean HTTP/1.1 server for bench/http_fanout.sh: asyncio protocols (no
thread per connection), keep-alive, several worker processes sharing one
port with SO_REUSEPORT, so a 2-CPU machine's Python is not the bottleneck of
a 200-way fan-out.  Routes: /delay/<ms>[/<code>] (answers after ms), anything
else 200 "ok".  Logs nothing.

    python3 bench/http/fastd.py [--procs 2] [--port 0]

prints the port once every worker listens; stops on SIGTERM (all workers)
or when its parent dies.  127.0.0.1 only.  Python 3 standard library only.
"""
import argparse
import asyncio
import os
import signal
import socket
import sys
import time

REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
        self.busy = False
        self.queue = []
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.t.close()
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            clen = 0
            close = False
            for l in lines[1:]:
                k, _, v = l.partition(":")
                k = k.strip().lower()
                if k == "content-length":
                    clen = int(v.strip() or 0)
                elif k == "connection" and v.strip().lower() == "close":
                    close = True
            if len(self.buf) < end + 4 + clen:
                return
            self.buf = self.buf[end + 4 + clen:]
            parts = lines[0].split(" ")
            method = parts[0]
            path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
            self.queue.append((method, path, close))
            if not self.busy:
                asyncio.ensure_future(self.serve())

    async def serve(self):
        self.busy = True
        while self.queue:
            method, path, close = self.queue.pop(0)
            code, body = 200, b"ok\n"
            seg = path.split("/")
            if len(seg) >= 3 and seg[1] == "delay":
                try:
                    ms = int(seg[2])
                    if len(seg) >= 4 and seg[3]:
                        code = int(seg[3])
                except ValueError:
                    code = 404
                else:
                    if ms > 0:
                        await asyncio.sleep(ms / 1000.0)
            if self.t.is_closing():
                break
            hdr = ("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
                   % (code, REASONS.get(code, "X"), len(body),
                      "Connection: close\r\n" if close else "")).encode()
            self.t.write(hdr if method == "HEAD" else hdr + body)
            if close:
                self.t.close()
                break
        self.busy = False


async def worker(sock):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, sock=sock, backlog=4096)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    parent = os.getppid()

    async def watchdog():
        while True:
            await asyncio.sleep(0.5)
            if os.getppid() != parent:
                stop.set()

    asyncio.ensure_future(watchdog())
    await stop.wait()
    server.close()


def listener(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    s.setblocking(False)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    first = listener(args.port)
    port = first.getsockname()[1]
    socks = [first] + [listener(port) for _ in range(args.procs - 1)]
    kids = []
    for s in socks[1:]:
        pid = os.fork()
        if pid == 0:
            for o in socks:
                if o is not s:
                    o.close()
            asyncio.run(worker(s))
            os._exit(0)
        kids.append(pid)
        s.close()

    def stop_all(*_):
        for k in kids:
            try:
                os.kill(k, signal.SIGTERM)
            except OSError:
                pass
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop_all)
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    try:
        asyncio.run(worker(first))
    finally:
        for k in kids:
            try:
                os.kill(k, signal.SIGTERM)
            except OSError:
                pass


if __name__ == "__main__":
    main()
