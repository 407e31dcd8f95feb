"""Sequential keep-alive requests for benches/load/instructions.sh: a fixed count, one
connection, each response read whole before the next request, so the proxy does the same work
per request in every run. Not a load generator (see loadgen.rs).

    drive.py PORT COUNT [REQS_FILE [OFFSET]]

Without REQS_FILE: `GET /api/item?x=1`. With it: the pre-signed requests presign.py writes
(bodiless ones, separated by their blank line), starting at OFFSET. Exits 1 on a non-2xx answer.
"""
import socket
import sys


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    reqs = None
    if len(sys.argv) > 3:
        data = open(sys.argv[3], "rb").read()
        reqs = [r + b"\r\n\r\n" for r in data.split(b"\r\n\r\n") if r.strip()]
        offset = int(sys.argv[4]) if len(sys.argv) > 4 else 0
        if offset + count > len(reqs):
            sys.exit(f"{sys.argv[3]} has {len(reqs)} requests, {offset + count} needed")
    plain = b"GET /api/item?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: drive\r\n\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    buf = b""
    for i in range(count):
        s.sendall(reqs[offset + i] if reqs else plain)
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"connection closed after {i} responses")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"connection closed in response {i}")
            rest += chunk
        if not head.startswith(b"HTTP/1.1 2"):
            sys.exit(f"response {i}: {head.decode(errors='replace')}")
        buf = rest[length:]


if __name__ == "__main__":
    main()
