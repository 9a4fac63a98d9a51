"""Who filed a case: the reporter's pseudonymous person key across channels (重复信访) and the 初次信访 mark of
一次性化解率. Identifiers are stored only as hashes; see migrations 0072 and 0073 and docs/intake-routing.md."""

from __future__ import annotations

import hashlib

from cases.deadlines import PETITION_CHANNELS


def reporter_key(phone: str | None, id_no: str | None) -> str | None:
    """A stable pseudonymous key of the reporter for repeat counting (never the raw number)."""
    raw = (id_no or "").strip().upper() or "".join(ch for ch in (phone or "") if ch.isdigit())[-11:]
    if not raw:
        return None
    return hashlib.sha256(("gridgov-reporter:" + raw).encode()).hexdigest()[:24]


def reporter_identities(phone: str | None, id_no: str | None) -> list[str]:
    """The hashed identities a case gives its reporter by: the ID number, the phone (ID first)."""
    return [k for k in (reporter_key(None, id_no), reporter_key(phone, None)) if k]


def link_reporter(cur, phone: str | None, id_no: str | None) -> str | None:
    """The person key of a reporter: one person is one person across channels (重复信访, issue 9).

    Identities already known lend their person's key; a case naming identities of two known persons joins
    them (the smaller key survives, the other's cases are rewritten); unknown identities join the person."""
    idents = reporter_identities(phone, id_no)
    if not idents:
        return None
    # one round trip: the known persons of these identities, and the unknown identities joined to the first
    cur.execute("WITH known AS (SELECT DISTINCT person_key FROM reporter_identity WHERE ident = ANY(%(ids)s)), "
                "k AS (SELECT coalesce((SELECT min(person_key) FROM known), %(first)s) AS key), "
                "ins AS (INSERT INTO reporter_identity (ident, person_key) SELECT unnest(%(ids)s::text[]), "
                "(SELECT key FROM k) ON CONFLICT (ident) DO NOTHING) "
                "SELECT (SELECT key FROM k) AS key, ARRAY(SELECT person_key FROM known ORDER BY 1) AS keys",
                {"ids": idents, "first": idents[0]})
    row = cur.fetchone()
    key, keys = (row["key"], row["keys"]) if isinstance(row, dict) else row
    if len(keys) > 1:
        cur.execute("UPDATE reporter_identity SET person_key = %s WHERE person_key = ANY(%s)", (key, keys[1:]))
        cur.execute("UPDATE case_record SET reporter_key = %s WHERE reporter_key = ANY(%s)", (key, keys[1:]))
    return key


def mark_first_petitions(cur, ids) -> None:
    """Mark the 求决 cases among `ids` that are their reporter's first 信访: the cohort of 一次性化解率
    (seed 000: "求决类初次信访一次性化解率"; the rule is the SQL function of migration 0072)."""
    if ids:
        cur.execute("SELECT mark_first_petitions(%s::bigint[], %s::text[])", (list(ids), sorted(PETITION_CHANNELS)))
