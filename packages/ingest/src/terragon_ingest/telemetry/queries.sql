-- name: insert_preview_event
INSERT INTO preview_event (
    ts_server, schema_version, event_name, origin, trace_id, thread_id, thread_chat_id, run_id,
    codesandbox_id, sandbox_provider, preview_session_id, user_id, proxy_req_id, properties
) VALUES (
    %(ts_server)s, %(schema_version)s, %(event_name)s, %(origin)s, %(trace_id)s, %(thread_id)s,
    %(thread_chat_id)s, %(run_id)s, %(codesandbox_id)s, %(sandbox_provider)s,
    %(preview_session_id)s, %(user_id)s, %(proxy_req_id)s, %(properties)s
)
