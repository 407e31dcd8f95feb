"""Large request bodies through a proxy for benches/load/bodies.sh: COUNT POSTs on one keep-alive
connection to 127.0.0.1:PORT, each sent whole and its answer read whole before the next; prints
one JSON line {"status": [...], "seconds": [...], "bytes": N} (seconds: first byte sent ->
answer read). Every wait is bounded by the socket timeout. Loopback only. Not a test: nothing
asserts; a non-2xx status is printed for the caller to report.

    bodies.py PORT unsigned SIZE COUNT        # POST /api/upload, SIZE bytes, no signature
    bodies.py PORT signed REQS_FILE COUNT     # the pre-signed requests presign.py wrote, with
                                              # REQS_FILE.body as every one's body
"""
import json
import socket
import sys
import time

CHUNK = 1 << 20


def read_answer(s: socket.socket) -> int:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer's head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the answer's body")
        rest += chunk
    return int(lines[0].split()[1])


def main() -> None:
    port, kind, arg, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    if kind == "unsigned":
        size = int(arg)
        body = bytes(range(256)) * (CHUNK // 256)
        head = (
            f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
        heads = [head] * count
        chunks = [body] * (size // CHUNK) + ([body[: size % CHUNK]] if size % CHUNK else [])
    else:
        data = open(arg, "rb").read()
        heads = [r + b"\r\n\r\n" for r in data.split(b"\r\n\r\n") if r.strip()][:count]
        whole = open(arg + ".body", "rb").read()
        size = len(whole)
        chunks = [whole[i : i + CHUNK] for i in range(0, size, CHUNK)]
        if len(heads) < count:
            sys.exit(f"{arg} has {len(heads)} requests, {count} needed")
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    status, seconds = [], []
    for h in heads:
        t0 = time.perf_counter()
        s.sendall(h)
        for c in chunks:
            s.sendall(c)
        status.append(read_answer(s))
        seconds.append(time.perf_counter() - t0)
    s.close()
    print(json.dumps({"status": status, "seconds": seconds, "bytes": size}))


if __name__ == "__main__":
    main()
