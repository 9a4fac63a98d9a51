"""Verify the hash-chained event log (issue 8, "the event log is evidence").

Each case_event row carries `seq` (1, 2, … within its case), `prev_hash` (the hash of the case's previous
event) and `hash` (sha256 over the row, see cases/migrations/0041_event_chain.sql); case_event_head keeps
each case's last seq and hash. `verify_event_log` recomputes every digest and walks every chain, and names
the case and event of each edit, deletion or reordering it finds. It reads through the app role.

The hash chain shows tampering by anyone who does not recompute the chain; `head_digest` (one sha256 over
every case's head) can be written down elsewhere, so even a recomputed chain no longer matches it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import psycopg2.extras


@dataclass
class Problem:
    case_id: int
    kind: str          # edited | deleted | reordered | unchained
    message: str
    event_id: int | None = None
    seq: int | None = None
    case_no: str | None = None


@dataclass
class AuditReport:
    cases: int = 0
    events: int = 0
    problems: list[Problem] = field(default_factory=list)
    head_digest: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "cases": self.cases, "events": self.events, "head_digest": self.head_digest,
                "problems": [asdict(p) for p in self.problems]}

    def text(self) -> str:
        head = f"checked {self.events:,} events of {self.cases:,} cases; head digest {self.head_digest}"
        if self.ok:
            return head + "\nOK: every hash chain is intact"
        lines = [head, f"FAILED: {len(self.problems)} problems"]
        for p in self.problems:
            lines.append(f"  case {p.case_no or '?'} (id {p.case_id}): {p.message}")
        return "\n".join(lines)


_EVENTS = ("SELECT e.id, e.case_id, e.seq, e.prev_hash, e.hash, case_event_digest(e) AS digest"
           " FROM case_event e ORDER BY e.case_id, e.seq, e.id")


def verify_event_log(db, fetch: int = 5000) -> AuditReport:
    """Recompute every event's hash and walk every case's chain; returns what is wrong (nothing, ideally)."""
    rep = AuditReport()
    heads = {r["case_id"]: (r["seq"], bytes(r["hash"]))
             for r in db.fetchall("SELECT case_id, seq, hash FROM case_event_head")}
    rep.head_digest = _head_digest(heads)
    seen_heads = set()
    with db.connection() as conn:
        with conn.cursor(name="audit_events", cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.itersize = fetch
            cur.execute(_EVENTS)
            case_id, expect, prev, last = None, 1, b"", None
            for e in cur:
                if e["case_id"] != case_id:
                    if case_id is not None:
                        _check_head(rep, case_id, last, heads.get(case_id))
                        seen_heads.add(case_id)
                    case_id, expect, prev, last = e["case_id"], 1, b"", None
                    rep.cases += 1
                rep.events += 1
                _check_event(rep, e, expect, prev)
                expect, prev, last = e["seq"] + 1, bytes(e["hash"]), e
            if case_id is not None:
                _check_head(rep, case_id, last, heads.get(case_id))
                seen_heads.add(case_id)
    for cid in sorted(set(heads) - seen_heads):
        n = heads[cid][0]
        rep.problems.append(Problem(cid, "deleted", f"all {n} events of the case were deleted (#1–#{n})", seq=1))
    _name_cases(db, rep.problems)
    return rep


def _check_event(rep: AuditReport, e: dict, expect: int, prev: bytes) -> None:
    cid, eid, seq = e["case_id"], e["id"], e["seq"]
    if bytes(e["digest"]) != bytes(e["hash"]):
        rep.problems.append(Problem(cid, "edited", f"event {eid} (#{seq}) was edited: its content does not match "
                                                   f"its hash", eid, seq))
    if seq > expect:
        gap = f"#{expect}" if seq == expect + 1 else f"#{expect}–#{seq - 1}"
        rep.problems.append(Problem(cid, "deleted", f"event {gap} before event {eid} (#{seq}) was deleted", eid, seq))
    elif seq < expect:
        rep.problems.append(Problem(cid, "reordered", f"event {eid} repeats position #{seq}", eid, seq))
    elif bytes(e["prev_hash"]) != prev:
        rep.problems.append(Problem(cid, "reordered", f"event {eid} (#{seq}) does not follow the event before it "
                                                      f"(reordered or replaced)", eid, seq))


def _check_head(rep: AuditReport, case_id: int, last: dict, head: tuple[int, bytes] | None) -> None:
    if head is None:
        rep.problems.append(Problem(case_id, "unchained", "the case's events bypassed the hash chain (no head)",
                                    last["id"], last["seq"]))
        return
    seq, digest = head
    if last["seq"] < seq:
        gap = f"#{seq}" if seq == last["seq"] + 1 else f"#{last['seq'] + 1}–#{seq}"
        rep.problems.append(Problem(case_id, "deleted", f"the last events {gap} were deleted (the log ends at "
                                                        f"event {last['id']}, #{last['seq']})", last["id"], seq))
    elif last["seq"] > seq or bytes(last["hash"]) != digest:
        rep.problems.append(Problem(case_id, "reordered", f"the last event {last['id']} (#{last['seq']}) is not "
                                                          f"the one the chain recorded", last["id"], last["seq"]))


def _head_digest(heads: dict[int, tuple[int, bytes]]) -> str:
    h = hashlib.sha256()
    for cid in sorted(heads):
        seq, digest = heads[cid]
        h.update(f"{cid}:{seq}:".encode() + digest)
    return h.hexdigest()


def _name_cases(db, problems: list[Problem]) -> None:
    ids = sorted({p.case_id for p in problems})
    if not ids:
        return
    names = {r["id"]: r["case_no"] for r in db.fetchall("SELECT id, case_no FROM case_key WHERE id = ANY(%s)",
                                                        (ids,))}
    for p in problems:
        p.case_no = names.get(p.case_id)
