"""Hostile program: reach any network (the host's loopback, the outside world, DNS).

Self-contained, so it also serves as the body of a fake ``dp_runner/__main__.py``. Exit status 0 and a log event
starting with "ESCAPED:" only when the attack succeeded; status 3 when it was contained.
Optional targets come as JSON in the HOSTILE_ARGS environment variable or under "hostile" in the spec file
(argv[1]): {"tcp": [[host, port], ...], "udp": [[host, port], ...]}.
"""

import json
import os
import socket
import sys


def hostile_args() -> dict:
    raw = os.environ.get("HOSTILE_ARGS")
    if raw:
        return json.loads(raw)
    if len(sys.argv) > 1:
        try:
            with open(sys.argv[1]) as fh:
                spec = json.load(fh)
            return spec.get("hostile", {}) if isinstance(spec, dict) else {}
        except (OSError, ValueError):
            return {}
    return {}


def report(message: str, code: int) -> None:
    print(json.dumps({"event": "log", "message": message}), flush=True)
    sys.exit(code)


def main() -> None:
    args = hostile_args()
    tcp = [tuple(t) for t in args.get("tcp", [])]
    tcp += [("127.0.0.1", p) for p in (22, 80, 5432, 6379, 8000, 8545)]
    tcp += [("1.1.1.1", 443), ("8.8.8.8", 53), ("10.0.2.2", 80)]
    for host, port in tcp:
        try:
            with socket.create_connection((host, port), timeout=1):
                report(f"ESCAPED: TCP connection to {host}:{port}", 0)
        except OSError:
            pass

    # A DNS query for example.com (id 0x1234, recursion desired).
    query = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
    udp = [tuple(t) for t in args.get("udp", [])] + [("8.8.8.8", 53), ("1.1.1.1", 53), ("127.0.0.53", 53)]
    for host, port in udp:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(1)
                sock.sendto(query, (host, port))
                sock.recvfrom(512)
                report(f"ESCAPED: UDP reply from {host}:{port}", 0)
        except OSError:
            pass

    try:
        socket.getaddrinfo("example.com", 443)
        report("ESCAPED: DNS resolution works", 0)
    except OSError:
        pass

    try:
        with open("/proc/net/dev") as fh:
            interfaces = [line.split(":")[0].strip() for line in fh.readlines()[2:]]
        others = [name for name in interfaces if name != "lo"]
        if others:
            report(f"ESCAPED: network interfaces visible: {', '.join(others)}", 0)
    except OSError:
        pass
    report("contained: no network", 3)


main()
