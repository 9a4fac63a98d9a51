"""The conflict-of-interest guard (回避): may this unit or person touch this case?

One rule, pure Python, used by every route that brings a unit or person near a case: routing (handler
region and its center, lead and co-departments, grid officer), `correct_routing`, `reassign`, `escalate`,
merges, every action, every 催办/督办 recipient, and every read — `cases.auth.case_scope` is the SQL form
of `may_touch` for a user, built from the same `party_for_user` identities (a test checks they agree).

A case names what it accuses in `accused_units` (unit codes and names) and `accused_persons` (staff codes,
usernames and names), resolved at intake by `cases.accused`. A party is the set of unit identities and
person identities it answers for. A unit covers its subordinates: a party whose region lies inside an
accused region (a village under an accused township, a township under an accused county) is excluded
too — a subordinate never handles an accusation against its superior. The city itself is not expanded
(everything lies inside it; an accusation against the city government goes to the province).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CENTER_PREFIX = "ZZ"  # a center's code is "ZZ" + its region's code
LEVELS = ("grid", "village", "township", "county", "city")


@dataclass(frozen=True)
class Party:
    """Who wants to touch a case: the unit identities and person identities it answers for."""

    units: frozenset[str] = frozenset()
    persons: frozenset[str] = frozenset()

    def __or__(self, other: Party) -> Party:
        return Party(self.units | other.units, self.persons | other.persons)


def is_city_code(code: str) -> bool:
    """A city (or province) code: six digits ending in 00."""
    return len(code) == 6 and code.isdigit() and code.endswith("00")


def region_chain(code: str | None) -> list[str]:
    """The region and the regions above it up to the county (village → township → county); the city is
    left out unless the code is the city itself. Grid codes (15 digits) are not regions: see unit_party."""
    if not code:
        return []
    if not code.isdigit() or len(code) not in (6, 9, 12):
        return [code]
    out = [code]
    for n in (9, 6):
        if len(code) > n and not is_city_code(code[:n]):
            out.append(code[:n])
    return out


def level_of(code: str) -> str | None:
    """The level of a region or grid code from its length (statistical division codes)."""
    if not code or not code.isdigit():
        return None
    if len(code) == 6:
        return "city" if is_city_code(code) else "county"
    return {9: "township", 12: "village", 15: "grid"}.get(len(code))


def unit_party(region_code: str | None = None, department_code: str | None = None, grid_code: str | None = None,
               persons: Iterable[str] = ()) -> Party:
    """The identities of a unit: its region chain and their centers, its department, its grid, its people."""
    units = set()
    for r in region_chain(region_code):
        units.update((r, CENTER_PREFIX + r))
    if department_code:
        units.add(department_code)
    if grid_code:
        units.add(grid_code)
    return Party(frozenset(units), frozenset(p for p in persons if p))


def party_for_user(user) -> Party:
    """A logged-in user: their jurisdiction's chain, department, grid; username, staff code, name."""
    return unit_party(user.region_code, user.department_code, user.grid_code,
                      (user.username, user.staff_code, user.display_name))


def party_for_department(dept: dict) -> Party:
    """A department (事权部门) row: its code and the government it belongs to (its region)."""
    return unit_party(dept.get("region_code"), dept.get("code"))


def party_for_center(region_code: str) -> Party:
    """The 综治中心 of a region (and through it the region's government)."""
    return unit_party(region_code)


def party_for_officer(officer_code: str, grid_code: str | None = None) -> Party:
    """A grid officer by staff code (and the grid they answer for)."""
    return Party(frozenset({grid_code} if grid_code else ()), frozenset({officer_code}))


def party_for_recipient(code: str) -> Party:
    """A notification recipient code: a center (ZZ + region), a department code, or a staff code."""
    if code.startswith(CENTER_PREFIX) and code[len(CENTER_PREFIX):].isdigit():
        return party_for_center(code[len(CENTER_PREFIX):])
    return Party(frozenset({code}), frozenset({code}))


def may_touch(case: dict, party: Party) -> bool:
    """THE guard: False when the case accuses any unit or person the party answers for."""
    units = case.get("accused_units") or ()
    persons = case.get("accused_persons") or ()
    if not units and not persons:
        return True
    return not (party.units.intersection(units) or party.persons.intersection(persons))


def accused_by(case: dict, party: Party) -> list[str]:
    """What of the party the case accuses (for explanations)."""
    return sorted(party.units.intersection(case.get("accused_units") or ())
                  | party.persons.intersection(case.get("accused_persons") or ()))


def handler_parties(case: dict) -> dict[str, Party]:
    """Every unit and person a case's routing puts near it: lead and co-departments, officer, handling
    center (departments as codes only; the caller adds region chains when it knows them)."""
    out: dict[str, Party] = {}
    if case.get("handler_region"):
        out[CENTER_PREFIX + case["handler_region"]] = party_for_center(case["handler_region"])
    for d in [case.get("lead_department"), *(case.get("co_departments") or [])]:
        if d:
            out[d] = Party(frozenset({d}))
    if case.get("officer_code"):
        out[case["officer_code"]] = party_for_officer(case["officer_code"])
    return out


def blocked_handlers(case: dict, departments: dict[str, dict] | None = None) -> list[str]:
    """The handlers of a case (see handler_parties) the guard excludes; departments are checked with their
    region when `departments` (code → row) is given."""
    out = []
    for code, party in handler_parties(case).items():
        if departments and code in departments:
            party = party_for_department(departments[code])
        if not may_touch(case, party):
            out.append(code)
    return out


def next_level(level: str) -> str:
    """The level above (the city stays the city)."""
    i = LEVELS.index(level)
    return LEVELS[min(i + 1, len(LEVELS) - 1)]
