-- What each worker's engines last said of themselves, by model (ready, or cooldown with why
-- and until when): API nodes show it in the model list and /ready.
ALTER TABLE workers ADD COLUMN health TEXT;
