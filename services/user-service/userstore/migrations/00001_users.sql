-- +goose Up
CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username   text        NOT NULL,
    version    text        NOT NULL,
    rev        bigint      NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per Idempotency-Key: the request's fingerprint and the user it created
-- (NULL while the creating transaction runs).
CREATE TABLE idempotency_keys (
    key         text        PRIMARY KEY,
    fingerprint bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    user_id     bigint,
    username    text,
    version     text,
    rev         bigint
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE users;
