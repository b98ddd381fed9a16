-- Accounts, API keys, the credits ledger, request history and webhook deliveries. Money is
-- integer nano-USD (BIGINT: a balance may exceed 2^31); times are seconds since the epoch on
-- the database's clock (stratus_now()).
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    balance BIGINT CHECK (balance >= 0),           -- NULL: unlimited
    reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    webhook_url TEXT,
    webhook_secret TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    admin BOOLEAN NOT NULL DEFAULT false,
    models TEXT[],                                 -- NULL: every model
    requests_per_minute INTEGER,
    tokens_per_minute INTEGER
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE credit_ledger (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    request_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'set', 'charge')),
    amount BIGINT,                                 -- negative: taken
    balance_after BIGINT,                          -- NULL: unlimited
    note TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX credit_ledger_account ON credit_ledger (account_id, seq);

CREATE TABLE requests (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    slug TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    reserved BIGINT NOT NULL,
    started_at DOUBLE PRECISION,
    completed_at DOUBLE PRECISION,                 -- NULL: open (its reservation is held)
    cost BIGINT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    latency_ms DOUBLE PRECISION,
    error TEXT,
    error_type TEXT,
    webhook_url TEXT,
    webhook_status TEXT CHECK (webhook_status IN ('pending', 'delivered', 'failed')),
    webhook_payload TEXT,
    webhook_attempts INTEGER NOT NULL DEFAULT 0,
    webhook_next_at DOUBLE PRECISION               -- due, or the end of a sender's lease
);
CREATE INDEX requests_account ON requests (account_id, seq);
CREATE INDEX requests_open ON requests (seq) WHERE completed_at IS NULL;
CREATE INDEX requests_ended ON requests (created_at) WHERE completed_at IS NOT NULL;
CREATE INDEX requests_webhooks ON requests (webhook_next_at) WHERE webhook_status = 'pending';

CREATE TABLE webhook_attempts (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id TEXT NOT NULL,                      -- swept with its request
    attempt INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    url TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX webhook_attempts_request ON webhook_attempts (request_id, seq);
