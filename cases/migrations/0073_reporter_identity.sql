-- 重复信访 counts one person as one person across channels (issue 9): a petitioner who gives the ID number on a
-- letter and only the phone on the hotline had two reporter keys. Each identifier — the ID number, the phone
-- (its last 11 digits) — is an identity, stored only as its hash (the same hash as reporter_key:
-- sha256('gridgov-reporter:' || value), first 24 hex digits); identities of one person share a person_key,
-- which is the case_record.reporter_key of all their cases. Intake links the identities of each new case
-- (cases.service.link_reporter): a case naming identities of two known persons joins them, and their cases'
-- reporter_key is rewritten to the surviving key.
CREATE TABLE reporter_identity (
    ident      text PRIMARY KEY,
    person_key text NOT NULL
);
CREATE INDEX reporter_identity_person_idx ON reporter_identity (person_key);

-- Existing cases: each identifier is linked to the key its case carries (the first case seen wins).
INSERT INTO reporter_identity (ident, person_key)
SELECT ident, reporter_key FROM (
    SELECT left(encode(sha256(convert_to('gridgov-reporter:' || upper(btrim(reporter_id_no)), 'UTF8')), 'hex'), 24)
               AS ident, reporter_key, received_at, id
    FROM case_record WHERE reporter_key IS NOT NULL AND btrim(coalesce(reporter_id_no, '')) <> ''
    UNION ALL
    SELECT left(encode(sha256(convert_to('gridgov-reporter:' || right(regexp_replace(reporter_phone, '\D', '', 'g'), 11),
                                         'UTF8')), 'hex'), 24), reporter_key, received_at, id
    FROM case_record WHERE reporter_key IS NOT NULL AND regexp_replace(coalesce(reporter_phone, ''), '\D', '', 'g') <> ''
    ORDER BY received_at, id
) s
ON CONFLICT (ident) DO NOTHING;
