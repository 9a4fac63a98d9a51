"""The closed-loop state machine: every listed transition is legal, every other pair is refused."""

import pytest

from cases import workflow as wf
from gis.errors import BadInput, Conflict, Forbidden, Unprocessable

ALL_PAIRS = [(s, a) for s in wf.STATES for a in wf.ACTIONS]
ILLEGAL = [p for p in ALL_PAIRS if p not in wf.TRANSITIONS]


def _role(action):
    return sorted(wf.ACTION_ROLES[action])[0]


@pytest.mark.parametrize(("state", "action"), sorted(wf.TRANSITIONS))
def test_every_listed_transition_is_legal(state, action):
    t = wf.apply(state, action, _role(action), "理由")
    assert t.new_state == wf.TRANSITIONS[(state, action)]
    assert t.event["from_state"] == state and t.event["to_state"] == t.new_state
    assert t.event["action"] == action and t.event["reason"] == "理由"


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_every_unlisted_pair_is_a_conflict_naming_the_allowed_actions(state, action):
    with pytest.raises(Conflict) as exc:
        wf.apply(state, action, "admin", "理由")
    d = exc.value.details
    assert d["state"] == state and d["action"] == action
    assert d["allowed_actions"] == wf.allowed_actions(state)
    assert state in exc.value.message and action in exc.value.message


@pytest.mark.parametrize(("state", "action"), sorted(wf.TRANSITIONS))
def test_roles_outside_the_action_list_are_forbidden(state, action):
    for role in sorted(set(wf.ROLES) - wf.ACTION_ROLES[action]):
        with pytest.raises(Forbidden) as exc:
            wf.apply(state, action, role, "理由")
        assert exc.value.details["allowed_roles"] == sorted(wf.ACTION_ROLES[action])


@pytest.mark.parametrize(("state", "action"),
                         sorted(p for p in wf.TRANSITIONS if p[1] in wf.REASON_REQUIRED))
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_reason_required(state, action, reason):
    with pytest.raises(Unprocessable) as exc:
        wf.apply(state, action, _role(action), reason)
    assert exc.value.field == "reason"


def test_brief_reason_list_is_covered():
    assert {"return", "reject", "escalate", "reopen", "request_extension", "approve_extension"} <= wf.REASON_REQUIRED


def test_every_state_and_action_has_a_chinese_label_and_roles_are_known():
    assert set(wf.ACTION_ROLES) == set(wf.ACTIONS)
    for roles in wf.ACTION_ROLES.values():
        assert roles <= set(wf.ROLES)
    for s, a in wf.TRANSITIONS:
        assert s in wf.STATES and a in wf.ACTIONS and wf.TRANSITIONS[(s, a)] in wf.STATES


def test_terminal_states_only_reopen_from_closed():
    assert wf.allowed_actions("rejected") == [] and wf.allowed_actions("merged") == []
    assert wf.allowed_actions("closed") == ["reopen"]


def test_unknown_inputs():
    with pytest.raises(BadInput):
        wf.apply("received", "fly", "admin")
    with pytest.raises(BadInput):
        wf.apply("received", "accept", "mayor")
    with pytest.raises(Unprocessable):
        wf.apply("limbo", "accept", "admin")


def test_happy_path_closed_loop():
    steps = [("accept", "dispatcher"), ("dispatch", "dispatcher"), ("sign", "grid_officer"),
             ("start", "grid_officer"), ("progress", "grid_officer"), ("reply", "grid_officer"),
             ("evaluate", "citizen"), ("close", "system")]
    state = "received"
    for action, role in steps:
        state = wf.apply(state, action, role).new_state
    assert state == "closed"


def test_extension_is_an_event_that_keeps_handling():
    t = wf.apply("handling", "approve_extension", "township_center", "需协调供电公司")
    assert t.new_state == "handling" and t.event["kind"] == "extended" and t.event["label"] == "延期"
    with pytest.raises(Conflict):
        wf.apply("handling", "approve_extension", "township_center", "x", pending_extension=False)


def test_correct_routing_marks_forwarded():
    assert wf.apply("signed", "correct_routing", "dispatcher", "非本部门事权").event["forwarded"] is True
    assert wf.apply("signed", "reassign", "dispatcher").event["forwarded"] is False


def test_levels():
    assert wf.next_level("village") == "township"
    assert wf.next_level("township") == "county"
    assert wf.next_level("county") == "city"
    with pytest.raises(Unprocessable):
        wf.next_level("city")
    with pytest.raises(BadInput):
        wf.next_level("province")


def test_auto_escalation_after_two_returns_by_default():
    assert wf.auto_escalate("returned", "village", 1) is None
    t = wf.auto_escalate("returned", "village", 2)
    assert t.new_state == "dispatched" and t.event["to_level"] == "township" and t.event["auto"]
    assert t.event["role"] == "system" and "退回 2 次" in t.event["reason"]
    assert wf.auto_escalate("returned", "village", 2, threshold=3) is None
    assert wf.auto_escalate("returned", "city", 5) is None
    assert wf.auto_escalate("closed", "village", 5) is None


def test_manual_escalation_records_levels():
    t = wf.escalate("handling", "township", "township_center", "乡镇化解不了，提交县联席会议")
    assert (t.event["from_level"], t.event["to_level"]) == ("township", "county")
