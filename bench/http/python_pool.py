#!/usr/bin/env python3
"""The Python peer of bench/http_fanout.sh: what a script would do --
concurrent.futures.ThreadPoolExecutor over urllib.request.urlopen.

    python3 bench/http/python_pool.py URLS_FILE [WORKERS]

Exits 1 if any request fails or answers other than 200."""
import concurrent.futures
import sys
import urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
        return r.status


def main():
    with open(sys.argv[1]) as f:
        urls = [l.strip() for l in f if l.strip()]
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else min(len(urls), 100)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(get, urls))
    bad = [c for c in codes if c != 200]
    if bad:
        sys.stderr.write("python_pool: %d of %d not 200\n" % (len(bad), len(urls)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
