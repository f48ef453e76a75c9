-- The correlation decision lives in one function file now (db/functions/terragon_ingest_envelope.sql,
-- re-applied whenever it changes): it decides every rule of CONTRACT §4 once and applies. Its
-- second copy, terragon_apply_envelope (2026-11-26-1820, -2000), goes. (The function files are
-- applied after the versioned migrations; the runner drops every overload of a function before it
-- re-creates it, so the old 13-argument terragon_ingest_envelope goes with its first application.)
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
DROP FUNCTION terragon_apply_envelope(
    text, text, bigint, smallint, boolean, jsonb, text, boolean, boolean, text, text, text, jsonb,
    text, text);
