-- The client's end user a request was made for (Anthropic's metadata.user_id, OpenAI's user).
ALTER TABLE requests ADD COLUMN user_id TEXT;
