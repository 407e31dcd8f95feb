"""Where a request's work goes, by group of functions: one grouping for perf samples
(perfstat.sh) and callgrind instruction counts (instructions.sh), so the two tables line up and
time per instruction can be read group by group.

    groups.py perf NAME CPU_US REPORT [NAME CPU_US REPORT ...]
        REPORT: `perf report --no-children --sort dso,sym --stdio`; CPU_US: the case's CPU µs
        per request. Prints a Markdown table: per group, % of samples and µs per request.
    groups.py callgrind N NAME OUT [NAME OUT ...]
        OUT: a callgrind output file of N requests. Prints per group the instructions per request
        (self cost of the group's functions, read from the file itself).

The first group whose pattern matches a symbol takes it. Inlined functions count for their caller.
"""
import re
import sys

GROUPS = [
    ("Ed25519 verify (curve25519-dalek, ed25519-dalek)", r"curve25519|ed25519|fiat_|FieldElement|EdwardsPoint|Scalar52|Scalar::|subtle::"),
    ("SHA-2 (the verify's SHA-512; Content-Digest)", r"sha2::|sha512|sha256|compress256|compress512"),
    ("replay store (sigproxy::replay, siphash)", r"sigproxy::replay|siphasher|SipHasher"),
    ("signature parsing, base, keys (sigproxy::signature/keys, sfv, base64)", r"sigproxy::signature|sigproxy::keys|sfv::|base64"),
    ("audit line, metrics, log sink (sigproxy::observe/metrics/logsink)", r"sigproxy::observe|sigproxy::metrics|sigproxy::logsink|prometheus"),
    ("gate, policy, rest of sigproxy", r"sigproxy::"),
    ("allocator (mimalloc, malloc)", r"^_?mi_|mimalloc|\bmalloc\b|\bfree\b|realloc|calloc|__rust_alloc|__rust_dealloc|__rdl_|cfree"),
    ("memcpy / memmove / memset", r"mem(cpy|move|set)|__memcpy|__memmove|__memset"),
    ("Pingora (proxy, core, HTTP/1)", r"pingora"),
    ("tokio runtime", r"tokio::|mio::"),
    ("http, httparse, bytes, hashbrown", r"^http::|<http::|httparse|bytes::|hashbrown|as http::"),
    ("clock reads (clock_gettime)", r"clock_gettime|Timespec>::now|Instant::now|SystemTime::now"),
    ("formatting (core::fmt)", r"core::fmt|Formatter"),
    ("other user space", r"."),
]
KERNEL = "kernel"


def group(sym: str) -> str:
    for name, rx in GROUPS:
        if re.search(rx, sym):
            return name
    return GROUPS[-1][0]


def perf(args: list[str]) -> None:
    line_re = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$")
    cases = []
    for i in range(0, len(args), 3):
        name, cpu, path = args[i], args[i + 1], args[i + 2]
        shares: dict[str, float] = {}
        total = 0.0
        try:
            lines = open(path, errors="replace").read().splitlines()
        except OSError:
            lines = []
        for l in lines:
            m = line_re.match(l)
            if not m:
                continue
            pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
            total += pct
            g = KERNEL if kind == "k" or "kernel" in dso else group(sym)
            shares[g] = shares.get(g, 0.0) + pct
        try:
            cpu_us = float(cpu)
        except ValueError:
            cpu_us = 0.0
        cases.append((name, cpu_us, shares, total))
    print("| where | " + " | ".join(f"{c[0]}: % · µs/req" for c in cases) + " |")
    print("|---|" + "---|" * len(cases))
    for g in [n for n, _ in GROUPS] + [KERNEL]:
        cells = []
        for _, cpu_us, shares, total in cases:
            s = shares.get(g, 0.0) * 100 / total if total else 0.0
            cells.append(f"{s:.1f}% · {s / 100 * cpu_us:.1f}" if total else "-")
        print(f"| {g} | " + " | ".join(cells) + " |")
    print("| total CPU µs/req (task-clock) | " + " | ".join(f"{c[1]:.1f}" for c in cases) + " |")


def self_costs(path: str) -> tuple[list[str], dict[str, list[int]]]:
    """The event names and the self cost per function of a callgrind output file: every cost
    line under `fn=`, except the line after `calls=`, which is the callee's inclusive cost."""
    names: dict[str, str] = {}
    per: dict[str, list[int]] = {}
    events = ["Ir"]
    fn = ""
    skip_next = False
    name_re = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")
    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()[1:]
                if parts and parts[0].isdigit():
                    acc = per.setdefault(fn, [0] * len(events))
                    for k, v in enumerate(parts[: len(events)]):
                        acc[k] += int(v)
            elif line.startswith("fn="):
                m = name_re.match(line.rstrip("\n"))
                if m:
                    if m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                    fn = names.get(m.group(1), "")
            elif line.startswith("cfn="):
                m = name_re.match(line.rstrip("\n"))
                if m and m.group(2) is not None:
                    names[m.group(1)] = m.group(2)
            elif line.startswith("calls="):
                skip_next = True
            elif line.startswith("events:"):
                events = line.split()[1:]
    return events, per


def callgrind(args: list[str]) -> None:
    n = int(args[0])
    cases = []
    events: list[str] = ["Ir"]
    for i in range(1, len(args), 2):
        name, path = args[i], args[i + 1]
        events, costs = self_costs(path)
        per: dict[str, list[int]] = {}
        total = [0] * len(events)
        for fn, cost in costs.items():
            acc = per.setdefault(group(fn), [0] * len(events))
            for k, v in enumerate(cost):
                acc[k] += v
                total[k] += v
        cases.append((name, per, total))
    order = [g for g, _ in GROUPS]
    print("| where | " + " | ".join(f"{c[0]}: instructions/req" for c in cases) + " |")
    print("|---|" + "---|" * len(cases))
    for g in order:
        print(f"| {g} | " + " | ".join(f"{c[1].get(g, [0])[0] / n:,.0f}" for c in cases) + " |")
    print("| total (user space) | " + " | ".join(f"{c[2][0] / n:,.0f}" for c in cases) + " |")
    # With --cache-sim=yes: simulated first-level and last-level misses per request.
    ix = {e: k for k, e in enumerate(events)}
    if "D1mr" not in ix:
        return

    def misses(cost: list[int], keys: list[str]) -> float:
        return sum(cost[ix[k]] for k in keys if k in ix and ix[k] < len(cost)) / n

    l1 = ["I1mr", "D1mr", "D1mw"]
    ll = ["ILmr", "DLmr", "DLmw"]
    print()
    print("Simulated cache misses per request (callgrind --cache-sim=yes: its own model of this "
          "machine's caches, user space only, one process alone), L1 (I1+D1) / last level:")
    print()
    print("| where | " + " | ".join(f"{c[0]}: L1 / LL misses per req" for c in cases) + " |")
    print("|---|" + "---|" * len(cases))
    for g in order:
        cells = []
        for c in cases:
            cost = c[1].get(g, [0] * len(events))
            cells.append(f"{misses(cost, l1):,.0f} / {misses(cost, ll):,.1f}")
        print(f"| {g} | " + " | ".join(cells) + " |")
    print("| total | " + " | ".join(f"{misses(c[2], l1):,.0f} / {misses(c[2], ll):,.1f}" for c in cases) + " |")


def main() -> None:
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "perf":
        perf(rest)
    elif mode == "callgrind":
        callgrind(rest)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
