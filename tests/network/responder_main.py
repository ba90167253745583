"""A responder alone, as the speaker runs it, inside a node namespace (tests/network only).

    python responder_main.py ADDRESS

Answers ARP for ADDRESS on eth0 and sends a gratuitous round every 10 ms; on SIGTERM it shuts
down in the speaker's order (stop event, ownership emptied, then ``close``) and prints
``stopped``. Anything a thread raises goes to stderr, where the test looks for it.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import threading

from lbctl.announce import netlink
from lbctl.announce.responder import Responder


def main() -> int:
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ip = ipaddress.ip_address(sys.argv[1])
    links = tuple(link for link in netlink.read_links() if link.name == "eth0")
    responder = Responder()
    responder.start(stop)
    responder.set_owned({ip: links})
    print("answering", flush=True)
    while not stop.wait(0.01):
        responder.announce(ip, links[0])
    responder.set_owned({})
    responder.close()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
