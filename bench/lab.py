"""What a client sees during failovers: the lab under a request every 50 ms (root).

Brings up its own process lab (``lbctl lab up --processes`` in a private directory) with the
speakers at their defaults (LAN advertisements every 100 ms, Lease 40 s renewed every 10 s;
``--tuned`` restarts them with round 1's tuned Lease of 1 s / 0.25 s instead), then kills the
announcing node's speaker and link ``--rounds`` times, healing it after each takeover, and
reports each outage: from the client's last answered request before the kill to its first
answered request after. Writes
``bench/results/lab.json``; the floor is the request period itself (an outage shorter than it
is invisible).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from lbctl.lab import failover, lan, procs
from lbctl.lab import lab as lab_mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench/results/lab.json"))
    ap.add_argument("--tuned", action="store_true", help="Lease 1 s / renew 0.25 s speakers")
    args = ap.parse_args()
    lan.keep_with_this_process()  # a killed run blocks no later one
    procs.exit_on_sigterm()  # a killed run still stops its control plane and LAN
    work = Path(tempfile.mkdtemp(prefix="lbctl-bench-lab-"))
    os.environ.setdefault("LBCTL_LAB_PREFIX", "lbbench")
    lab = lab_mod.Lab(work / "lab", say=lambda m: print(m, file=sys.stderr))
    try:
        lab.up(processes=True)  # the bench tunes speaker processes
        if args.tuned:
            failover.tune(lab)
        ip = failover.address_owned_by(lab, "node3")
        from kubernetes import client, config

        state = lab.state()
        assert state is not None
        with config.new_client_from_config(config_file=state.kubeconfig) as api:
            client.CoreV1Api(api).create_namespaced_service(
                lab_mod.DEMO_NS,
                {
                    "metadata": {"name": "web", "annotations": {"lbctl.io/loadBalancerIPs": ip}},
                    "spec": {
                        "type": "LoadBalancer",
                        "selector": {"app": "demo"},
                        "ports": [{"port": 80, "targetPort": 8080}],
                    },
                },
            )
        result = failover.run(lab, ip, "node3", args.rounds, url=f"http://{ip}/")
    finally:
        lab.down(quiet=True)
    kills = [o.seconds for o in result.after_kills() if o.seconds is not None]
    returns = [o.seconds for o in result.after_returns() if o.seconds is not None]
    one_mac = sum(len(r.heir_macs) == 1 and len(r.back_macs) == 1 for r in result.rounds)
    summary = {
        "client_outage": {
            "trials": len(result.rounds),
            "request_period_s": 0.05,
            "speakers": "tuned: Lease 1 s, renew 0.25 s" if args.tuned else "defaults",
            "outages_s": [round(s, 3) for s in kills],  # one per kill
            "return_outages_s": [round(s, 3) for s in returns],  # when the node takes it back
            "never_recovered": sum(o.seconds is None for o in result.outages),
            "p50_s": statistics.median(kills) if kills else None,
            "max_s": max(kills) if kills else None,
            "target_s": 2.0,
            "rounds_with_one_mac": one_mac,
        }
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
