"""Calls per request into the allocator, from a callgrind output file (for instructions.sh).

    cgcalls.py CALLGRIND_OUT N

Sums the `calls=` counts of every call whose callee is an allocator entry point (mimalloc's
`mi_malloc*`/`mi_zalloc*`/`mi_calloc*`/`mi_realloc*`, glibc's `malloc`/`calloc`/`realloc`) and
of every call to a free (`mi_free*`, `free`), over the whole profile, and prints
`ALLOCS FREES` per request (divided by N). Calls inside the allocator itself are not entry points
and are not counted.
"""
import re
import sys

ALLOC = re.compile(r"^(mi_(malloc|zalloc|calloc|realloc|rezalloc)(_aligned)?|malloc|calloc|realloc)$")
FREE = re.compile(r"^(mi_free(_size|_aligned|_size_aligned)?|free|cfree)$")
NAME = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")


def main() -> None:
    path, n = sys.argv[1], int(sys.argv[2])
    names: dict[str, str] = {}
    callee = None
    allocs = frees = 0
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                m = NAME.match(line.rstrip("\n"))
                if m:
                    if m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                    if line.startswith("cfn="):
                        callee = names.get(m.group(1), "")
            elif line.startswith("calls=") and callee is not None:
                count = int(line[6:].split()[0])
                if ALLOC.match(callee):
                    allocs += count
                elif FREE.match(callee):
                    frees += count
                callee = None
    print(f"{allocs / n:.1f} {frees / n:.1f}")


if __name__ == "__main__":
    main()
