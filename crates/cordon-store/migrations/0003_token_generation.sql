-- Tokens carry the generation they were issued in; bumping it (sign-out)
-- ends every token issued before, and every socket opened with one.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
