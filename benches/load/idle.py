"""Idle keep-alive connections for benches/load/idle.sh: opens COUNT connections to
127.0.0.1:PORT, sends one `GET /api/item?x=1` on each and reads its whole answer (Content-Length
or chunked), then keeps every connection open and idle. Prints `ready COUNT` on stdout once all
are idle (or `failed N: reason` and exits 1), then waits for a line on stdin: `check` sends one
more request on a new connection and prints `check STATUS alive K` (K: idle connections the
server has not closed), anything else (or end of input)
closes everything and exits. Every wait is bounded. Loopback only.

    idle.py PORT COUNT
"""
import resource
import socket
import sys
import time

REQ = b"GET /api/item?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-bench\r\n\r\n"


def read_response(s: socket.socket) -> int:
    """Reads one response off s (bounded by the socket timeout); returns its status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"content-length" in headers:
        need = int(headers[b"content-length"])
        while len(rest) < need:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the body")
            rest += chunk
    elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a chunked body")
            rest += chunk
    return status


def request(port: int, s: socket.socket | None = None) -> tuple[socket.socket, int]:
    if s is None:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(REQ)
    return s, read_response(s)


def alive(conns: list[socket.socket]) -> int:
    """How many of conns the server has not closed (nothing to read and not at end of stream)."""
    n = 0
    for s in conns:
        s.setblocking(False)
        try:
            n += s.recv(1, socket.MSG_PEEK) != b""  # data on an idle connection: still open
        except BlockingIOError:
            n += 1
        except OSError:
            pass
        finally:
            s.setblocking(True)
    return n


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))
    conns = []
    deadline = time.monotonic() + 120
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                raise TimeoutError(f"opened only {i} in 120 s")
            s, status = request(port)
            if status // 100 != 2:
                raise ConnectionError(f"status {status}")
            conns.append(s)
    except Exception as e:  # noqa: BLE001 - any failure ends the bench with its reason
        print(f"failed {len(conns)}: {e}", flush=True)
        sys.exit(1)
    print(f"ready {len(conns)}", flush=True)
    for line in sys.stdin:
        if line.strip() != "check":
            break
        try:
            s, status = request(port)
            s.close()
            print(f"check {status} alive {alive(conns)}", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"check failed: {e}", flush=True)
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()
