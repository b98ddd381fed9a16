-- Message Batches: a job may belong to a batch (with the request's custom_id), wait behind
-- interactive jobs (priority), and keep its result longer than the default (retain, seconds).
ALTER TABLE jobs ADD COLUMN priority SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN retain DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN batch_id TEXT;
ALTER TABLE jobs ADD COLUMN custom_id TEXT;
DROP INDEX jobs_queue;
CREATE INDEX jobs_claim ON jobs (model, priority, seq) WHERE status = 'QUEUED';
CREATE INDEX jobs_batch ON jobs (batch_id, seq) WHERE batch_id IS NOT NULL;

CREATE TABLE batches (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    total INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    retain_until DOUBLE PRECISION NOT NULL,
    cancel_initiated_at DOUBLE PRECISION
);
CREATE INDEX batches_account ON batches (account_id, seq);
CREATE INDEX batches_retention ON batches (retain_until);
