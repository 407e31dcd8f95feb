"""A body sink upstream for benches/load/bodies.sh: listens on 127.0.0.1:PORT and answers every
HTTP/1.1 request with `200 ok` only after reading its whole body (Content-Length or chunked), so
the time a proxy takes includes sending the body on (nginx `return 200` answers before it has the
body). Keep-alive, one thread per connection. Loopback only; runs until killed.

    sink.py PORT
"""
import socket
import sys
import threading

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"


class Conn:
    def __init__(self, s: socket.socket) -> None:
        self.s, self.buf = s, bytearray()

    def fill(self) -> bool:
        chunk = self.s.recv(1 << 20)
        self.buf += chunk
        return bool(chunk)

    def line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self.fill():
                return None
        i = self.buf.index(b"\r\n")
        out = bytes(self.buf[:i])
        del self.buf[: i + 2]
        return out

    def skip(self, n: int) -> bool:
        while n > 0:
            if not self.buf and not self.fill():
                return False
            k = min(n, len(self.buf))
            del self.buf[:k]
            n -= k
        return True


def serve(s: socket.socket) -> None:
    c = Conn(s)
    try:
        while True:
            first = c.line()
            if not first:
                return
            length, chunked = 0, False
            while (h := c.line()) not in (None, b""):
                k, _, v = h.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v.strip())
                elif k == b"transfer-encoding" and b"chunked" in v.lower():
                    chunked = True
            if chunked:
                while True:
                    size_line = c.line()
                    if size_line is None:
                        return
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        while c.line() not in (None, b""):
                            pass
                        break
                    if not c.skip(size + 2):
                        return
            elif not c.skip(length):
                return
            s.sendall(OK)
    except OSError:
        pass
    finally:
        s.close()


def main() -> None:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(sys.argv[1])))
    ls.listen(128)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve, args=(s,), daemon=True).start()


if __name__ == "__main__":
    main()
