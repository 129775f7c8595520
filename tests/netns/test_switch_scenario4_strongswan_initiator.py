#!/usr/bin/env python3
"""Responder-initiated switch, scenario 4: scenario 3 (multihomed responder, the old
address's interface goes down) with strongSwan 5.9.8 as the initiator and mobiked as the
responder.

strongSwan does not put the 'R' octet into its MOBIKE_SUPPORTED notify, so mobiked must
show switch=false for the SA and must not send SWITCH_TO_IP_ADDRESS. All it can do for
such a peer is announce its addresses (ADDITIONAL_IP4_ADDRESS): eth1's 198.51.100.19 and
.20 were announced in IKE_AUTH, and the set of *additional* addresses does not change when
.10 becomes unusable, so mobiked sends no address update at all (observed; its debug log
shows no request after the change).

What strongSwan does then, as observed here (charon's log in the lab directory, swanctl
--list-sas) and printed by the test:
  * it learnt 198.51.100.20 in IKE_AUTH ("got additional MOBIKE peer address");
  * after the change its own address is unchanged, so its MOBIKE code keeps the path
    10.1.0.2 -> 198.51.100.10: the liveness checks (dpd_delay 2s) and their
    retransmissions go only there (ike_mobike.c transmit() probes other peer addresses,
    "checking path ...", only when its *own* source address changed) and are lost;
  * it gives up after its retransmissions ("giving up after 4 retransmits"; 1s base
    timeout here, about 24 s after the change) and deletes the IKE SA and its Child SA.
    The traffic never resumes; mobiked's responder keeps its now useless SA until its own
    liveness check (dpd_delay 30s) fails.
The 'R' flag exists for exactly this case: with it, mobiked moves the SA in tens of
milliseconds (scenario 3).

Checks: switch=false; no switch attempted (automatic_switches unchanged, no switch in
mobiked's log, no unknown notify in any request charon parsed); strongSwan knew .20 from
IKE_AUTH; the outcome is determined within 45 s and explained by charon's own log: either
the SA was deleted and charon logged why (giving up / DESTROYING), or strongSwan found
.20 by itself and then both peers use it with the same IKE SPIs and traffic resumes
(would be reported as a change of strongSwan's behaviour, not a failure).
"""

import json
import re
import sys

sys.dont_write_bytecode = True  # also when run by hand: no __pycache__ in the source tree

import switch_scenarios as rs  # noqa: E402
from netns import Failure, check, log, run_test  # noqa: E402


def test(lab) -> None:
    r = rs.run_scenario(lab, 3, rs.STRONGSWAN, rs.MOBIKED)
    for k, v in r.facts.items():
        log(f"  {k}: {json.dumps(v)}")
    charon = r.facts["charon_initiator_after_change"]
    whole = (lab.dir / "charon-ini" / "charon.log").read_text(errors="replace")
    mob = r.facts["mobiked_responder_switch_lines"]
    d = r.facts["responder_stats_delta"]

    r.problem(r.facts.get("switch") is False, f"mobiked shows switch={r.facts.get('switch')!r} for strongSwan")
    r.problem(d["automatic_switches"] == 0, f"mobiked counted an automatic switch for a peer without support: {d}")
    r.problem(not [ln for ln in mob if re.search(r"asking the initiator to switch|MOBIKE_SWITCH", ln)],
              f"mobiked tried to switch a peer without support: {mob}")
    r.problem(not re.search(rf"N\((?:{rs.SWITCH_NOTIFY}|UNKNOWN)", whole) and not charon["unknown_notifies"],
              f"charon parsed an unknown notify (a SWITCH_TO_IP_ADDRESS?): {charon['unknown_notifies']}")
    r.problem(re.search(rf"got additional MOBIKE peer address: {re.escape(rs.NEW)}\b", whole) is not None,
              f"charon never learnt the responder's {rs.NEW} (IKE_AUTH's ADDITIONAL_IP4_ADDRESS)")
    log(f"  requests mobiked started after the change: {r.facts.get('mobiked_responder_requests')}")
    log(f"  what strongSwan did after the change: outcome {r.outcome}; INFORMATIONAL requests it parsed "
        f"{charon['parsed_informational_requests']}, sent {charon['generated_informational_requests']}; paths "
        f"checked {charon['checking_path']}; {charon['retransmits']} retransmissions; {charon['giving_up']} "
        f"{charon['deleting'][:1]}")
    if r.outcome == "deleted":
        r.problem("strongSwan initiator" in r.facts["deleted_by"],
                  f"the SA was deleted by {r.facts['deleted_by']}, not by strongSwan")
        r.problem(bool(charon["giving_up"] or charon["deleting"]),
                  "strongSwan's SA is gone but charon's log does not say why")
        probed = [ln for ln in charon["checking_path"] if rs.NEW in ln]
        log(f"  strongSwan gave up on the SA {r.metrics['deleted_ms'] / 1000:.1f}s after the change"
            + (f" after probing {rs.NEW} ({len(probed)} path checks)" if probed else
               f", never probing the announced {rs.NEW}"))
    elif r.outcome == "moved":
        log(f"  strongSwan found {rs.NEW} by itself {r.metrics['moved_ms']:.0f} ms after the change "
            "(a change from the behaviour documented above)")
    else:
        raise Failure(f"strongSwan neither moved to {rs.NEW} nor deleted the SA within "
                      f"{rs.OUTCOME_TIMEOUT[rs.STRONGSWAN]:.0f}s: {r.problems}")
    check(not r.problems, "; ".join(r.problems))


if __name__ == "__main__":
    run_test(test, "Switch scenario 4: strongSwan initiator, multihomed mobiked responder, interface down",
             requires=lambda: rs.requires(strongswan=True), timeout=150)
