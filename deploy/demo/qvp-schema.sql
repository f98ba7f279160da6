-- QVP: the quoting and policy platform. Customers, their vehicles, policies, claims and documents.
-- Overlaps SVP's clients/assets/contracts/incidents/attachments with other names and types.
CREATE TYPE policy_status AS ENUM ('quoted', 'active', 'lapsed', 'cancelled');
CREATE DOMAIN money_eur AS numeric(12,2) CHECK (VALUE >= 0);

CREATE TABLE customers (
    id            bigserial PRIMARY KEY,
    first_name    text NOT NULL,
    last_name     text NOT NULL,
    email         text,
    phone         text,
    birth_date    date,
    created_at    timestamptz NOT NULL DEFAULT now(),
    tags          text[],
    preferences   jsonb
);

CREATE TABLE vehicles (
    vin              char(17) PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES customers,
    make             text NOT NULL,
    model            text NOT NULL,
    model_year       smallint,
    mileage_km       integer,
    first_registered date,
    features         text[]
);

CREATE TABLE policies (
    id           bigserial PRIMARY KEY,
    policy_no    text NOT NULL UNIQUE,
    customer_id  bigint NOT NULL REFERENCES customers,
    vin          char(17) REFERENCES vehicles,
    status       policy_status NOT NULL,
    premium      money_eur,
    valid_during tstzrange,
    issued_at    timestamptz
);

CREATE TABLE policy_coverages (
    policy_id     bigint NOT NULL REFERENCES policies,
    coverage_code text NOT NULL,
    limit_amount  numeric(14,2),
    deductible    numeric(10,2),
    PRIMARY KEY (policy_id, coverage_code)
);

CREATE TABLE claims (
    id             bigserial PRIMARY KEY,
    policy_id      bigint NOT NULL REFERENCES policies,
    reported_at    timestamptz NOT NULL,
    amount         numeric(14,2),
    description    text,
    adjuster_notes text,
    location       point
);

CREATE TABLE documents (
    id          uuid PRIMARY KEY,
    policy_id   bigint NOT NULL REFERENCES policies,
    file_name   text NOT NULL,
    mime_type   text NOT NULL,
    thumbnail   bytea,
    object_key  text NOT NULL,
    uploaded_at timestamptz NOT NULL
);
