"""Case photos over HTTP on real PostGIS: type and size limits, EXIF/GPS stripped, scoped reads, multipart intake
with photos that a retry does not double, and the officer's counters counted in SQL."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from PIL import Image

from cases.attachments import MAX_BYTES
from cases.auth import create_user
from cases.setup import seed_routing_rules
from gis.settings import Settings
from grids.store import load_city
from tests.factories import X0, Y0, tiny_city
from webmap import create_app

GRID1 = "990101001001001"


@pytest.fixture
def app(db):
    load_city(db, tiny_city(), progress=lambda m: None)
    seed_routing_rules(db)
    create_user(db, "disp", "password123", "dispatcher", "990100", hash_method="pbkdf2:sha256:1000")
    create_user(db, "off1", "password123", "grid_officer", "990101001001", grid_code=GRID1,
                hash_method="pbkdf2:sha256:1000")
    create_user(db, "off2", "password123", "grid_officer", "990101001001", grid_code="990101001001002",
                hash_method="pbkdf2:sha256:1000")
    return create_app(settings=Settings(secret_key="test"), db=db)


def login(app, username):
    c = app.test_client()
    r = c.post("/api/login", json={"username": username, "password": "password123"})
    assert r.status_code == 200, r.json
    c.environ_base["HTTP_X_CSRF_TOKEN"] = r.json["csrf_token"]  # what gg.api() sends
    return c


def case_in_grid1(client, key: str, **kw) -> dict:
    body = {"channel": "hotline_12345", "kind": "投诉", "category_code": "CJ01", "title": "楼道堆物",
            "lon": X0 + 0.004, "lat": Y0 + 0.005, "submission_key": key, **kw}
    r = client.post("/api/cases", json=body)
    assert r.status_code == 201, r.json
    return r.json


def jpeg_with_gps(size=(64, 48)) -> bytes:
    """A JPEG whose EXIF carries a GPS position, a camera make and an orientation tag."""
    im = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "TestPhone"          # Make
    exif[0x0112] = 6                    # Orientation: rotate 90° (the stored photo must come out upright)
    gps = {1: "N", 2: (43.0, 6.0, 12.5), 3: "E", 4: (124.0, 18.0, 30.25)}
    exif[0x8825] = gps                  # GPSInfo IFD
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the fixture really carries GPS
    return data


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (20, 10), (0, 128, 0, 255)).save(out, "PNG")
    return out.getvalue()


def upload(client, case_id, *files):
    return client.post(f"/api/cases/{case_id}/attachments", content_type="multipart/form-data",
                       data={"photo": [(io.BytesIO(b), name) for name, b in files]})


def test_photo_is_stored_without_exif_or_gps_and_served_safely(app):
    case = case_in_grid1(login(app, "disp"), "P1")
    o1 = login(app, "off1")
    r = upload(o1, case["id"], ("IMG_0001.JPG", jpeg_with_gps()))
    assert r.status_code == 201, r.json
    att = r.json["attachments"][0]
    assert att["mime"] == "image/jpeg" and (att["width"], att["height"]) == (48, 64)  # turned upright
    got = o1.get(att["url"])
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "image/jpeg"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith("inline") and "IMG_0001.jpg" in got.headers[
        "Content-Disposition"]
    stored = Image.open(io.BytesIO(got.data))
    assert stored.format == "JPEG"
    exif = stored.getexif()
    assert not exif.get_ifd(0x8825) and 0x8825 not in exif and 0x010F not in exif and 0x0112 not in exif
    assert b"Exif" not in got.data and b"TestPhone" not in got.data
    # the event log records the upload; the list shows it
    events = o1.get(f"/api/cases/{case['id']}").json["events"]
    assert events[-1]["action"] == "attach" and events[-1]["data"]["count"] == 1
    listed = o1.get(f"/api/cases/{case['id']}/attachments").json
    assert [a["id"] for a in listed["attachments"]] == [att["id"]]
    # the same photo again (a retried upload) is not stored twice
    again = upload(o1, case["id"], ("IMG_0001.JPG", jpeg_with_gps()))
    assert again.status_code == 201 and again.json["count"] == 0
    assert o1.get(f"/api/cases/{case['id']}/attachments").json["count"] == 1


def test_another_officer_gets_404_for_photos_of_a_case_outside_their_scope(app):
    case = case_in_grid1(login(app, "disp"), "P2")
    o1, o2 = login(app, "off1"), login(app, "off2")
    att = upload(o1, case["id"], ("a.png", png_bytes())).json["attachments"][0]
    assert o2.get(f"/api/cases/{case['id']}/attachments").status_code == 404
    assert o2.get(att["url"]).status_code == 404
    assert upload(o2, case["id"], ("b.png", png_bytes())).status_code == 404
    assert app.test_client().get(att["url"]).status_code == 401
    # an attachment id of one case is not reachable through another case's URL
    other = case_in_grid1(login(app, "disp"), "P3")
    assert o1.get(f"/api/cases/{other['id']}/attachments/{att['id']}").status_code == 404


def test_type_is_decided_by_magic_bytes_and_size_is_limited(app):
    case = case_in_grid1(login(app, "disp"), "P4")
    o1 = login(app, "off1")
    # a PNG named .jpg is a PNG; a text file named .jpg is refused; so is a GIF
    r = upload(o1, case["id"], ("looks-like.jpg", png_bytes()))
    assert r.status_code == 201 and r.json["attachments"][0]["mime"] == "image/png"
    assert r.json["attachments"][0]["file_name"] == "looks-like.png"
    r = upload(o1, case["id"], ("evil.jpg", b"<html><script>alert(1)</script></html>"))
    assert r.status_code == 400 and r.json["error"]["field"] == "photo"
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    assert upload(o1, case["id"], ("x.gif", gif.getvalue())).status_code == 400
    # JPEG magic followed by garbage: recognised type, but not a decodable image
    assert upload(o1, case["id"], ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 100)).status_code == 400
    big = b"\xff\xd8\xff\xe0" + b"\x00" * MAX_BYTES
    r = upload(o1, case["id"], ("big.jpg", big))
    assert r.status_code == 413 and r.json["error"]["code"] == "too_large" and "8 MB" in r.json["error"]["message"]
    r = upload(o1, case["id"], *[(f"{i}.png", png_bytes()) for i in range(4)])
    assert r.status_code == 400 and "3" in r.json["error"]["message"]
    assert o1.post(f"/api/cases/{case['id']}/attachments", json={}).status_code == 400
    assert o1.get(f"/api/cases/{case['id']}/attachments").json["count"] == 1


def test_patrol_report_with_photos_is_one_case_when_retried(app, db):
    o1 = login(app, "off1")
    sub = {"channel": "grid_report", "kind": "求决", "title": "村道路灯不亮", "content": "三组路段", "lon": X0 + 0.003,
           "lat": Y0 + 0.004, "submission_key": "web-patrol-1"}

    def send():
        return o1.post("/api/cases", content_type="multipart/form-data",
                       data={"case": json.dumps(sub, ensure_ascii=False),
                             "photo": [(io.BytesIO(jpeg_with_gps()), "1.jpg"), (io.BytesIO(png_bytes()), "2.png")]})

    first, retry = send(), send()
    assert first.status_code == 201, first.json
    assert retry.status_code == 200 and retry.json["duplicate_submission"] is True
    assert retry.json["id"] == first.json["id"]
    assert len(first.json["attachments_added"]) == 2 and retry.json["attachments_added"] == []
    n = db.fetchone("SELECT count(*) AS n FROM case_record WHERE submission_key = 'web-patrol-1'")["n"]
    assert n == 1
    row = db.fetchone("SELECT channel, status, grid_code, ST_X(geom) AS lon FROM case_record WHERE id = %s",
                      (first.json["id"],))
    assert row["channel"] == "grid_report" and row["grid_code"] == GRID1 and row["status"] == "received"
    assert abs(row["lon"] - (X0 + 0.003)) < 1e-9
    assert o1.get(f"/api/cases/{first.json['id']}/attachments").json["count"] == 2
    # a refused photo registers nothing
    bad = o1.post("/api/cases", content_type="multipart/form-data",
                  data={"case": json.dumps({**sub, "submission_key": "web-patrol-2"}),
                        "photo": [(io.BytesIO(b"GIF89a not allowed"), "x.gif")]})
    assert bad.status_code == 400
    assert db.fetchone("SELECT count(*) AS n FROM case_record WHERE submission_key = 'web-patrol-2'")["n"] == 0
    # the case part must be JSON
    r = o1.post("/api/cases", content_type="multipart/form-data", data={"case": "{not json"})
    assert r.status_code == 400 and r.json["error"]["field"] == "case"


def test_counters_count_the_scope_in_sql(app, db):
    d = login(app, "disp")
    a = case_in_grid1(d, "C1")
    case_in_grid1(d, "C2")
    case_in_grid1(d, "C3", lon=X0 + 0.015)  # grid 2: not off1's
    o1 = login(app, "off1")
    assert o1.post(f"/api/cases/{a['id']}/actions/sign", json={"version": a["version"]}).status_code == 200
    # one of off1's cases is overdue: its sign deadline lies in the past
    db.execute("UPDATE case_record SET sign_due_at = %s WHERE submission_key = 'C2'",
               (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3),))
    c = o1.get("/api/cases/counts").json
    assert c["counts"] == {"open": 2, "pending_sign": 1, "handling": 1, "due_soon": 0, "overdue": 1}
    assert c["labels"]["overdue"] == "已超期"
    c2 = login(app, "off2").get("/api/cases/counts").json["counts"]
    assert c2["open"] == 1 and c2["pending_sign"] == 1 and c2["overdue"] == 0
    assert o1.get("/api/cases/counts?soon_hours=0").status_code == 400
    assert app.test_client().get("/api/cases/counts").status_code == 401


def test_case_bundle_lists_only_the_actions_of_the_handler(app):
    d = login(app, "disp")
    case = case_in_grid1(d, "B1")
    mine = login(app, "off1").get(f"/api/m/cases/{case['id']}").json
    assert mine["actions"] == ["sign", "return"] and mine["may_attach"] is True
    assert mine["case"]["id"] == case["id"] and mine["attachments"] == []
    assert login(app, "off2").get(f"/api/m/cases/{case['id']}").status_code == 404
    page = app.test_client().get("/m")
    assert page.status_code == 200 and "登录" in page.get_data(as_text=True)
    assert 'name="csrf-token"' in page.get_data(as_text=True)
