-- Jobs, their idempotency keys, and the workers that run them. Times are seconds since the
-- epoch on the database's clock (stratus_now()): no host clock is ever compared with another.
CREATE FUNCTION stratus_now() RETURNS DOUBLE PRECISION
    LANGUAGE sql VOLATILE AS $$ SELECT extract(epoch FROM clock_timestamp())::float8 $$;

CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    model TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    completed_at DOUBLE PRECISION,
    expires_at DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires_at DOUBLE PRECISION,
    result TEXT,
    metrics TEXT,
    error TEXT,
    error_type TEXT,
    input_tokens INTEGER
);
CREATE INDEX jobs_queue ON jobs (model, seq) WHERE status = 'QUEUED';
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'PROCESSING';
CREATE INDEX jobs_owner ON jobs (lease_owner) WHERE status = 'PROCESSING';
CREATE INDEX jobs_expiry ON jobs (expires_at);

CREATE TABLE idempotency_keys (
    account_id TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    models TEXT[] NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL
);
