-- How many times a busy engine handed a job back to the queue (bounded by the worker).
ALTER TABLE jobs ADD COLUMN handbacks INTEGER NOT NULL DEFAULT 0;
