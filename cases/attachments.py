"""Photos attached to a case (every channel): checked, stripped of EXIF (and so of GPS), stored, read scoped.

An upload is recognised by its first bytes (JPEG, PNG or WebP — never by its name or declared type), decoded
with Pillow, turned upright by its EXIF orientation, downscaled to at most MAX_SIDE pixels and re-encoded
without any metadata: what is stored holds no EXIF, no GPS position, no camera serial. Bytes live in
`case_attachment` (bytea); every read goes through `cases.auth.case_scope`, so whoever may not see the case
gets 404 for its photos too.

Who may attach to an existing case: its handler (the rule of CaseService's handling actions), the intake and
supervising roles of its jurisdiction, and whoever registered it (网格员上报 right after intake). The same
photo uploaded twice to one case (a retried request on a flaky network) is stored once (SHA-256 of the upload).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass

from cases import workflow
from cases.auth import User, case_scope
from cases.partitions import event_span, received_at
from gis.errors import BadInput, Forbidden, NotFound, PayloadTooLarge, Unprocessable

MAX_BYTES = 8 * 1024 * 1024          # one photo as uploaded
MAX_PER_REQUEST = 3                  # 巡查上报: one to three photos
MAX_PER_CASE = 20
MAX_SIDE = 2560                      # longest side kept (a phone's 4000 px photo is downscaled)
MAX_PIXELS = 50_000_000              # refuse decompression bombs before decoding
TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
# Roles that may attach to any case of their jurisdiction that they can see.
ATTACH_ROLES = frozenset({"dispatcher", "admin", "city_center", "county_center", "township_center"})
ATTACH_COLUMNS = "a.id, a.case_id, a.mime, a.size, a.width, a.height, a.file_name, a.uploaded_role, a.uploaded_at"


@dataclass(frozen=True)
class Photo:
    """A checked, re-encoded photo ready to store."""

    data: bytes
    mime: str
    width: int
    height: int
    source_sha256: str
    file_name: str


def sniff(head: bytes) -> str | None:
    """The image type from its magic bytes (JPEG, PNG, WebP), or None."""
    if head[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _safe_name(name: str | None, mime: str) -> str:
    """A display name without paths or control characters (never used to find the file)."""
    base = re.sub(r"[\x00-\x1f\x7f/\\]+", "_", (name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip()
    stem = base.rsplit(".", 1)[0][:80] or "photo"
    return f"{stem}.{TYPES[mime]}"


def prepare_photo(raw: bytes, file_name: str | None = None, field: str = "photo") -> Photo:
    """Check size and type, decode and re-encode without metadata; BadInput/PayloadTooLarge when refused."""
    from PIL import Image, ImageOps

    if not raw:
        raise BadInput("照片为空文件", field=field)
    if len(raw) > MAX_BYTES:
        raise PayloadTooLarge(f"照片超过 {MAX_BYTES // (1024 * 1024)} MB（{len(raw) / 1048576:.1f} MB）",
                              field=field, details={"max_bytes": MAX_BYTES, "size": len(raw)})
    mime = sniff(raw[:16])
    if mime is None:
        raise BadInput("只接受 JPEG、PNG 或 WebP 格式的照片", field=field, details={"types": sorted(TYPES)})
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            if probe.width * probe.height > MAX_PIXELS:
                raise BadInput(f"照片像素过多（{probe.width}×{probe.height}）", field=field)
            probe.verify()
        with Image.open(io.BytesIO(raw)) as im:
            if (im.format or "").lower() not in ("jpeg", "png", "webp"):
                raise BadInput("只接受 JPEG、PNG 或 WebP 格式的照片", field=field)
            im.load()
            im = ImageOps.exif_transpose(im)  # keep it upright once the orientation tag is gone
            im.thumbnail((MAX_SIDE, MAX_SIDE))
            out = io.BytesIO()
            if mime == "image/jpeg":
                im.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
            elif mime == "image/png":
                im = im if im.mode in ("RGB", "RGBA", "L", "LA", "P") else im.convert("RGBA")
                im.save(out, "PNG", optimize=True)
            else:
                im = im if im.mode in ("RGB", "RGBA") else im.convert("RGBA")
                im.save(out, "WEBP", quality=85)
            width, height = im.size
    except BadInput:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadInput(f"照片无法识别或已损坏：{type(e).__name__}", field=field) from None
    return Photo(out.getvalue(), mime, width, height, hashlib.sha256(raw).hexdigest(),
                 _safe_name(file_name, mime))


def prepare_photos(files: list[tuple[str | None, bytes]], field: str = "photo",
                   max_count: int = MAX_PER_REQUEST) -> list[Photo]:
    """Check every file of one request first (nothing is stored when one is refused)."""
    if len(files) > max_count:
        raise BadInput(f"一次最多上传 {max_count} 张照片", field=field, details={"max": max_count})
    return [prepare_photo(data, name, field) for name, data in files]


def _visible_case(cur, user: User, case_id: int, lock: bool = False) -> dict:
    scope, params = case_scope(user)
    cur.execute(f"SELECT c.id, c.case_no, c.status, c.grid_code, c.handling_level, c.lead_department, "
                f"c.co_departments, c.handler_region FROM case_record c WHERE c.id = %(cid)s "
                f"AND c.received_at = %(rat)s AND {scope}" + (" FOR UPDATE" if lock else ""),
                {**params, "cid": int(case_id), "rat": received_at(cur, case_id)})
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"case {case_id} not found")
    return dict(row)


def require_visible(db, user: User, case_id: int) -> None:
    """NotFound unless the user may see the case (case_scope)."""
    with db.cursor() as cur:
        _visible_case(cur, user, case_id)


def _registered_by(cur, user: User, case_id: int) -> bool:
    span, sp = event_span(cur, case_id)
    cur.execute(f"SELECT 1 FROM case_event WHERE case_id = %(cid)s AND {span} AND action = 'receive' "
                f"AND actor_id = %(uid)s", {"cid": case_id, "uid": user.id, **sp})
    return cur.fetchone() is not None


def may_attach(service, user: User, case: dict, registered: bool) -> bool:
    """Whether `user` may attach photos to `case` (already known to be visible or registered by the user)."""
    if registered or user.role in ATTACH_ROLES:
        return True
    try:  # the handling-action rule of the service (grid officer of a village-level case, lead dept, center)
        service._check_handler(user, case, "progress")
    except Forbidden:
        return False
    return True


def user_may_attach(db, service, user: User, case: dict) -> bool:
    """Whether the page should offer 添加照片 on this (visible) case."""
    if case["status"] in workflow.TERMINAL_STATES:
        return False
    with db.cursor() as cur:
        return may_attach(service, user, case, _registered_by(cur, user, case["id"]))


def add_photos(db, service, user: User | None, case_id: int, photos: list[Photo], *, intake: bool = False) -> list:
    """Store checked photos on a case; returns the new attachments' metadata (duplicates are skipped).

    `intake=True` means the caller just registered the case for `user` (or a citizen channel, user None):
    then the case need not be in the user's scope (a patrol report outside the officer's own grid).
    """
    import psycopg2.extras

    if not photos:
        return []
    with db.connection() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        if intake:
            cur.execute("SELECT id, case_no, status FROM case_record WHERE id = %s AND received_at = %s FOR UPDATE",
                        (case_id, received_at(cur, case_id)))
            case = cur.fetchone()
            if case is None or (user is not None and not _registered_by(cur, user, case_id)):
                raise NotFound(f"case {case_id} not found")
        else:
            if user is None:
                raise Forbidden("login required to attach photos")
            case = _visible_case(cur, user, case_id, lock=True)
            if not may_attach(service, user, case, _registered_by(cur, user, case_id)):
                raise Forbidden(f"case {case['case_no']} is handled by someone else: only its handler may add "
                                f"photos", field="case")
        if case["status"] in workflow.TERMINAL_STATES:
            raise Unprocessable(f"case {case['case_no']} is {workflow.STATES[case['status']]}: no more photos",
                                field="case")
        cur.execute("SELECT count(*) AS n FROM case_attachment WHERE case_id = %s", (case_id,))
        have = cur.fetchone()["n"]
        new = list(photos)
        if have + len(new) > MAX_PER_CASE:
            cur.execute("SELECT source_sha256 FROM case_attachment WHERE case_id = %s", (case_id,))
            known = {r["source_sha256"] for r in cur.fetchall()}
            if have + len([p for p in new if p.source_sha256 not in known]) > MAX_PER_CASE:
                raise Unprocessable(f"每件最多 {MAX_PER_CASE} 张照片", field="photo", details={"max": MAX_PER_CASE})
        added = []
        for p in new:
            cur.execute(
                "INSERT INTO case_attachment (case_id, mime, bytes, size, width, height, source_sha256, file_name, "
                "uploaded_by, uploaded_role) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                f"ON CONFLICT (case_id, source_sha256) DO NOTHING RETURNING {ATTACH_COLUMNS.replace('a.', '')}",
                (case_id, p.mime, psycopg2.Binary(p.data), len(p.data), p.width, p.height, p.source_sha256,
                 p.file_name, user.id if user else None, user.role if user else "citizen"))
            row = cur.fetchone()
            if row is not None:
                added.append(_meta(row))
        if added:
            cur.execute(
                "INSERT INTO case_event (case_id, at, actor_id, actor_role, action, from_state, to_state, data) "
                "VALUES (%s, now(), %s, %s, 'attach', %s, %s, %s)",
                (case_id, user.id if user else None, user.role if user else "citizen", case["status"],
                 case["status"], json.dumps({"attachments": [a["id"] for a in added], "count": len(added)})))
    return added


def _meta(row: dict) -> dict:
    out = dict(row)
    out["uploaded_at"] = out["uploaded_at"].isoformat() if out.get("uploaded_at") else None
    out["url"] = f"/api/cases/{out['case_id']}/attachments/{out['id']}"
    return out


def list_attachments(db, user: User, case_id: int) -> list[dict]:
    """Metadata of a case's attachments, if the user may see the case (else NotFound)."""
    scope, params = case_scope(user)
    rows = db.fetchall(f"SELECT {ATTACH_COLUMNS} FROM case_attachment a JOIN case_record c ON c.id = a.case_id "
                       f"WHERE a.case_id = %(cid)s AND {scope} ORDER BY a.id", {**params, "cid": int(case_id)})
    if not rows:
        require_visible(db, user, case_id)  # 404 for a case the user may not see
    return [_meta(r) for r in rows]


def get_attachment(db, user: User, case_id: int, attachment_id: int) -> dict:
    """One attachment with its bytes, if the user may see the case (else NotFound, never a hint it exists)."""
    scope, params = case_scope(user)
    row = db.fetchone(f"SELECT {ATTACH_COLUMNS}, a.bytes FROM case_attachment a JOIN case_record c ON "
                      f"c.id = a.case_id WHERE a.id = %(aid)s AND a.case_id = %(cid)s AND {scope}",
                      {**params, "cid": int(case_id), "aid": int(attachment_id)})
    if row is None:
        raise NotFound(f"attachment {attachment_id} of case {case_id} not found")
    out = _meta(row)
    out["bytes"] = bytes(row["bytes"])
    return out
