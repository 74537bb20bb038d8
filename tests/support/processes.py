"""What the test servers share: free ports on 127.0.0.1 and stopping a process group we started."""
import os
import socket


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now (servers set SO_REUSEADDR, so does this)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(ports: range) -> int:
    """A free port of an uncommon range, starting at an offset of the pid so parallel runs rarely race."""
    ports = list(ports)
    start = os.getpid() % len(ports)
    for port in ports[start:] + ports[:start]:
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {ports[0]}-{ports[-1]}")


def killpg_quiet(pgid: int, sig: int) -> None:
    """Signal a process group this test run started; one that has ended already is fine."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
