-- Case numbers come from a sequence (GG + received date + 8-digit serial): unique without a scan or a lock.
CREATE SEQUENCE case_no_seq;
