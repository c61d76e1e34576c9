-- Users' secrets (e.g. the credentials of their MCP servers), sealed with the store's key
-- (XChaCha20-Poly1305, bound to user and name): a 24-byte nonce, then the ciphertext.
CREATE TABLE user_secrets (
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, name)
);
