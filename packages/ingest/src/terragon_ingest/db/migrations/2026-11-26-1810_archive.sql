-- Archive rollup and in-process alert state.
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).

-- How far each dataset has been copied into the Parquet archive: every row with a timestamp
-- before `watermark` is in the archive. Advanced only after the slice's files are in place.
CREATE TABLE archive_watermark (
    dataset    text PRIMARY KEY CHECK (dataset IN ('quarantine', 'preview_event')),
    watermark  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- In-process alert hooks: one row per firing breach window, so a window notifies once across
-- replicas and restarts. Deleted when the condition clears; the next breach notifies again.
CREATE TABLE alert_state (
    rule         text NOT NULL,
    dims_key     text NOT NULL,
    dimensions   jsonb NOT NULL,
    firing_since timestamptz NOT NULL,
    notified_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule, dims_key)
);
