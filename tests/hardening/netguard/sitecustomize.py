"""Loaded by every Python process of a server started with this folder on PYTHONPATH (vLLM's
engine processes included): refuses, and records, any socket connection or datagram to an
address that is not loopback or a Unix socket. Native code (libzmq) is not seen by audit hooks;
vLLM's zmq sockets are ipc:// or 127.0.0.1.
"""

import ipaddress
import os
import socket
import sys

_LOG = os.environ.get("COMPLETER_NETGUARD_LOG")


def _write(line: str) -> None:
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {line}\n")


def _local(family, address) -> bool:
    if family == getattr(socket, "AF_UNIX", object()) or not isinstance(address, tuple):
        return True
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name: resolving it would already go out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
        return True  # no lookup; a connection to it is checked on its own
    except ValueError:
        return False


def _hook(event, args):
    if event in ("socket.connect", "socket.sendto"):
        sock, address = args[0], args[1]
        if _local(sock.family, address):
            _write(f"allowed {event} {address!r}")
            return
        _write(f"BLOCKED {event} {address!r}")
        raise OSError(f"netguard: outbound connection to {address!r} refused")
    if event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        if host and not _is_ip(host) and not _local(socket.AF_INET, (host, 0)) and host != socket.gethostname():
            _write(f"BLOCKED {event} {host!r}")
            raise OSError(f"netguard: name lookup of {host!r} refused")


sys.addaudithook(_hook)
_write(f"loaded {' '.join(sys.argv)[:120]}")
